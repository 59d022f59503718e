"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_SECONDS = Histogram(
    "igor_operator_reconcile_seconds",
    "Time to reconcile one object, by kind and outcome.",
    ["kind", "result"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
MIGRATION_PHASES = Counter(
    "igor_operator_migration_phase_transitions_total",
    "MigrationRequest phase transitions, by phase entered.",
    ["phase"],
    registry=REGISTRY,
)
MIGRATIONS = Counter(
    "igor_operator_migrations_total",
    "Finished migrations, by final phase and reason.",
    ["result", "reason"],
    registry=REGISTRY,
)
MIGRATION_SECONDS = Histogram(
    "igor_operator_migration_seconds",
    "Time from a MigrationRequest's creation to its final phase, by result.",
    ["result"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
DOWNTIME_SECONDS = Histogram(
    "igor_operator_migration_downtime_seconds",
    "Time from the source's freeze to the target's first tick.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
REPLAY_VERDICTS = Counter(
    "igor_operator_replay_verdicts_total",
    "Replay gate verdicts.",
    ["verdict"],
    registry=REGISTRY,
)
REPLAY_SECONDS = Histogram(
    "igor_operator_replay_seconds",
    "Wall time of one replay gate run, sandbox included.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
    registry=REGISTRY,
)
AUTHORITY_CHANGES = Counter(
    "igor_operator_authority_changes_total",
    "Agent lease changes written by the operator, by kind (bind, recover, handoff, cut-over, "
    "revert).",
    ["change"],
    registry=REGISTRY,
)
CONFLICTS = Counter(
    "igor_operator_write_conflicts_total",
    "Status writes refused because the object changed meanwhile (resourceVersion).",
    ["kind"],
    registry=REGISTRY,
)
NODES_LOST = Counter(
    "igor_operator_nodes_lost_total",
    "Node Leases seen expiring.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "igor_operator_leader",
    "1 while this operator instance holds the leader Lease.",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "igor_operator_workqueue_depth",
    "Keys waiting in the work queue.",
    registry=REGISTRY,
)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    start_http_server(port, addr=addr, registry=REGISTRY)
