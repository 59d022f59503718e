"""The MigrationRequest state machine: one decision per observed state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from igor import api
from igor_operator import migration
from igor_operator.migration import FINALIZER, Kind, Limits, Observed
from igor_operator.scheduler import NodeInfo

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
CAPS = {"clock": 1, "rand": 1, "log": 1}


def node(name, caps=CAPS, **kw):
    return NodeInfo(
        name=name,
        capabilities=caps,
        price=kw.pop("price", 1000),
        capacity=10,
        ready=kw.pop("ready", True),
        lease_valid=kw.pop("lease_valid", True),
        address=f"http://{name}",
        **kw,
    )


NODES = {n.name: n for n in (node("a"), node("b"), node("c", caps={"log": 1}))}


def agent(holder="a", major=1, minor=0, state="Active", tick=10, enabled=True, mig=None):
    status = {
        "lease": {"holder": holder, "epoch": {"major": major, "minor": minor}, "state": state},
        "tick": tick,
    }
    if mig:
        status["migration"] = mig
    return {
        "metadata": {"name": "ag", "namespace": "ns"},
        "spec": {
            "manifest": {
                "capabilities": {"clock": {"version": 1}, "log": {"version": 1}},
                "migrationPolicy": {"enabled": enabled},
            },
            "tick": {"intervalMillis": 100},
        },
        "status": status,
    }


def mr(phase=None, *, since=NOW, deleting=False, finalizer=True, spec=None, **status):
    meta = {"name": "m1", "namespace": "ns", "finalizers": [FINALIZER] if finalizer else []}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T12:00:00Z"
    body = {"metadata": meta, "spec": {"agent": "ag", **(spec or {})}, "status": {}}
    if phase:
        body["status"] = {
            "phase": phase,
            "phaseTransitionTimestamps": [{"phase": phase, "time": migration.stamp(since)}],
            "source": "a",
            "sourceEpoch": {"major": 1, "minor": 0},
            **status,
        }
    return body


def decide(m, a=..., nodes=NODES, limits=None, **kw):
    obs = Observed(mr=m, agent=agent() if a is ... else a, nodes=nodes, now=NOW, **kw)
    return migration.decide(obs, limits or Limits())


def test_new_request_is_initialised_and_a_deleted_new_one_released():
    assert decide(mr()).kind is Kind.INIT
    assert decide(mr(deleting=True)).kind is Kind.RELEASE


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"a": None}, "AgentNotFound"),
        ({"a": agent(enabled=False)}, "MigrationDisabled"),
    ],
)
def test_pending_fatal(kwargs, reason):
    act = decide(mr("Pending"), **kwargs)
    assert act.kind is Kind.FAIL and act.reason == reason and not act.revert


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"a": agent(holder="a", state="RecoveryRequired")}, "AgentNotActive"),
        ({"other_migration": "m0"}, "AgentBusy"),
        ({"active": 5}, "ClusterLimit"),
        ({"active_per_node": {"a": 2}}, "NodeLimit"),
        ({"nodes": {**NODES, "a": node("a", lease_valid=False)}}, "SourceNotLive"),
    ],
)
def test_pending_waits(kwargs, reason):
    act = decide(mr("Pending"), **kwargs)
    assert act.kind is Kind.WAIT and act.reason == reason and act.delay


def test_pending_starts_from_the_current_holder():
    act = decide(mr("Pending"))
    assert act.kind is Kind.START and act.target == "a"


def test_scheduling_falls_back_to_a_candidate_with_the_capabilities():
    m = mr("Scheduling", spec={"targetNode": "c", "candidates": ["b"]})
    act = decide(m)
    assert act.kind is Kind.TARGET and act.target == "b"


def test_scheduling_fails_when_no_listed_target_can_ever_fit():
    act = decide(mr("Scheduling", spec={"targetNode": "c"}))
    assert act.kind is Kind.FAIL and act.reason == "NoFittingTarget"
    assert "c: lack capability clock" in act.message


def test_scheduling_waits_for_a_listed_target_that_is_not_ready():
    nodes = {**NODES, "b": node("b", ready=False)}
    act = decide(mr("Scheduling", spec={"targetNode": "b"}), nodes=nodes)
    assert act.kind is Kind.WAIT and "b: not ready" in act.message


def test_scheduler_picks_a_target_other_than_the_source():
    act = decide(mr("Scheduling"))
    assert act.kind is Kind.TARGET and act.target == "b"
    busy = decide(mr("Scheduling"), active_per_node={"b": 2})
    assert busy.kind is Kind.WAIT


def test_checkpointing_starts_the_handoff_then_freezes():
    m = mr("Checkpointing", target="b")
    assert decide(m).kind is Kind.BEGIN_HANDOFF
    assert decide(m, a=agent(minor=1, state="HandoffInitiated")).kind is Kind.FREEZE


def test_verifying_runs_the_gate_until_it_keeps_erroring():
    m = mr("Verifying", target="b")
    frozen = agent(minor=1, state="HandoffInitiated")
    assert decide(m, a=frozen).kind is Kind.VERIFY
    act = decide(m, a=frozen, gate_errors=3)
    assert act.kind is Kind.FAIL and act.revert


def test_transferring_checks_the_target_and_falls_back():
    frozen = agent(minor=1, state="HandoffInitiated")
    m = mr("Transferring", target="b", spec={"targetNode": "b", "candidates": ["d"]})
    assert decide(m, a=frozen).kind is Kind.CHECK_TARGET
    nodes = {**NODES, "b": node("b", ready=False), "d": node("d")}
    act = decide(m, a=frozen, nodes=nodes)
    assert act.kind is Kind.TARGET and act.target == "d" and "falling back to d" in act.message
    nodes = {**NODES, "b": node("b", ready=False)}
    assert decide(m, a=frozen, nodes=nodes).kind is Kind.WAIT


def test_dry_run_never_cuts_over():
    frozen = agent(minor=1, state="HandoffInitiated")
    act = decide(mr("Transferring", target="b", spec={"dryRun": True}), a=frozen)
    assert act.kind is Kind.FINISH_DRY_RUN and act.revert


def test_cutting_over_then_waiting_for_the_first_tick():
    m = mr("CuttingOver", target="b", replay={"toTick": 10})
    act = decide(m, a=agent(minor=1, state="HandoffInitiated"))
    assert act.kind is Kind.CUT_OVER and act.target == "b"
    cut = agent(holder="b", major=2, tick=10)
    assert decide(m, a=cut).kind is Kind.WAIT
    assert decide(m, a=agent(holder="b", major=2, tick=11)).kind is Kind.FINISH
    late = mr("CuttingOver", since=NOW - timedelta(seconds=31), target="b", replay={"toTick": 10})
    act = decide(late, a=cut)
    assert act.kind is Kind.FINISH and "not measured" in act.message


def test_a_lease_moved_by_recovery_ends_the_migration_without_touching_the_agent():
    recovered = agent(holder="c", major=2)
    act = decide(mr("Verifying", target="b"), a=recovered)
    assert act.kind is Kind.FAIL and act.reason == "Superseded" and not act.revert
    cut = mr("CuttingOver", target="b", conditions=[{"type": "CutOver", "status": "True"}])
    act = decide(cut, a=agent(holder="c", major=3))
    assert act.kind is Kind.FINISH


def test_deleting_before_the_cut_over_aborts_and_after_it_only_warns():
    frozen = agent(minor=1, state="HandoffInitiated")
    act = decide(mr("Verifying", target="b", deleting=True), a=frozen)
    assert act.kind is Kind.ABORT and act.revert
    act = decide(mr("Scheduling", deleting=True))
    assert act.kind is Kind.ABORT and not act.revert
    act = decide(mr("CuttingOver", target="b", deleting=True), a=agent(holder="b", major=2))
    assert act.kind is Kind.RELEASE and act.warning


def test_phase_timeout_fails_and_reverts():
    m = mr("Verifying", since=NOW - timedelta(seconds=61), target="b")
    act = decide(m, a=agent(minor=1, state="HandoffInitiated"))
    assert act.kind is Kind.FAIL and act.reason == "Timeout" and act.revert


def test_final_requests_drop_their_finalizer_once():
    assert decide(mr("Succeeded")).kind is Kind.RELEASE
    assert decide(mr("Failed", finalizer=False)).kind is Kind.NONE


def test_enter_records_every_transition():
    s = migration.enter(None, api.MigrationPhase.PENDING, NOW)
    s = migration.enter(s, api.MigrationPhase.SCHEDULING, NOW + timedelta(seconds=1), target="b")
    assert [t["phase"] for t in s["phaseTransitionTimestamps"]] == ["Pending", "Scheduling"]
    assert s["target"] == "b"
    assert migration.entered_at(s, api.MigrationPhase.SCHEDULING) == NOW + timedelta(seconds=1)


def test_downtime():
    assert migration.downtime(250.7, 100) == {"milliseconds": 250, "ticks": 2}
    assert migration.downtime(None, 100) is None


def test_stamps_keep_milliseconds():
    when = NOW + timedelta(milliseconds=42)
    assert migration.stamp(when) == "2025-01-01T12:00:00.042Z"
    s = migration.enter(None, api.MigrationPhase.VERIFYING, when)
    assert migration.entered_at(s, api.MigrationPhase.VERIFYING) == when
