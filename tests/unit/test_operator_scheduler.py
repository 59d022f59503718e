"""Placement rules: fit, spreading order, and the "why not" message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from igor_operator import scheduler
from igor_operator.scheduler import NodeInfo, Requirements

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
ALL = {"clock": 1, "rand": 1, "log": 1, "http": 1}


def node(name, caps=ALL, price=1000, capacity=10, agents=0, **kw) -> NodeInfo:
    return NodeInfo(
        name=name,
        capabilities=caps,
        price=price,
        capacity=capacity,
        agents=agents,
        ready=kw.pop("ready", True),
        lease_valid=kw.pop("lease_valid", True),
        **kw,
    )


def test_spreads_fewest_agents_then_price_then_name():
    nodes = [
        node("c", agents=1, price=10),
        node("b", agents=0, price=500),
        node("a", agents=0, price=500),
        node("d", agents=0, price=100),
    ]
    ranked = scheduler.candidates(Requirements(), nodes)
    assert [n.name for n in ranked] == ["d", "a", "b", "c"]


def test_unfit_reasons_in_message():
    req = Requirements(capabilities={"clock": 1, "http": 1}, max_price=1500)
    nodes = [
        node("a", caps={"clock": 1}),
        node("b", caps={"clock": 1, "log": 1}),
        node("c", price=2000),
        node("d", ready=False),
        node("e", lease_valid=False),
        node("f", unschedulable=True),
        node("g", capacity=2, agents=2),
    ]
    assert scheduler.candidates(req, nodes) == []
    assert scheduler.explain(req, nodes) == (
        "0/7 nodes fit: 2 lack capability http, 1 full, 1 lease expired, 1 not ready, "
        "1 over max price, 1 unschedulable"
    )


def test_capability_versions_and_selector():
    req = Requirements(capabilities={"http": 2}, node_selector={"zone": "eu"})
    old = node("old", caps={"http": 1}, labels={"zone": "eu"})
    new = node("new", caps={"http": 2}, labels={"zone": "eu"})
    elsewhere = node("us", caps={"http": 2}, labels={"zone": "us"})
    assert scheduler.unfit_reason(req, old) == "lack capability http v2"
    assert scheduler.unfit_reason(req, elsewhere) == scheduler.SELECTOR
    assert [n.name for n in scheduler.candidates(req, [old, new, elsewhere])] == ["new"]


def test_requirements_from_agent_spec_join_manifest_and_placement():
    spec = {
        "manifest": {"capabilities": {"clock": {"version": 1}, "http": {"version": 2}}},
        "placement": {"requiredCapabilities": ["rand"], "maxPrice": 5, "nodeSelector": {"a": "b"}},
    }
    req = Requirements.for_agent(spec)
    assert dict(req.capabilities) == {"clock": 1, "http": 2, "rand": 1}
    assert req.max_price == 5
    assert dict(req.node_selector) == {"a": "b"}


def test_node_info_from_objects_reads_lease_validity():
    igor_node = {
        "metadata": {"name": "n1", "labels": {"zone": "eu"}},
        "spec": {
            "capabilities": [{"name": "clock", "version": 1}],
            "price": 7,
            "capacity": {"agents": 3},
        },
        "status": {
            "address": "http://127.0.0.1:1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }

    def lease(age: float) -> dict:
        renew = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"spec": {"renewTime": renew, "leaseDurationSeconds": 10}}

    fresh = NodeInfo.from_objects(igor_node, lease(3), NOW, agents=1)
    assert fresh.schedulable and fresh.capacity == 3 and fresh.price == 7
    assert fresh.address == "http://127.0.0.1:1" and fresh.capabilities == {"clock": 1}
    assert not NodeInfo.from_objects(igor_node, lease(11), NOW).lease_valid
    assert not NodeInfo.from_objects(igor_node, None, NOW).lease_valid


def test_permanent_and_transient_reasons():
    assert scheduler.permanent("lack capability http")
    assert scheduler.permanent(scheduler.OVER_PRICE)
    assert not scheduler.permanent(scheduler.FULL)
    assert not scheduler.permanent(scheduler.NOT_READY)
