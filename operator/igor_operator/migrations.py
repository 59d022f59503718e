"""MigrationRequest reconciling: observe, let migration.decide choose, perform one step.

Each step is written so that repeating it is harmless: agent writes re-check their precondition
on a freshly read agent and carry its resourceVersion; node calls are idempotent per epoch. The
agent is written before the MigrationRequest whenever both change, so after a crash the
request's phase is never ahead of the agent's lease.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from igor import api, lease
from igor import checkpoint as ckpt
from igor.api import AgentConditionType as ACond
from igor.api import MigrationConditionType as MCond
from igor.api import MigrationPhase as Phase

from . import cache as cache_mod
from . import gate, lifecycle, metrics, migration, scheduler
from .context import Context, MigrationMemory, agent_key
from .events import Event
from .kubeapi import Conflict, NotFound, owner_reference
from .migration import Action, Kind, Observed
from .retry import ErrorClass, StepError, backoff

log = logging.getLogger(__name__)

MAX_BUNDLE_CONFIGMAP = 900 * 1024


class Precondition(Exception):
    """The agent is not where the step expected it: decide again."""


def bundle_configmap_name(mr_name: str) -> str:
    return f"igor-bundle-{mr_name}"[:253]


# --------------------------------------------------------------------------- entry point


async def reconcile(ctx: Context, namespace: str, name: str) -> float | None:
    mr = ctx.cache.get(cache_mod.MIGRATION, namespace, name)
    if mr is None:
        return None
    phase = migration.phase_of(mr.get("status"))
    if phase is Phase.PENDING:
        async with ctx.migration_lock:
            return await _step(ctx, namespace, name)
    return await _step(ctx, namespace, name)


async def _step(ctx: Context, namespace: str, name: str) -> float | None:
    mr = ctx.cache.get(cache_mod.MIGRATION, namespace, name)
    if mr is None:
        return None
    meta = mr.get("metadata") or {}
    spec = mr.get("spec") or {}
    uid = meta.get("uid", f"{namespace}/{name}")
    mem = ctx.memory.setdefault(uid, MigrationMemory())
    # A step that failed retriably waits out its backoff, whatever events arrive meanwhile
    # (its own status writes among them); a deletion is acted on at once.
    wait = mem.retry_at - time.monotonic()
    if wait > 0 and not meta.get("deletionTimestamp"):
        return wait
    phase = migration.phase_of(mr.get("status"))
    agent = ctx.cache.get(cache_mod.AGENT, namespace, spec.get("agent", ""))
    if phase is not None and not phase.terminal:
        # Authority decisions start from the API server's current agent, not the cache.
        try:
            agent = await ctx.kube.get("agent", namespace, spec.get("agent", ""))
            ctx.cache.put(cache_mod.AGENT, agent)
        except NotFound:
            agent = None
    now = datetime.now(UTC)
    active, per_node = ctx.active_migrations(exclude=(namespace, name))
    target_tick, target_idle = None, None
    if phase is Phase.CUTTING_OVER and agent is not None:
        target_tick, target_idle = await _target_view(ctx, mr, agent)
    obs = Observed(
        mr=mr,
        agent=agent,
        nodes=ctx.node_infos(now, exclude_migration=(namespace, name)),
        now=now,
        active=active,
        active_per_node=per_node,
        other_migration=ctx.migration_running(agent, except_name=name) if agent else None,
        gate_errors=mem.gate_errors,
        target_tick=target_tick,
        target_idle=target_idle,
    )
    act = migration.decide(obs, ctx.config.migration)
    if act.kind not in (Kind.NONE, Kind.WAIT):
        log.debug("migration %s/%s: %s %s", namespace, name, act.kind, act.target or "")
    step = STEPS[act.kind]
    try:
        delay = await step(ctx, mr, agent, act, mem)
    except Conflict:
        metrics.CONFLICTS.labels("migration").inc()
        await _refresh(ctx, namespace, name)
        return 0.0
    except Precondition as exc:
        log.info("migration %s/%s: %s; deciding again", namespace, name, exc)
        return 0.0
    except StepError as exc:
        delay = await _step_failed(ctx, mr, agent, mem, exc)
        mem.retry_at = time.monotonic() + (delay or 0)
        return delay
    if act.kind not in (Kind.WAIT, Kind.NONE):
        mem.failures = 0
    return delay


async def _target_view(ctx: Context, mr, agent) -> tuple[int | None, str | None]:
    """What the target itself reports for the agent at the cut-over epoch: its tick (the first
    tick there shows as it happens, before the target's next status report), and why it does
    not tick if it holds the agent but will not run it (budget exhausted, suspended)."""
    status = mr.get("status") or {}
    source_epoch = migration.epoch_of(status.get("sourceEpoch"))
    if _position(mr, agent) is not migration.Position.CUT or source_epoch is None:
        return None, None
    node = ctx.node_infos(datetime.now(UTC)).get(status.get("target", ""))
    if node is None or not node.address:
        return None, None
    try:
        info = await ctx.nodes.agent(node.address, _ns(mr), _agent_name(mr))
    except StepError:
        return None, None
    epoch = info.get("epoch") or {}
    if int(epoch.get("major", -1)) != migration.cut_epoch(source_epoch).major:
        return None, None
    tick = info.get("tick")
    idle = None
    if info.get("ticking") is False and not info.get("handoff"):
        idle = info.get("paused") or info.get("lastError") or "not ticking"
    return (int(tick) if isinstance(tick, int) else None), idle


async def _refresh(ctx: Context, namespace: str, name: str) -> None:
    with contextlib.suppress(NotFound):
        ctx.cache.put(cache_mod.MIGRATION, await ctx.kube.get("migration", namespace, name))


# --------------------------------------------------------------------------- write helpers


def _ns(mr) -> str:
    return mr["metadata"]["namespace"]


def _name(mr) -> str:
    return mr["metadata"]["name"]


def _agent_name(mr) -> str:
    return (mr.get("spec") or {}).get("agent", "")


async def write_mr(ctx: Context, mr: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    fragment = dict(fragment)
    fragment.setdefault("observedGeneration", (mr.get("metadata") or {}).get("generation") or 1)
    updated = await ctx.kube.patch_status(
        "migration", _ns(mr), _name(mr), fragment, mr["metadata"].get("resourceVersion")
    )
    ctx.cache.put(cache_mod.MIGRATION, updated)
    if "phase" in fragment and fragment["phase"] != (mr.get("status") or {}).get("phase"):
        metrics.MIGRATION_PHASES.labels(fragment["phase"]).inc()
    return updated


async def update_agent(
    ctx: Context,
    namespace: str,
    name: str,
    mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
    attempts: int = 10,
    fresh: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Read the agent, let ``mutate`` compute a status fragment from it, write it at the read
    resourceVersion; on a conflict read again. ``mutate`` raises Precondition when the agent is
    no longer where the step expects it, and returns None when there is nothing to write.
    ``fresh``: an agent just read from the API server, used for the first attempt."""
    for attempt in range(attempts):
        if attempt == 0 and fresh is not None:
            agent = fresh
        else:
            try:
                agent = await ctx.kube.get("agent", namespace, name)
            except NotFound:
                return None
        fragment = mutate(agent)
        if fragment is None:
            return agent
        try:
            updated = await ctx.kube.patch_status(
                "agent", namespace, name, fragment, agent["metadata"]["resourceVersion"]
            )
        except Conflict:
            metrics.CONFLICTS.labels("agent").inc()
            continue
        except NotFound:
            return None
        ctx.cache.put(cache_mod.AGENT, updated)
        return updated
    raise Conflict(f"agent {namespace}/{name} kept changing")


def _migration_ref(mr, phase: Phase) -> dict[str, Any]:
    return {"name": _name(mr), "phase": phase.value}


def _owns_lock(agent: dict[str, Any], mr) -> bool:
    return ((agent.get("status") or {}).get("migration") or {}).get("name") == _name(mr)


def _agent_lease(agent: dict[str, Any]) -> lease.AgentLease | None:
    return lease.AgentLease.from_status(agent.get("status") or {})


def _position(mr, agent: dict[str, Any]) -> migration.Position:
    return migration.lease_position(mr.get("status") or {}, _agent_lease(agent))


def _migrating_condition(agent, status: bool, reason: str, message: str) -> list[dict[str, Any]]:
    gen = (agent.get("metadata") or {}).get("generation")
    return api.set_condition(
        (agent.get("status") or {}).get("conditions"),
        api.condition(ACond.MIGRATING, status, reason, message, gen),
    )


async def _event(ctx: Context, obj: dict[str, Any] | None, event: Event) -> None:
    if obj is not None:
        await ctx.events.record(obj, event)


# --------------------------------------------------------------------------- steps


async def step_none(ctx, mr, agent, act: Action, mem) -> float | None:
    return None


async def step_init(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    meta = mr["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if migration.FINALIZER not in finalizers:
        updated = await ctx.kube.patch_metadata(
            "migration",
            _ns(mr),
            _name(mr),
            {
                "finalizers": [*finalizers, migration.FINALIZER],
                "resourceVersion": meta.get("resourceVersion"),
            },
        )
        ctx.cache.put(cache_mod.MIGRATION, updated)
        mr = updated
    status = api.initial_migration_status(meta.get("generation") or 1)
    status["phaseTransitionTimestamps"] = [
        {"phase": Phase.PENDING.value, "time": migration.stamp()}
    ]
    status["message"] = f"queued: migrate {_agent_name(mr)}"
    mr = await write_mr(ctx, mr, status)
    await _event(ctx, mr, Event.normal("Pending", f"migration of {_agent_name(mr)} queued"))
    return 0.0


async def step_wait(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    if act.message and act.message != status.get("message"):
        await write_mr(ctx, mr, {"message": act.message})
        if act.reason not in ("AwaitingTarget",):
            await _event(ctx, mr, Event.normal("Waiting", act.message))
    return act.delay


async def step_start(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    source = act.target or ""
    expected = _agent_lease(agent)
    assert expected is not None

    def take(fresh: dict[str, Any]) -> dict[str, Any] | None:
        current = _agent_lease(fresh)
        if current != expected:
            raise Precondition("the agent's lease changed before the migration started")
        if ctx.migration_running(fresh, except_name=_name(mr)):
            raise Precondition("another migration took the agent first")
        return {
            "migration": _migration_ref(mr, Phase.SCHEDULING),
            "phase": api.AgentPhase.MIGRATING.value,
            "conditions": _migrating_condition(
                fresh, True, "MigrationStarted", f"MigrationRequest {_name(mr)} started"
            ),
        }

    updated_agent = await update_agent(ctx, _ns(mr), _agent_name(mr), take, fresh=agent)
    epoch = expected.epoch
    mr = await write_mr(
        ctx,
        mr,
        migration.enter(
            mr.get("status"),
            Phase.SCHEDULING,
            source=source,
            sourceEpoch=migration.epoch_dict(epoch),
            message=f"migrating {_agent_name(mr)} away from {source} (epoch "
            f"{epoch.major}.{epoch.minor})",
        ),
    )
    await _event(ctx, mr, Event.normal("Scheduling", f"choosing a target; source is {source}"))
    await _event(
        ctx, updated_agent, Event.normal("MigrationStarted", f"MigrationRequest {_name(mr)}")
    )
    return 0.0


async def step_target(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    phase = migration.phase_of(status)
    # From Scheduling the next step freezes the source; from Transferring (fallback after the
    # freeze) only the transfer check repeats for the new target.
    next_phase = Phase.CHECKPOINTING if phase is Phase.SCHEDULING else Phase.TRANSFERRING
    tried = [*list(status.get("candidatesTried") or []), act.target]
    message = act.message or f"target {act.target}"
    mr = await write_mr(
        ctx,
        mr,
        migration.enter(
            status,
            next_phase,
            target=act.target,
            attempts=int(status.get("attempts") or 0) + 1,
            candidatesTried=tried,
            message=message,
        ),
    )
    await _event(ctx, mr, Event.normal(next_phase.value, message))
    return 0.0


async def step_begin_handoff(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    def handoff(fresh: dict[str, Any]) -> dict[str, Any] | None:
        position = _position(mr, fresh)
        if position is migration.Position.HANDOFF:
            return None
        if position is not migration.Position.BEFORE or not _owns_lock(fresh, mr):
            raise Precondition(f"cannot start the handoff: lease position {position}")
        new_lease = lease.begin_handoff(_agent_lease(fresh))  # type: ignore[arg-type]
        return {
            **new_lease.to_status(),
            "migration": _migration_ref(mr, Phase.CHECKPOINTING),
            "phase": api.AgentPhase.MIGRATING.value,
        }

    updated = await update_agent(ctx, _ns(mr), _agent_name(mr), handoff, fresh=agent)
    metrics.AUTHORITY_CHANGES.labels("handoff").inc()
    if updated is not None:
        await _event(
            ctx,
            updated,
            Event.normal(
                "HandoffInitiated",
                f"{(mr.get('status') or {}).get('source')} stops ticking at epoch "
                f"{(updated.get('status') or {}).get('epoch')} for MigrationRequest {_name(mr)}",
            ),
        )
    return await step_freeze(ctx, mr, updated, act, mem)


async def _freeze(ctx: Context, mr, mem: MigrationMemory) -> dict[str, Any]:
    status = mr.get("status") or {}
    source = status.get("source", "")
    node = ctx.node_infos(datetime.now(UTC)).get(source)
    if node is None or not node.address:
        raise StepError(
            "SourceUnknown", f"source node {source} has no address", ErrorClass.RETRIABLE
        )
    epoch = migration.handoff_epoch(migration.epoch_of(status.get("sourceEpoch")))  # type: ignore[arg-type]
    answer = await ctx.nodes.freeze(node.address, _ns(mr), _agent_name(mr), epoch)
    if mem.freeze is None or mem.freeze.get("hash") != answer.get("hash"):
        mem.freeze = answer
        mem.frozen_at = time.time()
    return answer


async def step_freeze(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    answer = await _freeze(ctx, mr, mem)
    status = mr.get("status") or {}
    message = (
        f"{status.get('source')} froze the agent at tick {answer['tick']} (final checkpoint "
        f"{answer.get('hash')})"
    )
    mr = await write_mr(
        ctx,
        mr,
        migration.enter(
            status,
            Phase.VERIFYING,
            replay={"toTick": int(answer["tick"])},
            message=message,
        ),
    )
    await _event(ctx, mr, Event.normal("Frozen", message))
    mem.failures = 0
    return 0.0


async def _final_checkpoint(ctx: Context, mr, address: str, answer: dict[str, Any]):
    location = str(answer.get("location") or "")
    data: bytes | None = None
    prefix = "configmap://"
    if location.startswith(prefix):
        namespace, _, name = location[len(prefix) :].partition("/")
        try:
            data = await ctx.kube.config_map_bytes(namespace, name, "checkpoint")
        except (NotFound, ApiException) as exc:
            # Not readable by the operator (RBAC) or gone: the source serves it too.
            log.debug("reading %s: %s; asking the source", location, exc)
            data = None
    if data is None:
        data = await ctx.nodes.checkpoint(address, _ns(mr), _agent_name(mr))
    try:
        final = ckpt.decode(data)
    except ckpt.CheckpointError as exc:
        raise StepError("BadCheckpoint", f"final checkpoint: {exc}", ErrorClass.FATAL) from None
    want = str(answer.get("hash") or "")
    got = "sha256:" + final.hash.hex()
    if want and want.removeprefix("sha256:") != got.removeprefix("sha256:"):
        # The store may briefly lag the node's answer; ask again.
        raise StepError(
            "CheckpointMismatch",
            f"the stored checkpoint is {got} at tick {final.tick}, the source reported {want} "
            f"at tick {answer.get('tick')}",
            ErrorClass.RETRIABLE,
        )
    return final


async def _module_bytes(ctx: Context, agent: dict[str, Any]) -> bytes:
    module = (agent.get("spec") or {}).get("module") or {}
    if module.get("configMap"):
        ref = module["configMap"]
        try:
            return await ctx.kube.config_map_bytes(
                agent["metadata"]["namespace"], ref["name"], ref["key"]
            )
        except (NotFound, ApiException) as exc:
            raise StepError(
                "ModuleUnavailable",
                f"the bundle leaves the module out and ConfigMap {ref['name']} is not readable: "
                f"{exc}",
                ErrorClass.RETRIABLE,
            ) from None
    url = module.get("url")
    if not url:
        raise StepError("NoModule", "spec.module names no module", ErrorClass.FATAL)
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        if resp.status != 200:
            raise StepError(
                "ModuleDownload", f"GET {url} answered {resp.status}", ErrorClass.RETRIABLE
            )
        return await resp.read()


async def step_verify(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    source = status.get("source", "")
    answer = mem.freeze or await _freeze(ctx, mr, mem)
    node = ctx.node_infos(datetime.now(UTC)).get(source)
    if node is None or not node.address:
        raise StepError("SourceUnknown", f"source {source} has no address", ErrorClass.RETRIABLE)
    try:
        bundle = await ctx.nodes.bundle(node.address, _ns(mr), _agent_name(mr))
    except StepError as exc:
        if exc.status != 409:
            raise
        # 409: no tick ran since the source restored the agent, so the final checkpoint is the
        # one it restored from: there is nothing to replay.
        final = await _final_checkpoint(ctx, mr, node.address, answer)
        return await _verified(
            ctx,
            mr,
            status,
            gate.skipped(final, f"nothing to replay: {exc}"),
        )
    final = await _final_checkpoint(ctx, mr, node.address, answer)
    started = time.monotonic()
    try:
        result = await ctx.sandbox.replay(bundle)
        if result.get("input") and "module" in str(result.get("error")):
            result = await ctx.sandbox.replay(bundle, await _module_bytes(ctx, agent))
    except gate.GateError as exc:
        mem.gate_errors += 1
        metrics.REPLAY_VERDICTS.labels("Error").inc()
        await _event(ctx, mr, Event.warning("ReplayError", str(exc)))
        delay = backoff(mem.gate_errors - 1)
        mem.retry_at = time.monotonic() + delay
        return delay
    finally:
        metrics.REPLAY_SECONDS.observe(time.monotonic() - started)
    digest = ((agent.get("spec") or {}).get("module") or {}).get("digest", "")
    verdict = gate.judge(
        result, final, agent_id=f"{_ns(mr)}/{_agent_name(mr)}", module_digest=digest
    )
    metrics.REPLAY_VERDICTS.labels(verdict.verdict.value).inc()
    replay = {**(status.get("replay") or {}), **verdict.replay}
    if verdict.passed:
        return await _verified(ctx, mr, status, verdict)
    if not verdict.fatal:
        mem.gate_errors += 1
        await _event(ctx, mr, Event.warning(verdict.reason, verdict.message))
        delay = backoff(mem.gate_errors - 1)
        mem.retry_at = time.monotonic() + delay
        return delay
    replay["bundle"] = await _save_bundle(ctx, mr, bundle)
    conds = api.set_condition(
        status.get("conditions"),
        api.condition(MCond.REPLAY_VERIFIED, False, verdict.reason, verdict.message),
    )
    fail = Action(Kind.FAIL, reason=verdict.reason, message=verdict.message, revert=True)
    return await step_fail(ctx, mr, agent, fail, mem, extra={"replay": replay, "conditions": conds})


async def _verified(ctx: Context, mr, status, verdict: gate.Judgement) -> float:
    replay = {**(status.get("replay") or {}), **verdict.replay}
    conds = api.set_condition(
        status.get("conditions"),
        api.condition(MCond.REPLAY_VERIFIED, True, verdict.reason, verdict.message),
    )
    mr = await write_mr(
        ctx,
        mr,
        migration.enter(
            status, Phase.TRANSFERRING, replay=replay, conditions=conds, message=verdict.message
        ),
    )
    await _event(ctx, mr, Event.normal(verdict.reason, verdict.message))
    return 0.0


async def _save_bundle(ctx: Context, mr, bundle: bytes) -> str:
    """Keep the bundle where a person can fetch it: a ConfigMap owned by the request."""
    name = bundle_configmap_name(_name(mr))
    if len(bundle) > MAX_BUNDLE_CONFIGMAP:
        return (
            f"not stored: {len(bundle)} bytes exceed a ConfigMap; fetch it from the source node "
            f"(GET /v1/agents/{_ns(mr)}/{_agent_name(mr)}/bundle)"
        )
    try:
        await ctx.kube.put_config_map(
            _ns(mr),
            name,
            {"bundle": bundle},
            owner=owner_reference(mr),
            labels={"app.kubernetes.io/managed-by": "igor", "igor.dev/migration": _name(mr)[:63]},
            annotations={"igor.dev/agent": _agent_name(mr)},
        )
    except Exception as exc:
        log.warning("could not store the replay bundle of %s: %s", _name(mr), exc)
        return f"not stored: {exc}"
    return f"configmap://{_ns(mr)}/{name}"


async def step_check_target(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    message = f"{act.target} fits; cutting over"
    mr = await write_mr(ctx, mr, migration.enter(status, Phase.CUTTING_OVER, message=message))
    await _event(ctx, mr, Event.normal("CuttingOver", message))
    return 0.0


async def step_cut_over(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    target = act.target or status.get("target", "")
    source = status.get("source", "")

    def cut(fresh: dict[str, Any]) -> dict[str, Any] | None:
        position = _position(mr, fresh)
        if position is migration.Position.CUT:
            return None
        if position is not migration.Position.HANDOFF:
            raise Precondition(f"cannot cut over: lease position {position}")
        new_lease = lease.cut_over(_agent_lease(fresh), target)  # type: ignore[arg-type]
        gen = (fresh.get("metadata") or {}).get("generation")
        message = (
            f"migrated from {source} to {target} at epoch {lifecycle.epoch_text(new_lease)} "
            f"by MigrationRequest {_name(mr)}"
        )
        fragment = lifecycle.authority_status(
            (fresh.get("status") or {}).get("conditions"),
            new_lease,
            lifecycle.MIGRATED,
            message,
            gen,
        )
        fragment["migration"] = _migration_ref(mr, Phase.CUTTING_OVER)
        fragment["phase"] = api.AgentPhase.MIGRATING.value
        return fragment

    updated = await update_agent(ctx, _ns(mr), _agent_name(mr), cut, fresh=agent)
    metrics.AUTHORITY_CHANGES.labels("cut-over").inc()
    new_epoch = migration.cut_epoch(migration.epoch_of(status.get("sourceEpoch")))  # type: ignore[arg-type]
    conds = api.set_condition(
        status.get("conditions"),
        api.condition(
            MCond.CUT_OVER,
            True,
            "CutOver",
            f"authority moved to {target} at epoch {new_epoch.major}.{new_epoch.minor}",
        ),
    )
    message = f"cut over to {target}; waiting for its first tick"
    mr = await write_mr(
        ctx,
        mr,
        {"conditions": conds, "targetEpoch": migration.epoch_dict(new_epoch), "message": message},
    )
    await _event(ctx, mr, Event.normal("CutOver", message))
    await _event(
        ctx,
        updated,
        Event.normal("Migrated", f"{source} -> {target} at epoch {new_epoch.major}.0"),
    )
    return 0.05


def _release_lock(mr, phase: Phase, reason: str, message: str, revert: bool):
    """The agent fragment that ends this migration's hold on the agent (and reverts)."""

    def release(fresh: dict[str, Any]) -> dict[str, Any] | None:
        fragment: dict[str, Any] = {}
        if revert and _position(mr, fresh) is migration.Position.HANDOFF:
            reverted = lease.revert_handoff(_agent_lease(fresh))  # type: ignore[arg-type]
            fragment.update(reverted.to_status())
            metrics.AUTHORITY_CHANGES.labels("revert").inc()
        if _owns_lock(fresh, mr):
            ref = (fresh.get("status") or {}).get("migration") or {}
            if ref.get("phase") != phase.value:
                fragment["migration"] = _migration_ref(mr, phase)
            conds = _migrating_condition(fresh, False, reason, message)
            if conds != (fresh.get("status") or {}).get("conditions"):
                fragment["conditions"] = conds
        return fragment or None

    return release


def _finish_metrics(mr, result: Phase, reason: str) -> None:
    metrics.MIGRATIONS.labels(result.value, reason).inc()
    created = scheduler.parse_time((mr.get("metadata") or {}).get("creationTimestamp"))
    if created is not None:
        seconds = (datetime.now(UTC) - created).total_seconds()
        metrics.MIGRATION_SECONDS.labels(result.value).observe(max(0.0, seconds))


async def step_finish(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    fragment: dict[str, Any] = {}
    if act.measured and mem.frozen_at is not None and agent is not None:
        interval = int(((agent.get("spec") or {}).get("tick") or {}).get("intervalMillis") or 1000)
        ms = (time.time() - mem.frozen_at) * 1000
        fragment["downtime"] = migration.downtime(ms, interval)
        metrics.DOWNTIME_SECONDS.observe(ms / 1000)
    await update_agent(
        ctx,
        _ns(mr),
        _agent_name(mr),
        _release_lock(mr, Phase.SUCCEEDED, "MigrationSucceeded", act.message, revert=False),
    )
    mr = await write_mr(
        ctx, mr, migration.enter(status, Phase.SUCCEEDED, message=act.message, **fragment)
    )
    _finish_metrics(mr, Phase.SUCCEEDED, act.reason or "Succeeded")
    await _event(ctx, mr, Event.normal("Succeeded", act.message))
    return 0.0


async def step_finish_dry_run(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    await update_agent(
        ctx,
        _ns(mr),
        _agent_name(mr),
        _release_lock(mr, Phase.SUCCEEDED, "DryRun", act.message, revert=True),
    )
    fragment: dict[str, Any] = {}
    if mem.frozen_at is not None and agent is not None:
        interval = int(((agent.get("spec") or {}).get("tick") or {}).get("intervalMillis") or 1000)
        # What a real cut-over would at least have cost: freeze to verified transfer.
        fragment["downtime"] = migration.downtime((time.time() - mem.frozen_at) * 1000, interval)
    mr = await write_mr(
        ctx, mr, migration.enter(status, Phase.SUCCEEDED, message=act.message, **fragment)
    )
    _finish_metrics(mr, Phase.SUCCEEDED, "DryRun")
    await _event(ctx, mr, Event.normal("DryRunSucceeded", act.message))
    return 0.0


async def step_fail(
    ctx: Context, mr, agent, act: Action, mem, extra: dict[str, Any] | None = None
) -> float | None:
    status = mr.get("status") or {}
    updated = await update_agent(
        ctx,
        _ns(mr),
        _agent_name(mr),
        _release_lock(mr, Phase.FAILED, act.reason or "Failed", act.message, revert=act.revert),
    )
    message = act.message
    if act.revert:
        message += f"; the agent stays on {status.get('source')}"
    mr = await write_mr(
        ctx, mr, migration.enter(status, Phase.FAILED, message=message, **(extra or {}))
    )
    _finish_metrics(mr, Phase.FAILED, act.reason or "Failed")
    await _event(ctx, mr, Event.warning(act.reason or "Failed", message))
    if updated is not None:
        await _event(ctx, updated, Event.warning("MigrationFailed", f"{_name(mr)}: {message}"))
    return 0.0


async def step_abort(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    status = mr.get("status") or {}
    await update_agent(
        ctx,
        _ns(mr),
        _agent_name(mr),
        _release_lock(mr, Phase.ABORTED, "MigrationAborted", act.message, revert=act.revert),
    )
    conds = api.set_condition(
        status.get("conditions"),
        api.condition(MCond.ABORT_REQUESTED, True, "Deleted", act.message),
    )
    mr = await write_mr(
        ctx,
        mr,
        migration.enter(status, Phase.ABORTED, message=act.message, conditions=conds),
    )
    _finish_metrics(mr, Phase.ABORTED, "Deleted")
    await _event(ctx, mr, Event.normal("Aborted", act.message))
    return await step_release(ctx, mr, agent, Action(Kind.RELEASE), mem)


async def step_release(ctx: Context, mr, agent, act: Action, mem) -> float | None:
    if act.warning:
        await _event(ctx, mr, Event.warning(act.reason, act.message))
    meta = mr["metadata"]
    finalizers = [f for f in meta.get("finalizers") or () if f != migration.FINALIZER]
    try:
        updated = await ctx.kube.patch_metadata(
            "migration",
            _ns(mr),
            _name(mr),
            {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")},
        )
    except NotFound:
        return None
    ctx.cache.put(cache_mod.MIGRATION, updated)
    ctx.memory.pop(meta.get("uid", ""), None)
    if agent is not None:
        ctx.enqueue(agent_key(_ns(mr), _agent_name(mr)))
    return None


async def _step_failed(ctx: Context, mr, agent, mem: MigrationMemory, exc: StepError):
    status = mr.get("status") or {}
    if exc.error_class is ErrorClass.FATAL:
        act = Action(Kind.FAIL, reason=exc.kind, message=str(exc), revert=True)
        return await step_fail(ctx, mr, agent, act, mem)
    mem.failures += 1
    delay = backoff(mem.failures - 1)
    message = f"{exc} ({exc.error_class.value.lower()} error; retrying with backoff)"
    if message != status.get("message"):
        with contextlib.suppress(Conflict):
            await write_mr(ctx, mr, {"message": message})
        await _event(ctx, mr, Event.warning(exc.kind, str(exc)))
    return delay


STEPS = {
    Kind.NONE: step_none,
    Kind.INIT: step_init,
    Kind.WAIT: step_wait,
    Kind.START: step_start,
    Kind.TARGET: step_target,
    Kind.BEGIN_HANDOFF: step_begin_handoff,
    Kind.FREEZE: step_freeze,
    Kind.VERIFY: step_verify,
    Kind.CHECK_TARGET: step_check_target,
    Kind.CUT_OVER: step_cut_over,
    Kind.FINISH: step_finish,
    Kind.FINISH_DRY_RUN: step_finish_dry_run,
    Kind.FAIL: step_fail,
    Kind.ABORT: step_abort,
    Kind.RELEASE: step_release,
}
