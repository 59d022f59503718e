"""Leader election decisions, the work queue, retry classification, migration admission."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from igor_operator import admission, leader, nodes, retry
from igor_operator.workqueue import WorkQueue

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease_spec(holder, age, duration=15, transitions=0):
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration,
        "renewTime": leader.micro_time(NOW - timedelta(seconds=age)),
        "leaseTransitions": transitions,
    }


def test_leader_decisions():
    assert leader.decide(None, "me", NOW, 15, exists=False).action == "create"
    renew = leader.decide(lease_spec("me", 5), "me", NOW, 15)
    assert renew.action == "renew" and renew.spec["renewTime"] == leader.micro_time(NOW)
    wait = leader.decide(lease_spec("other", 5), "me", NOW, 15)
    assert wait.action == "wait" and 9 < wait.wait <= 10
    take = leader.decide(lease_spec("other", 16, transitions=2), "me", NOW, 15)
    assert take.action == "acquire" and take.spec["holderIdentity"] == "me"
    assert take.spec["leaseTransitions"] == 3
    released = leader.decide(lease_spec("", 0), "me", NOW, 15)
    assert released.action == "acquire" and released.spec["leaseTransitions"] == 0


def test_retry_classification_and_backoff():
    assert retry.classify_http(409) is retry.ErrorClass.RETRIABLE
    assert retry.classify_http(503) is retry.ErrorClass.RETRIABLE
    assert retry.classify_http(403) is retry.ErrorClass.FATAL
    assert retry.classify_transport(delivered=False) is retry.ErrorClass.RETRIABLE
    assert retry.classify_transport(delivered=True) is retry.ErrorClass.AMBIGUOUS
    assert [retry.backoff(n) for n in range(4)] == [0.2, 0.4, 0.8, 1.6]
    assert retry.backoff(40) == 10.0


async def test_workqueue_dedups_reruns_dirty_keys_and_backs_off():
    seen: list[str] = []
    gate = asyncio.Event()
    failures = {"boom": 1}

    async def handler(key):
        seen.append(key)
        if key == "slow":
            await gate.wait()
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError("transient")
        return None

    queue = WorkQueue(handler, workers=2)
    queue.start()
    try:
        for _ in range(3):
            queue.add("a")
        queue.add("slow")
        await asyncio.sleep(0.05)
        queue.add("slow")  # while processing: runs once more afterwards
        queue.add("later", delay=0.1)
        queue.add("boom")
        gate.set()
        await asyncio.sleep(0.9)
    finally:
        await queue.stop()
    assert seen.count("a") == 1
    assert seen.count("slow") == 2
    assert seen.count("later") == 1
    assert seen.count("boom") == 2  # failed once, retried after the backoff


AGENT = {
    "metadata": {"name": "ag", "namespace": "ns"},
    "spec": {
        "manifest": {"capabilities": {"clock": {"version": 1}, "http": {"version": 1}}},
        "placement": {"maxPrice": 2000},
    },
    "status": {"lease": {"holder": "a"}},
}


def igor_node(name, caps=("clock", "http"), price=1000):
    return {
        "metadata": {"name": name},
        "spec": {
            "capabilities": [{"name": c, "version": 1} for c in caps],
            "price": price,
            "capacity": {"agents": 5},
        },
    }


NODES = {
    "a": igor_node("a"),
    "b": igor_node("b"),
    "nohttp": igor_node("nohttp", caps=("clock",)),
    "dear": igor_node("dear", price=9000),
}


def test_migration_admission():
    check = admission.migration_problems
    assert check({"agent": "ag", "targetNode": "b"}, "ns", AGENT, NODES) == []
    assert check({"agent": "ag"}, "ns", AGENT, NODES) == []
    missing = check({"agent": "zz"}, "ns", None, NODES)
    assert missing == ["spec.agent: IgorAgent zz not found in namespace ns"]
    refused = check({"agent": "ag", "targetNode": "nohttp"}, "ns", AGENT, NODES)
    assert refused == [
        "spec.targetNode: IgorNode nohttp lacks capability http (the agent needs clock, http; "
        "the node offers clock)"
    ]
    assert (
        check({"agent": "ag", "targetNode": "nohttp", "candidates": ["b"]}, "ns", AGENT, NODES)
        == []
    )
    dear = check({"agent": "ag", "targetNode": "dear"}, "ns", AGENT, NODES)
    assert dear[0].startswith("spec.targetNode: IgorNode dear costs 9000, over")
    both = check({"agent": "ag", "targetNode": "ghost", "candidates": ["a"]}, "ns", AGENT, NODES)
    assert both == [
        "spec.targetNode: IgorNode ghost not found",
        "spec.candidates: IgorNode a already runs the agent",
    ]
    disabled = {
        **AGENT,
        "spec": {**AGENT["spec"], "manifest": {"migrationPolicy": {"enabled": False}}},
    }
    assert "forbids migration" in check({"agent": "ag"}, "ns", disabled, NODES)[0]


def _agent(name, major=1, minor=0, state="Active", holder="n1"):
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {},
        "status": {
            "lease": {"holder": holder, "epoch": {"major": major, "minor": minor}, "state": state}
        },
    }


def _drain(agent, phase, verdict=None, node="n1", epoch="1-0"):
    status = {"phase": phase}
    if verdict:
        status["replay"] = {"verdict": verdict}
    return {
        "metadata": {
            "name": f"{agent}-drain-{epoch}",
            "namespace": "ns",
            "labels": {nodes.DRAIN_LABEL: node},
        },
        "spec": {"agent": agent, "reason": "Drain"},
        "status": status,
    }


def test_evacuation_plan_skips_busy_moving_and_hopeless_agents():
    agents = [
        _agent("plain"),
        _agent("moving", minor=1, state="HandoffInitiated"),
        _agent("elsewhere", holder="n2"),
        _agent("queued"),
        _agent("liar", minor=2),
        _agent("unlucky", minor=6),
        _agent("retry", minor=2),
    ]
    migrations = [
        _drain("queued", "Pending"),
        _drain("liar", "Failed", verdict="Diverged"),
        *[_drain("unlucky", "Failed", epoch=f"1-{i}") for i in (0, 2, 4)],
        _drain("retry", "Failed", verdict="Error"),
    ]
    plan = nodes.evacuation_plan("n1", agents, migrations)
    assert plan == [("ns", "plain-drain-1-0", "plain"), ("ns", "retry-drain-1-2", "retry")]
    assert nodes.drain_name("a" * 250, 3, 1).endswith("-drain-3-1")
    assert len(nodes.drain_name("a" * 250, 3, 1)) <= 253
