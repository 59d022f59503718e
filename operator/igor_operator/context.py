"""What every reconciler shares: configuration, API client, cache, queue, and derived views."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import cache as cache_mod
from . import lifecycle, migration, scheduler
from .cache import Cache
from .events import EventRecorder
from .gate import Sandbox
from .kubeapi import Kube
from .nodeclient import NodeClient
from .settings import Config
from .workqueue import WorkQueue

AGENT_KEY = "agent"
NODE_KEY = "node"
MIGRATION_KEY = "migration"


def agent_key(namespace: str, name: str) -> Hashable:
    return (AGENT_KEY, namespace, name)


def node_key(name: str) -> Hashable:
    return (NODE_KEY, "", name)


def migration_key(namespace: str, name: str) -> Hashable:
    return (MIGRATION_KEY, namespace, name)


@dataclass
class MigrationMemory:
    """What a running migration keeps between steps in memory (lost on restart, re-derived)."""

    freeze: dict[str, Any] | None = None
    frozen_at: float | None = None  # time.time() when the freeze answered
    gate_errors: int = 0
    failures: int = 0
    retry_at: float = 0.0  # time.monotonic() before which the next step must not run


@dataclass
class Context:
    config: Config
    kube: Kube
    cache: Cache
    events: EventRecorder
    nodes: NodeClient
    sandbox: Sandbox
    queue: WorkQueue = field(init=False)
    # Placement decisions and the writes that carry them are serialised, so each sees the
    # previous one's binding in the cache (capacity and spreading stay exact).
    schedule_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Starting a migration checks the concurrency limits; serialised for the same reason.
    migration_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    memory: dict[str, MigrationMemory] = field(default_factory=dict)
    # Node names whose Lease was valid at the last liveness check.
    live: set[str] = field(default_factory=set)

    def enqueue(self, key: Hashable, delay: float | None = None) -> None:
        self.queue.add(key, delay)

    # ------------------------------------------------------------------ derived views

    def node_lease(self, node: str) -> dict[str, Any] | None:
        obj = self.cache.get(cache_mod.NODE, "", node)
        status = (obj or {}).get("status") or {}
        name = status.get("leaseName") or scheduler.node_lease_name(node)
        lease = self.cache.get(cache_mod.LEASE, self.config.namespace, name)
        return lease

    def live_nodes(self, now: datetime) -> set[str]:
        live = set()
        prefix = scheduler.NODE_LEASE_PREFIX
        for (namespace, name), lease in self.cache.objects[cache_mod.LEASE].items():
            if (
                namespace == self.config.namespace
                and name.startswith(prefix)
                and scheduler.lease_valid(lease, now)
            ):
                live.add(name[len(prefix) :])
        return live

    def agent_counts(self, exclude_migration: tuple[str, str] | None = None) -> dict[str, int]:
        """Agents per node: bound ones, plus migrations reserving a place on their target."""
        counts = lifecycle.counts_by_holder(self.cache.agents())
        for mr in self.cache.migrations():
            if cache_mod.key_of(mr) == exclude_migration:
                continue
            status = mr.get("status") or {}
            target = status.get("target")
            if target and migration.is_active(mr) and not migration.is_cut_over(status):
                counts[target] = counts.get(target, 0) + 1
        return counts

    def node_infos(
        self, now: datetime, exclude_migration: tuple[str, str] | None = None
    ) -> dict[str, scheduler.NodeInfo]:
        counts = self.agent_counts(exclude_migration)
        infos = {}
        for node in self.cache.nodes():
            name = (node.get("metadata") or {}).get("name", "")
            infos[name] = scheduler.NodeInfo.from_objects(
                node, self.node_lease(name), now, counts.get(name, 0)
            )
        return infos

    def active_migrations(
        self, exclude: tuple[str, str] | None = None
    ) -> tuple[int, dict[str, int]]:
        total = 0
        per_node: dict[str, int] = {}
        for mr in self.cache.migrations():
            if cache_mod.key_of(mr) == exclude or not migration.is_active(mr):
                continue
            total += 1
            for node in migration.involved_nodes(mr):
                per_node[node] = per_node.get(node, 0) + 1
        return total, per_node

    def migration_running(
        self, agent: dict[str, Any], except_name: str | None = None
    ) -> str | None:
        """Name of the unfinished MigrationRequest that holds the agent's migration slot."""
        status = agent.get("status") or {}
        ref = status.get("migration") or {}
        name = ref.get("name")
        if not name or name == except_name:
            return None
        namespace = (agent.get("metadata") or {}).get("namespace", "")
        mr = self.cache.get(cache_mod.MIGRATION, namespace, name)
        if mr is None:
            return None
        # Only a migration's start writes its name here, so an unfinished one holds the slot
        # even while its own status still says Pending (the operator stopped in between).
        phase = migration.phase_of(mr.get("status"))
        if phase is not None and phase.terminal:
            return None
        return name
