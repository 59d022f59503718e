"""Faults with real processes: SIGKILL a node, a migration's source, the operator; HA."""

from __future__ import annotations

import time

from . import test_operator_fixtures as fx
from .test_operator_fixtures import (
    agent_body,
    create_agent,
    create_migration,
    eventually,
    mr_status,
    status,
    upload_module,
)
from .test_operator_migration import (
    assert_continuous,
    held_by,
    stored,
    wait_final,
    wait_running,
)

ns, label, operator, node_procs = fx.ns, fx.label, fx.operator, fx.node_procs
fake_nodes = fx.fake_nodes

LEASE = 4  # node Lease duration in these tests, seconds


def test_sigkill_a_node_its_agents_run_elsewhere_within_the_lease_duration(
    k8s, ns, label, node_procs, operator
):
    nodes = [node_procs(f"{label}-{x}", lease_duration=LEASE) for x in "abc"]
    operator()
    digest = upload_module(k8s, ns, "counter")
    names = [f"w{i}" for i in range(4)]
    for name in names:
        create_agent(k8s, ns, agent_body(name, label, digest=digest))
    before = {n: wait_running(k8s, ns, n, after_tick=3) for n in names}
    victim_name = before[names[0]]["node"]
    victim = next(n for n in nodes if n.name == victim_name)
    orphans = [n for n in names if before[n]["node"] == victim_name]
    time.sleep(1.2)  # let each write a durable checkpoint
    committed = {n: stored(k8s, ns, n).tick for n in orphans}
    victim.kill()
    killed = time.monotonic()
    for name in orphans:
        st = eventually(
            lambda name=name: (
                (s := status(k8s, ns, name)).get("phase") == "Running"
                and s["node"] != victim_name
                and s
            ),
            timeout=LEASE + 10,
            what=f"{name} running elsewhere",
        )
        assert st["lease"]["epoch"]["major"] == 2
    elapsed = time.monotonic() - killed
    assert elapsed < LEASE + 5, f"took {elapsed:.1f}s"
    for name in orphans:
        after = wait_running(k8s, ns, name, after_tick=committed[name])
        assert held_by(nodes, ns, name) == [after["node"]]
        cp = assert_continuous(k8s, ns, name)
        assert cp.tick >= committed[name]  # no committed tick lost
    print(f"recovered {len(orphans)} agent(s) {elapsed:.1f}s after SIGKILL (lease {LEASE}s)")


def test_sigkill_the_source_mid_migration_resolves_through_recovery(
    k8s, ns, label, node_procs, operator
):
    nodes = [node_procs(f"{label}-{x}", lease_duration=LEASE) for x in "abc"]
    operator("--node-timeout", "1")
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("fragile", label, digest=digest))
    before = wait_running(k8s, ns, "fragile", after_tick=3)
    source = next(n for n in nodes if n.name == before["node"])
    target = next(n for n in nodes if n is not source)
    time.sleep(1.2)
    committed = stored(k8s, ns, "fragile").tick
    # A stopped source cannot answer the freeze: the migration stays in Checkpointing.
    source.stop()
    create_migration(k8s, ns, "interrupted", "fragile", targetNode=target.name)
    eventually(
        lambda: (status(k8s, ns, "fragile").get("lease") or {}).get("state") == "HandoffInitiated",
        what="the handoff started",
    )
    source.kill()
    final = wait_final(k8s, ns, "interrupted", timeout=LEASE + 20)
    assert final["phase"] == "Failed" and "outside this migration" in final["message"]
    st = wait_running(k8s, ns, "fragile", after_tick=committed, timeout=LEASE + 20)
    assert st["node"] != source.name
    assert st["lease"]["epoch"] == {"major": 2, "minor": 0}
    assert held_by(nodes, ns, "fragile") == [st["node"]]
    cp = assert_continuous(k8s, ns, "fragile")
    assert cp.tick >= committed


def test_sigkill_the_operator_mid_migration_and_a_new_one_finishes_it(
    k8s, ns, label, node_procs, operator
):
    nodes = [node_procs(f"{label}-{x}", lease_duration=10) for x in "ab"]
    first = operator("--node-timeout", "30")
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("patient", label, digest=digest))
    before = wait_running(k8s, ns, "patient", after_tick=3)
    source = next(n for n in nodes if n.name == before["node"])
    target = next(n for n in nodes if n is not source)
    source.stop()  # holds the migration in Checkpointing while the operator dies
    try:
        create_migration(k8s, ns, "orphaned", "patient", targetNode=target.name)
        eventually(
            lambda: (
                (status(k8s, ns, "patient").get("lease") or {}).get("state") == "HandoffInitiated"
            ),
            what="the handoff started",
        )
        first.kill()
    finally:
        source.cont()
    assert mr_status(k8s, ns, "orphaned")["phase"] == "Checkpointing"
    # Same leader Lease: the new operator takes over once the dead one's Lease expires.
    first.start()
    final = wait_final(k8s, ns, "orphaned", timeout=30)
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["target"] == target.name
    st = wait_running(k8s, ns, "patient", node=target.name, after_tick=final["replay"]["toTick"])
    assert st["lease"]["epoch"] == {"major": 2, "minor": 0}
    assert held_by(nodes, ns, "patient") == [target.name]
    assert_continuous(k8s, ns, "patient")


