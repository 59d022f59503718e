"""Prometheus metrics of one node (its own registry, so that tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ticks = Counter("igor_node_ticks_total", "Ticks executed", registry=r)
        self.tick_failures = Counter(
            "igor_node_tick_failures_total", "Ticks that failed", ["kind"], registry=r
        )
        self.tick_lag = Histogram(
            "igor_node_tick_lag_seconds",
            "Delay between a tick's due time and its start",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.fuel = Counter("igor_node_fuel_total", "Fuel consumed by ticks", registry=r)
        self.checkpoints = Counter(
            "igor_node_checkpoints_total", "Checkpoint writes", ["result"], registry=r
        )
        self.verifications = Counter(
            "igor_node_verifications_total", "Replay self-verifications", ["verdict"], registry=r
        )
        self.divergences = Counter(
            "igor_node_divergences_total", "Replay divergences detected", registry=r
        )
        self.fencing = Counter(
            "igor_node_fencing_events_total",
            "Self-fencing and superseded-instance events",
            ["kind"],
            registry=r,
        )
        self.agents = Gauge("igor_node_agents_running", "Agents held by this node", registry=r)
