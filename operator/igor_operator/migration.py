"""The MigrationRequest state machine, as pure functions.

`decide` looks at a MigrationRequest, its agent and the nodes, and returns the next action; the
handlers in migrations.py perform it (API writes, node calls, the replay gate) and record the
result with `enter`. Everything the machine needs is in the two objects' status, so an operator
that restarts mid-migration carries on from where the last one stopped:

    Pending -> Scheduling -> Checkpointing -> Verifying -> Transferring -> CuttingOver -> Succeeded
                                (any step before the cut-over) -> Failed | Aborted

The agent's lease says how far authority has moved (see `lease_position`); each phase's action
is chosen from it, so a repeated step is either a no-op or idempotent. A lease that moved in a
way this migration did not cause (recovery after a node loss) ends the migration without
touching the agent again: ambiguous transfers resolve through recovery.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from igor import api, lease
from igor.api import MigrationConditionType as MCond
from igor.api import MigrationPhase as Phase
from igor.checkpoint import Epoch

from . import scheduler

FINALIZER = "igor.dev/migration"

# Phases in which a migration counts against the concurrency limits.
ACTIVE_PHASES = frozenset(
    {
        Phase.SCHEDULING,
        Phase.CHECKPOINTING,
        Phase.VERIFYING,
        Phase.TRANSFERRING,
        Phase.CUTTING_OVER,
    }
)


@dataclass(frozen=True)
class Limits:
    max_parallel: int = 5
    max_parallel_per_node: int = 2
    # A phase before the cut-over that takes longer than this fails the migration (the agent is
    # frozen meanwhile, so waiting forever would be an outage).
    phase_timeout: float = 60.0
    # After the cut-over, how long to wait for the target's first tick before calling it done.
    cutover_wait: float = 30.0
    # Replay gate runs that end in Error (sandbox crash, timeout) before the migration fails.
    gate_attempts: int = 3


class Position(enum.StrEnum):
    """Where the agent's authority stands relative to this migration."""

    BEFORE = "Before"  # Active on the source at sourceEpoch: nothing happened yet
    HANDOFF = "Handoff"  # HandoffInitiated on the source at sourceEpoch.minor + 1
    CUT = "Cut"  # on the target at sourceEpoch.major + 1: authority moved
    ELSEWHERE = "Elsewhere"  # anything else: the lease moved without this migration


class Kind(enum.StrEnum):
    NONE = "None"
    INIT = "Init"
    WAIT = "Wait"
    START = "Start"
    TARGET = "Target"
    BEGIN_HANDOFF = "BeginHandoff"
    FREEZE = "Freeze"
    VERIFY = "Verify"
    CHECK_TARGET = "CheckTarget"
    CUT_OVER = "CutOver"
    FINISH = "Finish"
    FINISH_DRY_RUN = "FinishDryRun"
    FAIL = "Fail"
    ABORT = "Abort"
    RELEASE = "Release"


@dataclass(frozen=True)
class Action:
    kind: Kind
    reason: str = ""
    message: str = ""
    # FAIL/ABORT: give the agent back to its source (revert the handoff) first.
    revert: bool = False
    target: str | None = None
    delay: float | None = None
    warning: bool = False
    # FINISH: the target was seen ticking, so the downtime can be measured now.
    measured: bool = False


def action(kind: Kind, **kw: Any) -> Action:
    return Action(kind, **kw)


@dataclass(frozen=True)
class Observed:
    mr: Mapping[str, Any]
    agent: Mapping[str, Any] | None
    nodes: Mapping[str, scheduler.NodeInfo]
    now: datetime
    # Other migrations in an active phase, cluster-wide and per node (source or target).
    active: int = 0
    active_per_node: Mapping[str, int] = field(default_factory=dict)
    # Another MigrationRequest named in the agent's status.migration is still running.
    other_migration: str | None = None
    # Replay gate attempts that ended in Error so far.
    gate_errors: int = 0
    # After the cut-over: the tick the target's own API reports at the new epoch, if asked,
    # and why it does not tick (paused, suspended) when it holds the agent but will not.
    target_tick: int | None = None
    target_idle: str | None = None


# --------------------------------------------------------------------------- status helpers


def phase_of(status: Mapping[str, Any] | None) -> Phase | None:
    value = (status or {}).get("phase")
    return Phase(value) if value else None