def test_only_the_leader_reconciles_and_a_standby_takes_over(k8s, ns, label, fake_nodes, operator):
    fake_nodes(fx.unique("ha"))
    leader = operator()
    standby = operator(wait_ready=False, lease=leader.lease)
    try:
        standby.wait_for("waiting to become leader", timeout=30)
        create_agent(k8s, ns, agent_body("first", label))
        eventually(lambda: status(k8s, ns, "first").get("node"), what="bound by the leader")
        assert "reconciling" not in standby.log_text()
        assert "igor_operator_leader 0.0" in standby.metrics()
        leader.kill()
        standby.wait_for("igor operator ready", timeout=20)
        create_agent(k8s, ns, agent_body("second", label))
        eventually(lambda: status(k8s, ns, "second").get("node"), what="bound by the new leader")
        assert "igor_operator_leader 1.0" in standby.metrics()
    finally:
        standby.terminate()


def test_deleting_a_request_mid_handoff_gives_the_agent_back_to_its_source(
    k8s, ns, label, node_procs, operator
):
    nodes = [node_procs(f"{label}-{x}", lease_duration=10) for x in "ab"]
    operator("--node-timeout", "1")
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("homebody", label, digest=digest))
    before = wait_running(k8s, ns, "homebody", after_tick=3)
    source = next(n for n in nodes if n.name == before["node"])
    target = next(n for n in nodes if n is not source)
    source.stop()  # the freeze cannot complete: the request sits in Checkpointing
    try:
        create_migration(k8s, ns, "second-thoughts", "homebody", targetNode=target.name)
        eventually(
            lambda: (
                (status(k8s, ns, "homebody").get("lease") or {}).get("state") == "HandoffInitiated"
            ),
            what="the handoff started",
        )
        fx.delete_migration(k8s, ns, "second-thoughts")
        st = eventually(
            lambda: (
                (s := status(k8s, ns, "homebody"))
                and (s.get("lease") or {}).get("state") == "Active"
                and s
            ),
            what="the handoff reverted",
        )
        assert st["lease"] == {
            "holder": source.name,
            "epoch": {"major": 1, "minor": 2},
            "state": "Active",
        }
        assert st["migration"] == {"name": "second-thoughts", "phase": "Aborted"}
    finally:
        source.cont()
    wait_running(k8s, ns, "homebody", node=source.name, after_tick=before["tick"] + 3)
    assert held_by(nodes, ns, "homebody") == [source.name]
    assert_continuous(k8s, ns, "homebody")
    eventually(lambda: fx.migration_gone(k8s, ns, "second-thoughts"), what="request deleted")


def igornode_column(kubeconfig: str, name: str, column: str) -> str:
    """A column of `kubectl get igornodes NAME`, as a user sees it."""
    header, row = fx.kubectl(kubeconfig, "get", "igornodes", name).splitlines()[:2]
    return dict(zip(header.split(), row.split(), strict=True))[column]


def test_sigkill_a_node_and_it_shows_not_ready_until_it_comes_back(
    k8s, kubeconfig, label, node_procs, operator
):
    name = f"{label}-gone"
    node = node_procs(name, lease_duration=LEASE)
    operator()
    eventually(lambda: igornode_column(kubeconfig, name, "READY") == "True", what="READY True")
    node.kill()
    killed = time.monotonic()
    eventually(
        lambda: igornode_column(kubeconfig, name, "READY") == "False",
        timeout=LEASE + 10,
        what="READY False after SIGKILL",
    )
    elapsed = time.monotonic() - killed
    assert elapsed < LEASE + 5, f"took {elapsed:.1f}s"
    ready = fx.node_condition(k8s, name, "Ready")
    assert ready["reason"] == "LeaseExpired"
    assert f"node Lease igor-node-{name} expired at " in ready["message"]
    fx.wait_events(k8s, "default", name, "NodeLost", "NodeNotReady")
    # The node comes back: its heartbeat says Ready=True and the operator leaves it so.
    node_procs(name, lease_duration=LEASE)
    eventually(lambda: igornode_column(kubeconfig, name, "READY") == "True", what="READY again")
    time.sleep(2)
    assert igornode_column(kubeconfig, name, "READY") == "True"
    assert fx.node_condition(k8s, name, "Ready")["reason"] == "LeaseRenewed"
    print(f"READY False {elapsed:.1f}s after SIGKILL (lease {LEASE}s)")
