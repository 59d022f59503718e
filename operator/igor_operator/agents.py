"""IgorAgent reconciling: read the agent and the cluster, let lifecycle.plan decide, write."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from igor import api

from . import cache as cache_mod
from . import lifecycle, metrics, scheduler
from .context import Context, migration_key
from .kubeapi import Conflict, NotFound

log = logging.getLogger(__name__)


def _needs_placement(agent: dict, live: set[str]) -> bool:
    lease = ((agent.get("status") or {}).get("lease")) or {}
    holder = lease.get("holder")
    return not holder or holder not in live or lease.get("state") == "RecoveryRequired"


async def reconcile(ctx: Context, namespace: str, name: str) -> float | None:
    agent = ctx.cache.get(cache_mod.AGENT, namespace, name)
    if agent is None:
        return None
    now = datetime.now(UTC)
    live = ctx.live_nodes(now)
    if _needs_placement(agent, live):
        async with ctx.schedule_lock:
            return await _reconcile(ctx, namespace, name)
    return await _reconcile(ctx, namespace, name)


async def _reconcile(ctx: Context, namespace: str, name: str) -> float | None:
    agent = ctx.cache.get(cache_mod.AGENT, namespace, name)
    if agent is None:
        return None
    now = datetime.now(UTC)
    live = ctx.live_nodes(now)
    nodes = list(ctx.node_infos(now).values())
    running = ctx.migration_running(agent)
    plan = lifecycle.plan(agent, nodes, live, migration_active=running is not None, now=now)
    if running:
        ctx.enqueue(migration_key(namespace, running))
    stale = _stale_migration(ctx, agent, running)
    if stale is not None:
        plan.status["migration"] = stale
    if plan.empty:
        return None
    if plan.authority in ("recover", "require-recovery"):
        # Never move authority on a stale view: confirm with the API server that the holder's
        # Lease really expired.
        holder = ((agent.get("status") or {}).get("lease") or {}).get("holder", "")
        lease = await ctx.kube.get_lease(ctx.config.namespace, scheduler.node_lease_name(holder))
        if lease is not None:
            ctx.cache.put(cache_mod.LEASE, lease)
            if scheduler.lease_valid(lease, datetime.now(UTC)) and (
                ((agent.get("status") or {}).get("lease") or {}).get("state") != "RecoveryRequired"
            ):
                return 0.5
    rv = (agent.get("metadata") or {}).get("resourceVersion")
    try:
        updated = await ctx.kube.patch_status("agent", namespace, name, plan.status, rv)
    except Conflict:
        metrics.CONFLICTS.labels("agent").inc()
        await _refresh(ctx, namespace, name)
        return 0.0
    except NotFound:
        return None
    ctx.cache.put(cache_mod.AGENT, updated)
    if plan.authority:
        metrics.AUTHORITY_CHANGES.labels(plan.authority).inc()
        log.info(
            "agent %s/%s: %s -> %s at epoch %s",
            namespace,
            name,
            plan.authority,
            plan.target,
            (updated.get("status") or {}).get("epoch"),
        )
    await ctx.events.record_all(updated, plan.events)
    return None


def _stale_migration(ctx: Context, agent: dict, running: str | None) -> dict | None:
    """status.migration of a migration that ended without saying so (operator crash, deleted
    request): the mirror of its final phase, or Aborted when it is gone."""
    ref = (agent.get("status") or {}).get("migration") or {}
    if running or not ref.get("name") or not lifecycle.migration_in_progress(agent["status"]):
        return None
    namespace = (agent.get("metadata") or {}).get("namespace", "")
    mr = ctx.cache.get(cache_mod.MIGRATION, namespace, ref["name"])
    phase = ((mr or {}).get("status") or {}).get("phase")
    if mr is not None and phase in (None, "Pending"):
        return None  # queued again after a restart: it will take the slot again
    if mr is not None and phase and not api.MigrationPhase(phase).terminal:
        return None
    return {"name": ref["name"], "phase": phase or api.MigrationPhase.ABORTED.value}


async def _refresh(ctx: Context, namespace: str, name: str) -> None:
    try:
        fresh = await ctx.kube.get("agent", namespace, name)
    except NotFound:
        return
    ctx.cache.put(cache_mod.AGENT, fresh)