def stamp(now: datetime | None = None) -> str:
    """RFC 3339 in UTC with milliseconds: phases last tens of milliseconds, and per-phase
    latency is read from these stamps."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def enter(
    status: Mapping[str, Any] | None, phase: Phase, now: datetime | None = None, **fields: Any
) -> dict[str, Any]:
    """The status fragment that moves to ``phase``, recording when (a repeat is recorded too)."""
    stamps = list((status or {}).get("phaseTransitionTimestamps") or [])
    stamps.append({"phase": phase.value, "time": stamp(now)})
    return {"phase": phase.value, "phaseTransitionTimestamps": stamps, **fields}


def entered_at(status: Mapping[str, Any] | None, phase: Phase) -> datetime | None:
    for stamp in reversed((status or {}).get("phaseTransitionTimestamps") or []):
        if stamp.get("phase") == phase.value:
            return scheduler.parse_time(stamp.get("time"))
    return None


def epoch_of(value: Mapping[str, Any] | None) -> Epoch | None:
    if not value:
        return None
    return Epoch(int(value.get("major", 0)), int(value.get("minor", 0)))


def epoch_dict(epoch: Epoch) -> dict[str, int]:
    return {"major": epoch.major, "minor": epoch.minor}


def handoff_epoch(source_epoch: Epoch) -> Epoch:
    return source_epoch.next_minor()


def cut_epoch(source_epoch: Epoch) -> Epoch:
    return source_epoch.next_major()


def lease_position(status: Mapping[str, Any], agent_lease: lease.AgentLease | None) -> Position:
    source = status.get("source")
    source_epoch = epoch_of(status.get("sourceEpoch"))
    if agent_lease is None or source_epoch is None:
        return Position.ELSEWHERE
    if agent_lease.holder == source:
        if agent_lease.epoch == source_epoch and agent_lease.state is api.LeaseState.ACTIVE:
            return Position.BEFORE
        if agent_lease.epoch == handoff_epoch(source_epoch) and agent_lease.state in (
            api.LeaseState.HANDOFF_INITIATED,
            api.LeaseState.HANDOFF_PENDING,
        ):
            return Position.HANDOFF
    if agent_lease.holder == status.get("target") and agent_lease.epoch == cut_epoch(source_epoch):
        return Position.CUT
    return Position.ELSEWHERE


def is_cut_over(status: Mapping[str, Any]) -> bool:
    return api.is_condition_true(status.get("conditions"), MCond.CUT_OVER)


def is_active(mr: Mapping[str, Any]) -> bool:
    return phase_of(mr.get("status")) in ACTIVE_PHASES


def involved_nodes(mr: Mapping[str, Any]) -> set[str]:
    status = mr.get("status") or {}
    return {n for n in (status.get("source"), status.get("target")) if n}


# --------------------------------------------------------------------------- target selection


@dataclass(frozen=True)
class TargetChoice:
    target: str | None
    message: str = ""
    # No listed node can ever take the agent (each lacks something): do not retry.
    fatal: bool = False


def requested_targets(spec: Mapping[str, Any]) -> list[str]:
    names = [spec["targetNode"]] if spec.get("targetNode") else []
    for name in spec.get("candidates") or ():
        if name not in names:
            names.append(name)
    return names


def select_target(
    spec: Mapping[str, Any],
    req: scheduler.Requirements,
    nodes: Mapping[str, scheduler.NodeInfo],
    source: str,
    active_per_node: Mapping[str, int],
    per_node_limit: int,
    exclude: Sequence[str] = (),
) -> TargetChoice:
    """The first listed node that fits (targetNode, then candidates), else the scheduler's best.

    Busy nodes (at their migration limit) are skipped like full ones: both may clear up.
    """
    skip = {source, *exclude}
    listed = requested_targets(spec)
    reasons: dict[str, str] = {}
    if listed:
        for name in listed:
            if name == source:
                reasons[name] = "is the source"
                continue
            if name in skip:
                reasons[name] = "already failed"
                continue
            node = nodes.get(name)
            if node is None:
                reasons[name] = "not found"
                continue
            reason = scheduler.unfit_reason(req, node)
            if reason is None and active_per_node.get(name, 0) >= per_node_limit:
                reason = f"busy with {active_per_node[name]} migrations"
            if reason is None:
                return TargetChoice(name)
            reasons[name] = reason
        message = "no requested target fits: " + "; ".join(f"{n}: {r}" for n, r in reasons.items())
        permanent = all(
            scheduler.permanent(r) and not r.startswith("busy") and r != "not found"
            for n, r in reasons.items()
            if n != source
        )
        return TargetChoice(None, message, fatal=permanent and len(reasons) > 0)
    ranked = [
        n
        for n in scheduler.candidates(req, nodes.values(), exclude=skip)
        if active_per_node.get(n.name, 0) < per_node_limit
    ]
    if ranked:
        return TargetChoice(ranked[0].name)
    return TargetChoice(None, "no target: " + scheduler.explain(req, nodes.values(), skip))


def requirements(agent: Mapping[str, Any], source: scheduler.NodeInfo | None):
    req = scheduler.Requirements.for_agent(agent.get("spec") or {})
    return req.with_profile(source.profile if source else None)


# --------------------------------------------------------------------------- the decision


def decide(obs: Observed, limits: Limits = Limits()) -> Action:
    mr = obs.mr
    meta = mr.get("metadata") or {}
    spec = mr.get("spec") or {}
    status = mr.get("status") or {}
    phase = phase_of(status)
    deleting = bool(meta.get("deletionTimestamp"))
    finalized = FINALIZER in (meta.get("finalizers") or ())

    if phase is None:
        return action(Kind.RELEASE) if deleting else action(Kind.INIT)
    if phase.terminal:
        return action(Kind.RELEASE) if finalized else action(Kind.NONE)

    agent = obs.agent
    agent_status = (agent or {}).get("status") or {}
    current = lease.AgentLease.from_status(agent_status) if agent else None
    position = lease_position(status, current) if phase is not Phase.PENDING else None

    if deleting:
        if is_cut_over(status) or position is Position.CUT:
            return action(
                Kind.RELEASE,
                warning=True,
                reason="DeletedAfterCutOver",
                message="deleted after the cut-over: authority already moved to "
                f"{status.get('target')}; nothing to abort",
            )
        return action(
            Kind.ABORT,
            reason="Aborted",
            message="deleted before the cut-over: migration aborted",
            revert=position is Position.HANDOFF,
        )

    if agent is None:
        return action(
            Kind.FAIL,
            reason="AgentNotFound",
            message=f"IgorAgent {spec.get('agent')} not found in {meta.get('namespace')}",
        )

    if phase is Phase.PENDING:
        return _decide_pending(obs, limits, agent, current)

    assert position is not None
    if position is Position.ELSEWHERE:
        holder = current.holder if current else "nobody"
        where = f"{holder} at epoch {current.epoch.major}.{current.epoch.minor}" if current else ""
        if is_cut_over(status):
            return action(
                Kind.FINISH,
                reason="Succeeded",
                message=f"cut over to {status.get('target')}; the agent has since moved to {where}",
            )
        return action(
            Kind.FAIL,
            reason="Superseded",
            message=f"the agent's lease moved to {where or holder} outside this migration "
            "(recovery after a node loss?); nothing was cut over",
        )

    timeout = _phase_timeout(status, phase, position, obs.now, limits)
    if timeout is not None:
        return timeout

    if phase is Phase.SCHEDULING:
        if position is Position.HANDOFF:  # a previous operator got further than its status says
            return action(Kind.FREEZE)
        return _decide_target(obs, limits, agent, status, Kind.TARGET)
    if phase is Phase.CHECKPOINTING:
        return action(Kind.BEGIN_HANDOFF) if position is Position.BEFORE else action(Kind.FREEZE)
    if phase is Phase.VERIFYING:
        if position is not Position.HANDOFF:
            return action(Kind.BEGIN_HANDOFF)
        if obs.gate_errors >= limits.gate_attempts:
            return action(
                Kind.FAIL,
                reason="ReplayError",
                message=f"the replay gate failed {obs.gate_errors} times; see events",
                revert=True,
            )
        return action(Kind.VERIFY)
    if phase is Phase.TRANSFERRING:
        if position is not Position.HANDOFF:
            return action(Kind.BEGIN_HANDOFF)
        return _decide_transfer(obs, limits, agent, status, spec)
    if phase is Phase.CUTTING_OVER:
        if position is Position.HANDOFF:
            return action(Kind.CUT_OVER, target=status.get("target"))
        if position is Position.BEFORE:
            return action(Kind.BEGIN_HANDOFF)
        return _decide_after_cut(obs, limits, agent_status, status)
    return action(Kind.NONE)


def _decide_pending(obs: Observed, limits: Limits, agent, current) -> Action:
    spec = agent.get("spec") or {}
    policy = ((spec.get("manifest") or {}).get("migrationPolicy")) or {}
    name = (agent.get("metadata") or {}).get("name")
    if policy.get("enabled") is False:
        return action(
            Kind.FAIL,
            reason="MigrationDisabled",
            message=f"IgorAgent {name} forbids migration (spec.manifest.migrationPolicy.enabled "
            "is false)",
        )
    if current is None or current.state is not api.LeaseState.ACTIVE:
        state = current.state.value if current else "unscheduled"
        return action(
            Kind.WAIT,
            reason="AgentNotActive",
            message=f"waiting for IgorAgent {name} to run on a node (lease: {state})",
            delay=1.0,
        )
    if current.holder not in obs.nodes or not obs.nodes[current.holder].lease_valid:
        return action(
            Kind.WAIT,
            reason="SourceNotLive",
            message=f"waiting: the agent's node {current.holder} has no valid lease",
            delay=1.0,
        )
    if obs.other_migration:
        return action(
            Kind.WAIT,
            reason="AgentBusy",
            message=f"waiting for migration {obs.other_migration} of the same agent",
            delay=1.0,
        )
    if obs.active >= limits.max_parallel:
        return action(
            Kind.WAIT,
            reason="ClusterLimit",
            message=f"waiting: {obs.active}/{limits.max_parallel} migrations running",
            delay=0.5,
        )
    busy = obs.active_per_node.get(current.holder, 0)
    if busy >= limits.max_parallel_per_node:
        return action(
            Kind.WAIT,
            reason="NodeLimit",
            message=f"waiting: {busy}/{limits.max_parallel_per_node} migrations on "
            f"{current.holder}",
            delay=0.5,
        )
    return action(Kind.START, target=current.holder)


def _decide_target(obs: Observed, limits: Limits, agent, status, kind: Kind) -> Action:
    spec = obs.mr.get("spec") or {}
    source = status.get("source") or ""
    req = requirements(agent, obs.nodes.get(source))
    choice = select_target(
        spec, req, obs.nodes, source, obs.active_per_node, limits.max_parallel_per_node
    )
    if choice.target:
        return action(kind, target=choice.target)
    if choice.fatal:
        return action(Kind.FAIL, reason="NoFittingTarget", message=choice.message)
    return action(Kind.WAIT, reason="NoTarget", message=choice.message, delay=1.0)


def _decide_transfer(obs: Observed, limits: Limits, agent, status, spec) -> Action:
    target = status.get("target")
    source = status.get("source") or ""
    req = requirements(agent, obs.nodes.get(source))
    node = obs.nodes.get(target or "")
    reason = "not found" if node is None else scheduler.unfit_reason(req, node)
    if reason is None:
        if spec.get("dryRun"):
            return action(
                Kind.FINISH_DRY_RUN,
                reason="DryRun",
                message=f"dry run: {target} could take the agent; cut-over skipped",
                revert=True,
                target=target,
            )
        return action(Kind.CHECK_TARGET, target=target)
    # The target stopped fitting after the freeze: fall back to the next candidate. The
    # verification holds for any target, so only the transfer step repeats.
    choice = select_target(
        spec,
        req,
        obs.nodes,
        source,
        obs.active_per_node,
        limits.max_parallel_per_node,
        exclude=[target] if target else [],
    )
    if choice.target:
        return action(
            Kind.TARGET,
            target=choice.target,
            message=f"target {target} {reason}; falling back to {choice.target}",
        )
    if choice.fatal:
        return action(
            Kind.FAIL,
            reason="NoFittingTarget",
            message=f"target {target} {reason}; {choice.message}",
            revert=True,
        )
    return action(
        Kind.WAIT,
        reason="TargetNotReady",
        message=f"target {target} {reason}; {choice.message}",
        delay=0.5,
    )


def _decide_after_cut(obs: Observed, limits: Limits, agent_status, status) -> Action:
    final_tick = int((status.get("replay") or {}).get("toTick") or 0)
    tick = max(int(agent_status.get("tick") or 0), obs.target_tick or 0)
    cut_at = entered_at(status, Phase.CUTTING_OVER)
    if tick > final_tick:
        return action(
            Kind.FINISH,
            reason="Succeeded",
            message=f"{status.get('target')} resumed at tick {final_tick + 1}",
            measured=True,
        )
    if obs.target_idle:
        return action(
            Kind.FINISH,
            reason="Succeeded",
            message=f"{status.get('target')} holds the agent at tick {final_tick} and does not "
            f"tick it ({obs.target_idle})",
        )
    if cut_at is not None and obs.now - cut_at > timedelta(seconds=limits.cutover_wait):
        return action(
            Kind.FINISH,
            reason="Succeeded",
            message=f"cut over to {status.get('target')}; it has not committed a tick within "
            f"{limits.cutover_wait:.0f}s (downtime not measured)",
        )
    return action(Kind.WAIT, reason="AwaitingTarget", message="", delay=0.05)


def _phase_timeout(status, phase: Phase, position: Position, now: datetime, limits: Limits):
    if phase is Phase.CUTTING_OVER:
        return None
    since = entered_at(status, phase)
    if since is None or now - since <= timedelta(seconds=limits.phase_timeout):
        return None
    return action(
        Kind.FAIL,
        reason="Timeout",
        message=f"phase {phase.value} did not complete within {limits.phase_timeout:.0f}s",
        revert=position is Position.HANDOFF,
    )


def downtime(ms: float | None, interval_ms: int) -> dict[str, int] | None:
    """status.downtime: milliseconds between freeze and the target's first tick, and the tick
    slots the agent missed meanwhile at its interval."""
    if ms is None:
        return None
    ms = max(0, int(ms))
    return {"milliseconds": ms, "ticks": ms // max(1, int(interval_ms))}
