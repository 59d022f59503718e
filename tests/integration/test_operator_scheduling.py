"""Scheduling, recovery planning and evacuation, with the operator as a real process.

The IgorNodes and node Leases here are written through the API as a node daemon writes them
(a real API server, no mock), so placement can be tested without running agents.
"""

from __future__ import annotations

import time
from collections import Counter

from kubernetes import client

from . import test_operator_fixtures as fx
from .test_operator_fixtures import (
    GROUP,
    MRS,
    NODES,
    VERSION,
    agent_body,
    condition,
    create_agent,
    eventually,
    kubectl,
    report_ready,
    status,
    unique,
    wait_events,
)

ns, label, operator, fake_nodes = fx.ns, fx.label, fx.operator, fx.fake_nodes


def holder(st: dict) -> str | None:
    return ((st.get("lease") or {}).get("holder")) or None


def test_agents_are_bound_evenly_with_epoch_and_become_running(
    k8s, kubeconfig, ns, label, fake_nodes, operator
):
    a, b, c = (fake_nodes(unique(n)) for n in "abc")
    fake_nodes(unique("nolease"), lease_duration=None)
    fake_nodes(unique("notready"), ready=False)
    operator()
    names = [f"agent-{i}" for i in range(6)]
    for name in names:
        create_agent(k8s, ns, agent_body(name, label))
    bound = eventually(
        lambda: all(holder(status(k8s, ns, n)) for n in names) and names,
        what="all agents bound",
    )
    statuses = {n: status(k8s, ns, n) for n in bound}
    assert Counter(holder(s) for s in statuses.values()) == {a: 2, b: 2, c: 2}
    for st in statuses.values():
        assert st["lease"]["epoch"] == {"major": 1, "minor": 0}
        assert st["lease"]["state"] == "Active"
        assert st["epoch"] == "1.0" and st["node"] == holder(st)
        assert st["phase"] == "Scheduled"
        assert condition(st, "Scheduled")["reason"] == "Bound"
        assert st["tick"] == 0 and st["budget"]["remaining"] == 10_000_000_000
    wait_events(k8s, ns, names[0], "Scheduled")

    # The holder reports that it runs the agent: the operator calls it Running.
    report_ready(k8s, ns, names[0])
    eventually(lambda: status(k8s, ns, names[0]).get("phase") == "Running", what="Running")
    table = kubectl(kubeconfig, "get", "igoragents", "-n", ns)
    header = table.splitlines()[0].split()
    assert header[:6] == ["NAME", "PHASE", "NODE", "EPOCH", "TICK", "BUDGET"]
    row = next(line.split() for line in table.splitlines() if line.startswith(names[0]))
    assert row[1:6] == ["Running", holder(statuses[names[0]]), "1.0", "1", "10000000000"]


def test_no_fitting_node_explains_why_and_binds_when_one_appears(
    k8s, ns, label, fake_nodes, operator
):
    fake_nodes(unique("nohttp"), capabilities=("clock", "log"))
    fake_nodes(unique("dear"), price=9000)
    operator()
    body = agent_body(
        "needs-http", label, capabilities=("clock", "http"), placement={"maxPrice": 5000}
    )
    create_agent(k8s, ns, body)
    cond = eventually(
        lambda: condition(status(k8s, ns, "needs-http"), "Scheduled").get("message"),
        what="Scheduled=False with a reason",
    )
    st = status(k8s, ns, "needs-http")
    assert st["phase"] == "Pending" and condition(st, "Scheduled")["status"] == "False"
    assert "0/" in cond and "1 lack capability http" in cond and "1 over max price" in cond
    wait_events(k8s, ns, "needs-http", "FailedScheduling")

    good = fake_nodes(unique("good"), capabilities=("clock", "log", "http"), price=100)
    eventually(lambda: holder(status(k8s, ns, "needs-http")) == good, what="bound to new node")


def test_capacity_is_respected(k8s, ns, label, fake_nodes, operator):
    small = fake_nodes(unique("small"), capacity=1)
    operator()
    for name in ("first", "second"):
        create_agent(k8s, ns, agent_body(name, label))
    eventually(
        lambda: sum(holder(status(k8s, ns, n)) == small for n in ("first", "second")) == 1,
        what="one agent bound",
    )
    time.sleep(1)
    unbound = next(n for n in ("first", "second") if not holder(status(k8s, ns, n)))
    assert "1 full" in condition(status(k8s, ns, unbound), "Scheduled")["message"]


def test_expired_node_lease_recovers_agents_on_another_node_at_next_major(
    k8s, ns, label, fake_nodes, operator
):
    doomed = fake_nodes(unique("doomed"), lease_duration=4)
    operator()
    create_agent(k8s, ns, agent_body("survivor", label))
    eventually(lambda: holder(status(k8s, ns, "survivor")) == doomed, what="bound to doomed")
    report_ready(k8s, ns, "survivor")
    other = fake_nodes(unique("other"))
    started = time.monotonic()
    st = eventually(
        lambda: (s := status(k8s, ns, "survivor")) and holder(s) == other and s,
        timeout=20,
        what="recovered to the other node",
    )
    elapsed = time.monotonic() - started
    assert st["lease"]["epoch"] == {"major": 2, "minor": 0}
    assert st["lease"]["state"] == "Active"
    assert st["phase"] == "Recovering"
    assert condition(st, "Scheduled")["reason"] == "Recovered"
    assert condition(st, "Ready")["status"] == "Unknown"
    assert elapsed < 4 + 3, f"recovery took {elapsed:.1f}s"
    wait_events(k8s, ns, "survivor", "Recovered")
    wait_events(k8s, "default", doomed, "NodeLost")


def test_cordon_creates_drain_migration_requests(k8s, ns, label, fake_nodes, operator):
    a = fake_nodes(unique("cordon"))
    operator()
    create_agent(k8s, ns, agent_body("evacuee", label))
    eventually(lambda: holder(status(k8s, ns, "evacuee")) == a, what="bound")
    fake_nodes(unique("refuge"))
    client.CustomObjectsApi(k8s).patch_cluster_custom_object(
        GROUP, VERSION, NODES, a, {"spec": {"unschedulable": True}}
    )

    def drain_request():
        items = client.CustomObjectsApi(k8s).list_namespaced_custom_object(GROUP, VERSION, ns, MRS)[
            "items"
        ]
        return [m for m in items if m["spec"].get("reason") == "Drain"]

    made = eventually(drain_request, what="a Drain MigrationRequest")
    assert len(made) == 1
    mr = made[0]
    assert mr["spec"]["agent"] == "evacuee"
    assert mr["metadata"]["name"] == "evacuee-drain-1-0"
    assert mr["metadata"]["labels"]["igor.dev/drain-node"] == a
    # It started: the phases are recorded with timestamps (the fake node cannot freeze).
    eventually(
        lambda: (
            len(
                (mr_st := _mr(k8s, ns, mr["metadata"]["name"])).get("phaseTransitionTimestamps", [])
            )
            >= 2
            and mr_st
        ),
        what="migration started",
    )


def _mr(k8s, ns, name):
    return (
        client.CustomObjectsApi(k8s)
        .get_namespaced_custom_object(GROUP, VERSION, ns, MRS, name)
        .get("status")
        or {}
    )
