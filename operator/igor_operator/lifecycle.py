"""IgorAgent lifecycle decisions: binding, recovery, stale handoffs, and the phase.

`plan` looks at one agent and the cluster around it and says what its status should be; it
performs no I/O. The authority changes it decides (bind, recover, revert) come from igor.lease,
and the caller writes them with the agent's resourceVersion, so two writers never both win.

The operator resets the Ready condition to Unknown whenever authority moves (bind, recovery,
cut-over); the new holder sets it True once it runs the agent at the new epoch, and only then is
the phase Running (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from igor import api, lease
from igor.api import AgentConditionType as Cond
from igor.api import AgentPhase, LeaseState

from . import manifests, scheduler
from .events import Event

HANDOFF_STATES = frozenset({LeaseState.HANDOFF_INITIATED, LeaseState.HANDOFF_PENDING})

# Reasons of the Scheduled condition; the phase before Ready depends on how authority arrived.
BOUND = "Bound"
RECOVERED = "Recovered"
MIGRATED = "Migrated"
UNSCHEDULABLE = "Unschedulable"
INVALID_MANIFEST = "InvalidManifest"
AWAITING_HOLDER = "AwaitingHolder"
HANDOFF_IN_PROGRESS = "HandoffInProgress"  # the node's Ready reason while frozen


@dataclass
class AgentPlan:
    """Status fields to merge (empty: nothing to write), the events to emit, what moved."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # "bind", "recover", "require-recovery", "revert" when the lease changes, else None.
    authority: str | None = None
    target: str | None = None

    @property
    def empty(self) -> bool:
        return not self.status


def epoch_text(lease_: lease.AgentLease) -> str:
    return f"{lease_.epoch.major}.{lease_.epoch.minor}"


def migration_in_progress(status: Mapping[str, Any]) -> bool:
    phase = (status.get("migration") or {}).get("phase")
    return bool(phase) and not api.MigrationPhase(phase).terminal


def phase_for(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    lease_: lease.AgentLease | None,
    migration_active: bool,
) -> AgentPhase:
    conditions = status.get("conditions")
    if lease_ is None:
        if spec.get("suspend"):
            return AgentPhase.SUSPENDED
        sched = api.find_condition(conditions, Cond.SCHEDULED) or {}
        if sched.get("reason") == INVALID_MANIFEST:
            return AgentPhase.FAILED
        return AgentPhase.PENDING
    if migration_active or lease_.state in HANDOFF_STATES:
        return AgentPhase.MIGRATING
    if lease_.state is LeaseState.RECOVERY_REQUIRED:
        return AgentPhase.RECOVERING
    if spec.get("suspend"):
        return AgentPhase.SUSPENDED
    ready = api.find_condition(conditions, Cond.READY) or {}
    # After a reverted handoff the holder ticks again before it next reports; its last word,
    # HandoffInProgress, is stale once the lease is Active again.
    if ready.get("status") == "True" or ready.get("reason") == HANDOFF_IN_PROGRESS:
        return AgentPhase.RUNNING
    reason = (api.find_condition(conditions, Cond.SCHEDULED) or {}).get("reason")
    if reason == RECOVERED:
        return AgentPhase.RECOVERING
    if reason == MIGRATED:
        return AgentPhase.MIGRATING
    return AgentPhase.SCHEDULED


