"""IgorNodes and their Leases: loss of a node starts recovery, a cordon starts evacuation.

A node is alive while its Lease (igor-node-<name> in the operator's namespace) is valid. The
liveness loop notices when one expires (nothing else would: an expiry is the absence of an
event) and queues the node's agents, whose reconcile recovers them elsewhere. A cordoned node
(spec.unschedulable) is evacuated through MigrationRequests with reason Drain, one per agent,
named after the agent and its epoch so that re-reconciling never creates a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from igor import api

from . import cache as cache_mod
from . import lifecycle, metrics, scheduler
from .context import Context, agent_key, node_key
from .events import Event
from .kubeapi import Conflict, NotFound, owner_reference

log = logging.getLogger(__name__)

DRAIN_LABEL = "igor.dev/drain-node"
# Failed evacuation attempts per agent before a cordoned node stops retrying it.
MAX_DRAIN_FAILURES = 3
# Reason of the Ready=False condition the operator writes on a node whose Lease expired.
LEASE_EXPIRED = "LeaseExpired"


def held_agents(agents: Iterable[Mapping[str, Any]], node: str) -> list[Mapping[str, Any]]:
    return [
        a
        for a in agents
        if ((a.get("status") or {}).get("lease") or {}).get("holder") == node
        and not (a.get("metadata") or {}).get("deletionTimestamp")
    ]


def drain_name(agent: str, major: int, minor: int) -> str:
    """A MigrationRequest name unique per agent and epoch, within the 253-character limit."""
    suffix = f"-drain-{major}-{minor}"
    name = agent + suffix
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(agent.encode()).hexdigest()[:10]
    return f"{agent[: 253 - len(suffix) - 11]}-{digest}{suffix}"


def evacuation_plan(
    node: str, agents: Iterable[Mapping[str, Any]], migrations: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """(namespace, MigrationRequest name, agent name) to create for a cordoned node's agents.

    Skipped: agents not Active on the node (already moving, recovering), agents with a
    migration in progress or one already created for their current epoch, and agents whose
    evacuation failed for good (a replay divergence, or MAX_DRAIN_FAILURES failures): retrying
    those would freeze them again and again for nothing.
    """
    migrations = list(migrations)
    existing = {cache_mod.key_of(m) for m in migrations}
    failures: dict[tuple[str, str], int] = {}
    for m in migrations:
        status = m.get("status") or {}
        if (
            status.get("phase") == api.MigrationPhase.FAILED
            and ((m.get("metadata") or {}).get("labels") or {}).get(DRAIN_LABEL) == node[:63]
        ):
            key = ((m.get("metadata") or {}).get("namespace"), (m.get("spec") or {}).get("agent"))
            diverged = (status.get("replay") or {}).get("verdict") == "Diverged"
            failures[key] = failures.get(key, 0) + (MAX_DRAIN_FAILURES if diverged else 1)
    busy = {
        ((m.get("metadata") or {}).get("namespace"), (m.get("spec") or {}).get("agent"))
        for m in migrations
        if not api.MigrationPhase((m.get("status") or {}).get("phase") or "Pending").terminal
    }
    wanted = []
    for agent in held_agents(agents, node):
        meta = agent.get("metadata") or {}
        lease = (agent.get("status") or {}).get("lease") or {}
        if lease.get("state") != api.LeaseState.ACTIVE:
            continue
        if lifecycle.migration_in_progress(agent.get("status") or {}):
            continue
        if (meta.get("namespace"), meta.get("name")) in busy:
            continue
        if failures.get((meta.get("namespace"), meta.get("name")), 0) >= MAX_DRAIN_FAILURES:
            continue
        policy = ((agent.get("spec") or {}).get("manifest") or {}).get("migrationPolicy") or {}
        if policy.get("enabled") is False:
            continue
        epoch = lease.get("epoch") or {}
        name = drain_name(meta["name"], int(epoch.get("major", 0)), int(epoch.get("minor", 0)))
        if (meta.get("namespace"), name) in existing:
            continue
        wanted.append((meta.get("namespace", ""), name, meta["name"]))
    return wanted


async def reconcile(ctx: Context, name: str) -> float | None:
    node = ctx.cache.get(cache_mod.NODE, "", name)
    now = datetime.now(UTC)
    alive = name in ctx.live_nodes(now)
    agents = held_agents(ctx.cache.agents(), name)
    if not alive:
        # The agents' reconcile recovers them; make sure each one looks again.
        for agent in agents:
            meta = agent.get("metadata") or {}
            ctx.enqueue(agent_key(meta.get("namespace", ""), meta.get("name", "")))
        return None
    if node is None or not (node.get("spec") or {}).get("unschedulable"):
        return None
    if not agents:
        return None
    return await _evacuate(ctx, node, agents)


async def _evacuate(ctx: Context, node: dict[str, Any], agents) -> float | None:
    name = node["metadata"]["name"]
    created = []
    by_key = {cache_mod.key_of(a): a for a in agents}
    for namespace, mr_name, agent_name in evacuation_plan(name, agents, ctx.cache.migrations()):
        agent = by_key.get((namespace, agent_name))
        if agent is None:
            continue
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.Kind.MIGRATION_REQUEST.value,
            "metadata": {
                "name": mr_name,
                "namespace": namespace,
                "labels": {DRAIN_LABEL: name[:63]},
                "ownerReferences": [owner_reference(agent, controller=False)],
            },
            "spec": {"agent": agent["metadata"]["name"], "reason": api.MigrationReason.DRAIN},
        }
        try:
            mr = await ctx.kube.create("migration", namespace, body)
        except Conflict:
            continue  # already there
        except NotFound:
            continue
        ctx.cache.put(cache_mod.MIGRATION, mr)
        created.append(f"{namespace}/{mr_name}")
    if created:
        await ctx.events.record(
            node,
            Event.normal(
                "Evacuating",
                f"node is unschedulable: migrating {len(created)} agent(s) away "
                f"({', '.join(created[:5])}{' ...' if len(created) > 5 else ''})",
            ),
        )
    # Migrations can fail (no target yet, divergence): look again until the node is empty.
    return ctx.config.drain_period


async def liveness_loop(ctx: Context) -> None:
    """Watch node Leases expire (an expiry sends no event) and queue what depends on them."""
    while True:
        try:
            await _check_liveness(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking node Leases failed")
        await asyncio.sleep(ctx.config.liveness_period)


async def _check_liveness(ctx: Context) -> None:
    now = datetime.now(UTC)
    live = ctx.live_nodes(now)
    # Nodes whose IgorNode still claims Ready but whose cached Lease is expired: lost since
    # the last check, or already dead when this operator started.
    stale = {
        cache_mod.key_of(node)[1]
        for node in ctx.cache.nodes()
        if needs_not_ready(node, ctx.node_lease(cache_mod.key_of(node)[1]))
    }
    expired: dict[str, dict[str, Any]] = {}
    for name in sorted((ctx.live | stale) - live):
        # The cache may lag (a slow watch): ask the API server before calling a node lost.
        lease = await ctx.kube.get_lease(ctx.config.namespace, scheduler.node_lease_name(name))
        if lease is not None:
            ctx.cache.put(cache_mod.LEASE, lease)
            if scheduler.lease_valid(lease, datetime.now(UTC)):
                live.add(name)
            else:
                expired[name] = lease
    for name, lease in sorted(expired.items()):
        await _mark_not_ready(ctx, name, lease)
    lost = ctx.live - live
    joined = live - ctx.live
    for name in sorted(lost):
        metrics.NODES_LOST.inc()
        node = ctx.cache.get(cache_mod.NODE, "", name) or {
            "apiVersion": api.API_VERSION,
            "kind": api.Kind.IGOR_NODE.value,
            "metadata": {"name": name},
        }
        count = len(held_agents(ctx.cache.agents(), name))
        await ctx.events.record(
            node,
            Event.warning(
                "NodeLost",
                f"node Lease expired; recovering its {count} agent(s) on other nodes",
            ),
        )
        ctx.enqueue(node_key(name))
    if joined:
        for name in sorted(joined):
            ctx.enqueue(node_key(name))
        requeue_unplaced(ctx)
    ctx.live = live


def lease_expiry(lease: Mapping[str, Any]) -> datetime | None:
    """When a node Lease expires (expired): renewTime + leaseDurationSeconds."""
    spec = lease.get("spec") or {}
    renew = scheduler.parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renew is None or not duration:
        return None
    return renew + timedelta(seconds=duration)


def needs_not_ready(node: Mapping[str, Any], lease: Mapping[str, Any] | None) -> bool:
    """Whether the operator should write Ready=False (LeaseExpired) on this IgorNode, judging by
    the given Lease (None: no Lease, so not known to be expired: never).

    A node that reports Ready=False itself (it stopped renewing and fenced itself) is left
    alone while it keeps writing its status after its Lease expired: two writers taking turns
    on one condition would only make it flap between reasons. Once its last heartbeat is older
    than the expiry it is not writing any more, and the operator takes over.
    """
    if lease is None or scheduler.lease_valid(lease, datetime.now(UTC)):
        return False
    status = node.get("status") or {}
    ready = api.find_condition(status.get("conditions"), api.NodeConditionType.READY) or {}
    if ready.get("status") != api.ConditionStatus.FALSE:
        return True
    if ready.get("reason") == LEASE_EXPIRED:
        return False
    expiry = lease_expiry(lease)
    heartbeat = scheduler.parse_time(status.get("heartbeatTime"))
    return expiry is None or heartbeat is None or heartbeat <= expiry


def not_ready_message(lease: Mapping[str, Any]) -> str:
    name = (lease.get("metadata") or {}).get("name", "")
    expiry = lease_expiry(lease)
    if expiry is None:
        return f"node Lease {name} was never renewed"
    seconds = (lease.get("spec") or {}).get("leaseDurationSeconds")
    return (
        f"node Lease {name} expired at {_iso(expiry)} (renewed at "
        f"{_iso(expiry - timedelta(seconds=seconds))}, valid {seconds}s); "
        "the node stopped renewing it"
    )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def _mark_not_ready(ctx: Context, name: str, lease: dict[str, Any]) -> None:
    """Ready=False, reason LeaseExpired, on an IgorNode whose Lease the API server says has
    expired. The write carries the IgorNode's resourceVersion, so a heartbeat of a node that
    came back wins; a node that renews afterwards writes Ready=True with its next heartbeat."""
    try:
        node = await ctx.kube.get("node", "", name)
    except NotFound:
        return
    if not needs_not_ready(node, lease):
        ctx.cache.put(cache_mod.NODE, node)
        return
    status = node.get("status") or {}
    condition = api.condition(
        api.NodeConditionType.READY,
        api.ConditionStatus.FALSE,
        LEASE_EXPIRED,
        not_ready_message(lease),
    )
    conditions = api.set_condition(status.get("conditions") or [], condition)
    try:
        updated = await ctx.kube.patch_status(
            "node",
            "",
            name,
            {"conditions": conditions},
            (node.get("metadata") or {}).get("resourceVersion"),
        )
    except (Conflict, NotFound):
        return  # the node wrote meanwhile, or is gone: look again on the next check
    ctx.cache.put(cache_mod.NODE, updated)
    log.info("IgorNode %s: Ready=False (%s)", name, condition["message"])
    await ctx.events.record(updated, Event.warning("NodeNotReady", condition["message"]))


def requeue_unplaced(ctx: Context) -> None:
    """Queue every agent waiting for a node: something about the nodes changed."""
    for agent in ctx.cache.agents():
        status = agent.get("status") or {}
        lease = status.get("lease") or {}
        if (
            not lease.get("holder")
            or lease.get("state") == api.LeaseState.RECOVERY_REQUIRED
            or status.get("phase") in ("Pending", "Recovering", None)
        ):
            meta = agent.get("metadata") or {}
            ctx.enqueue(agent_key(meta.get("namespace", ""), meta.get("name", "")))
