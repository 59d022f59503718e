"""IgorAgent decisions: binding, unschedulable reasons, recovery, stale handoffs, phases."""

from __future__ import annotations

from datetime import UTC, datetime

from igor import api
from igor_operator import lifecycle
from igor_operator.scheduler import NodeInfo

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CAPS = {"clock": 1, "rand": 1, "log": 1, "http": 1}


def node(name, agents=0, price=1000, caps=CAPS, **kw):
    return NodeInfo(
        name=name,
        capabilities=caps,
        price=price,
        capacity=kw.pop("capacity", 10),
        agents=agents,
        ready=True,
        lease_valid=kw.pop("lease_valid", True),
        **kw,
    )


def agent(status=None, caps=("clock",), **spec):
    return {
        "metadata": {"name": "a1", "namespace": "ns", "generation": 1, "resourceVersion": "5"},
        "spec": {
            "module": {"configMap": {"name": "m", "key": "k"}, "digest": "sha256:" + "0" * 64},
            "manifest": {"capabilities": {c: {"version": 1} for c in caps}},
            "budget": {"limit": 1000},
            **spec,
        },
        "status": status or {},
    }


def leased(holder, major=1, minor=0, state="Active", ready=None, reason="Bound", **extra):
    conditions = [{"type": "Scheduled", "status": "True", "reason": reason, "message": ""}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready, "reason": "X", "message": ""})
    return {
        "phase": extra.pop("phase", "Scheduled"),
        "node": holder,
        "epoch": f"{major}.{minor}",
        "lease": {"holder": holder, "epoch": {"major": major, "minor": minor}, "state": state},
        "tick": extra.pop("tick", 0),
        "observedGeneration": 1,
        "conditions": conditions,
        **extra,
    }


def test_new_agent_gets_initial_status_and_is_bound_to_least_loaded_node():
    plan = lifecycle.plan(agent(), [node("b", agents=2), node("a", agents=1)], {"a", "b"}, now=NOW)
    s = plan.status
    assert plan.authority == "bind" and plan.target == "a"
    assert s["lease"] == {"holder": "a", "epoch": {"major": 1, "minor": 0}, "state": "Active"}
    assert s["epoch"] == "1.0" and s["node"] == "a" and s["phase"] == "Scheduled"
    assert s["tick"] == 0 and s["budget"] == {"remaining": 1000, "spent": 0}
    assert api.find_condition(s["conditions"], "Scheduled")["reason"] == "Bound"
    assert api.find_condition(s["conditions"], "Ready")["status"] == "Unknown"
    assert [e.reason for e in plan.events] == ["Scheduled"]


def test_no_fitting_node_says_why():
    nodes = [node("a", caps={"clock": 1}), node("b", caps={"log": 1}), node("c", price=9000)]
    spec_agent = agent(caps=("clock", "http"), placement={"maxPrice": 5000})
    plan = lifecycle.plan(spec_agent, nodes, {"a", "b", "c"}, now=NOW)
    cond = api.find_condition(plan.status["conditions"], "Scheduled")
    assert plan.status["phase"] == "Pending" and plan.authority is None
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        "0/3 nodes fit: 1 lack capabilities clock, http, 1 lack capability http, 1 over max price"
    )
    assert plan.events[0].reason == "FailedScheduling"
    # Same situation again: nothing to write, no second event.
    again = agent(caps=("clock", "http"), placement={"maxPrice": 5000})
    again["status"] = {**plan.status}
    assert lifecycle.plan(again, nodes, {"a", "b", "c"}, now=NOW).empty


def test_running_needs_ready_from_the_holder():
    nodes = [node("a")]
    waiting = lifecycle.plan(agent(leased("a")), nodes, {"a"}, now=NOW)
    assert waiting.empty  # Scheduled, and nothing changed
    running = lifecycle.plan(agent(leased("a", ready="True")), nodes, {"a"}, now=NOW)
    assert running.status == {"phase": "Running"}
    assert running.events[0].reason == "Running"


def test_lost_holder_is_recovered_elsewhere_at_next_major():
    status = leased("a", major=3, minor=2, ready="True", phase="Running", tick=40)
    plan = lifecycle.plan(agent(status), [node("a"), node("b")], {"b"}, now=NOW)
    assert plan.authority == "recover" and plan.target == "b"
    assert plan.status["lease"] == {
        "holder": "b",
        "epoch": {"major": 4, "minor": 0},
        "state": "Active",
    }
    assert plan.status["phase"] == "Recovering"
    assert api.find_condition(plan.status["conditions"], "Ready")["status"] == "Unknown"
    assert "lost its lease" in plan.events[0].message


def test_lost_holder_without_target_requires_recovery_then_recovers():
    status = leased("a", major=2, ready="True", phase="Running")
    plan = lifecycle.plan(agent(status), [node("a")], set(), now=NOW)
    assert plan.authority == "require-recovery"
    assert plan.status["lease"]["state"] == "RecoveryRequired"
    assert plan.status["lease"]["epoch"] == {"major": 2, "minor": 0}
    assert plan.status["phase"] == "Recovering"
    later = agent({**status, **plan.status})
    plan2 = lifecycle.plan(later, [node("a"), node("c")], {"c"}, now=NOW)
    assert plan2.authority == "recover" and plan2.target == "c"
    assert plan2.status["lease"]["epoch"] == {"major": 3, "minor": 0}


def test_handoff_without_a_running_migration_is_reverted():
    status = leased("a", minor=1, state="HandoffInitiated", phase="Migrating")
    plan = lifecycle.plan(agent(status), [node("a")], {"a"}, migration_active=False, now=NOW)
    assert plan.authority == "revert"
    assert plan.status["lease"] == {
        "holder": "a",
        "epoch": {"major": 1, "minor": 2},
        "state": "Active",
    }
    kept = lifecycle.plan(agent(status), [node("a")], {"a"}, migration_active=True, now=NOW)
    assert kept.authority is None


def test_source_lost_during_handoff_is_recovered():
    status = leased("a", minor=1, state="HandoffInitiated", phase="Migrating")
    plan = lifecycle.plan(agent(status), [node("a"), node("b")], {"b"}, migration_active=True)
    assert plan.authority == "recover"
    assert plan.status["lease"]["epoch"] == {"major": 2, "minor": 0}


def test_invalid_manifest_fails_an_unbound_agent():
    bad = agent()
    bad["spec"]["manifest"] = {"capabilities": {"clock": {"version": 7}}}
    plan = lifecycle.plan(bad, [node("a")], {"a"}, now=NOW)
    assert plan.status["phase"] == "Failed" and plan.authority is None
    cond = api.find_condition(plan.status["conditions"], "Scheduled")
    assert cond["reason"] == "InvalidManifest"
    assert cond["message"].startswith("spec.manifest.capabilities.clock.version:")


def test_capacity_counts():
    agents = [
        {"status": {"lease": {"holder": "a", "state": "Active"}}},
        {"status": {"lease": {"holder": "a", "state": "HandoffInitiated"}}},
        {"status": {"lease": {"holder": "b", "state": "Retired"}}},
        {"status": {}},
    ]
    assert lifecycle.counts_by_holder(agents) == {"a": 2}