def authority_status(
    conditions: Iterable[Mapping[str, Any]] | None,
    new_lease: lease.AgentLease,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The status fragment that moves authority to new_lease.holder."""
    conds = api.set_condition(
        conditions, api.condition(Cond.SCHEDULED, True, reason, message, generation, now)
    )
    conds = api.set_condition(
        conds,
        api.condition(
            Cond.READY,
            api.ConditionStatus.UNKNOWN,
            AWAITING_HOLDER,
            f"waiting for {new_lease.holder} to run the agent at epoch {epoch_text(new_lease)}",
            generation,
            now,
        ),
    )
    return {**new_lease.to_status(), "conditions": conds}


def plan(
    agent: Mapping[str, Any],
    nodes: Collection[scheduler.NodeInfo],
    live_nodes: Collection[str],
    *,
    migration_active: bool = False,
    now: datetime | None = None,
) -> AgentPlan:
    """Decide the agent's next status.

    ``nodes``: IgorNodes with their bound-agent counts; ``live_nodes``: names whose node Lease is
    valid now; ``migration_active``: a MigrationRequest named in status.migration exists and is
    not final (it owns the lease while it runs).
    """
    meta = agent.get("metadata") or {}
    spec = agent.get("spec") or {}
    old = dict(agent.get("status") or {})
    gen = meta.get("generation")
    result = AgentPlan()
    if meta.get("deletionTimestamp"):
        return result

    status: dict[str, Any] = dict(old)
    if not old.get("phase"):
        limit = int((spec.get("budget") or {}).get("limit") or 0)
        status.update(api.initial_agent_status(limit, gen or 0))
    conditions = status.get("conditions")
    current = lease.AgentLease.from_status(old)

    invalid = manifests.problem(spec.get("manifest"))
    if invalid is not None and current is None:
        conditions = api.set_condition(
            conditions,
            api.condition(Cond.SCHEDULED, False, INVALID_MANIFEST, str(invalid), gen, now),
        )
        status["conditions"] = conditions
        if _changed_condition(old, Cond.SCHEDULED, conditions):
            result.events.append(Event.warning(INVALID_MANIFEST, str(invalid)))
    elif invalid is not None:
        conditions = api.set_condition(
            conditions, api.condition(Cond.DEGRADED, True, INVALID_MANIFEST, str(invalid), gen, now)
        )
        status["conditions"] = conditions
        if _changed_condition(old, Cond.DEGRADED, conditions):
            result.events.append(Event.warning(INVALID_MANIFEST, str(invalid)))
    elif current is None and not spec.get("suspend"):
        _plan_binding(spec, status, nodes, gen, now, result)
    elif current is not None:
        _plan_authority(
            spec, status, current, nodes, live_nodes, migration_active, gen, now, result
        )

    final_lease = lease.AgentLease.from_status(status)
    phase = phase_for(spec, status, final_lease, migration_active)
    status["phase"] = phase.value
    status["observedGeneration"] = gen or 0
    if phase.value != old.get("phase") and old.get("phase"):
        where = (
            f" on {final_lease.holder} at epoch {epoch_text(final_lease)}" if final_lease else ""
        )
        result.events.append(Event.normal(phase.value, f"agent is {phase.value}{where}"))
    result.status = {k: v for k, v in status.items() if old.get(k) != v}
    return result


def _changed_condition(old: Mapping[str, Any], type_: str, new_conditions) -> bool:
    before = api.find_condition(old.get("conditions"), type_)
    after = api.find_condition(new_conditions, type_)
    if before is None or after is None:
        return before != after
    return (before.get("status"), before.get("reason"), before.get("message")) != (
        after.get("status"),
        after.get("reason"),
        after.get("message"),
    )


def _plan_binding(spec, status, nodes, gen, now, result: AgentPlan) -> None:
    req = scheduler.Requirements.for_agent(spec)
    ranked = scheduler.candidates(req, nodes)
    if not ranked:
        message = scheduler.explain(req, nodes)
        conds = api.set_condition(
            status.get("conditions"),
            api.condition(Cond.SCHEDULED, False, UNSCHEDULABLE, message, gen, now),
        )
        if _changed_condition(status, Cond.SCHEDULED, conds):
            result.events.append(Event.warning("FailedScheduling", message))
        status["conditions"] = conds
        return
    target = ranked[0].name
    new_lease = lease.bind(target)
    message = f"bound to {target} at epoch {epoch_text(new_lease)}"
    status.update(authority_status(status.get("conditions"), new_lease, BOUND, message, gen, now))
    result.events.append(Event.normal("Scheduled", message))
    result.authority, result.target = "bind", target


def _plan_authority(
    spec, status, current: lease.AgentLease, nodes, live_nodes, migration_active, gen, now, result
) -> None:
    holder_lost = current.holder not in live_nodes
    if holder_lost or current.state is LeaseState.RECOVERY_REQUIRED:
        req = scheduler.Requirements.for_agent(spec)
        # A holder that lost its Lease is never a target; one whose authority is merely ambiguous
        # (RecoveryRequired with a live Lease) may take the agent back at a new epoch.
        exclude = {current.holder} if holder_lost else set()
        ranked = scheduler.candidates(req, nodes, exclude=exclude)
        why = (
            f"node {current.holder} lost its lease"
            if holder_lost
            else f"authority of {current.holder} is ambiguous"
        )
        if not ranked:
            message = f"{why}; no node to recover to: {scheduler.explain(req, nodes, exclude)}"
            conds = api.set_condition(
                status.get("conditions"),
                api.condition(Cond.SCHEDULED, False, "NoNodeForRecovery", message, gen, now),
            )
            if current.state is not LeaseState.RECOVERY_REQUIRED:
                required = lease.require_recovery(current)
                status.update(required.to_status())
                result.authority = "require-recovery"
                result.events.append(Event.warning("NodeLost", message))
            elif _changed_condition(status, Cond.SCHEDULED, conds):
                result.events.append(Event.warning("FailedRecovery", message))
            status["conditions"] = conds
            return
        target = ranked[0].name
        new_lease = lease.recover(current, target)
        message = (
            f"{why}; recovered to {target} at epoch {epoch_text(new_lease)} from the last "
            "durable checkpoint"
        )
        status.update(
            authority_status(status.get("conditions"), new_lease, RECOVERED, message, gen, now)
        )
        result.events.append(Event.warning("Recovered", message))
        result.authority, result.target = "recover", target
        return
    if current.state in HANDOFF_STATES and not migration_active:
        # The MigrationRequest that started this handoff is gone or final without reverting it
        # (deleted without its finalizer, or the operator died in between): give the agent
        # back to its holder.
        new_lease = lease.revert_handoff(current)
        status.update(new_lease.to_status())
        result.authority, result.target = "revert", current.holder
        result.events.append(
            Event.warning(
                "HandoffReverted",
                f"no migration owns the handoff at epoch {epoch_text(current)}; "
                f"{current.holder} resumes at epoch {epoch_text(new_lease)}",
            )
        )


def counts_by_holder(agents: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Agents per holder node: what a node's capacity is measured against."""
    counts: dict[str, int] = {}
    for agent in agents:
        holder = ((agent.get("status") or {}).get("lease") or {}).get("holder")
        state = ((agent.get("status") or {}).get("lease") or {}).get("state")
        if holder and state != LeaseState.RETIRED:
            counts[holder] = counts.get(holder, 0) + 1
    return counts
