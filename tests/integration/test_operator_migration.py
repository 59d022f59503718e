"""End to end: the operator as a process, real node daemons, real agents, real control plane."""

from __future__ import annotations

import base64
import itertools
import json
import struct
import subprocess
import sys
import time
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from igor import checkpoint as ckpt
from igor.store import configmap_name
from igor_operator.scheduler import parse_time

from . import test_operator_fixtures as fx
from .test_operator_fixtures import (
    TOKEN,
    agent_body,
    condition,
    create_agent,
    create_migration,
    eventually,
    kubectl,
    mr_status,
    status,
    upload_module,
    wait_events,
)

ns, label, operator, node_procs = fx.ns, fx.label, fx.operator, fx.node_procs


# --------------------------------------------------------------------------- helpers


def stored(k8s, namespace: str, name: str) -> ckpt.Checkpoint | None:
    try:
        cm = client.CoreV1Api(k8s).read_namespaced_config_map(configmap_name(name), namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return ckpt.decode(base64.b64decode(cm.binary_data["checkpoint"]))


def counter_of(cp: ckpt.Checkpoint) -> int:
    return struct.unpack_from("<Q", cp.state)[0]


def held_by(nodes, namespace: str, name: str) -> list[str]:
    """Names of the live node processes that run the agent right now (their own API says)."""
    holders = []
    for node in nodes:
        if not node.alive():
            continue
        req = urllib.request.Request(
            f"{node.address}/v1/agents", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            listed = json.loads(resp.read())["agents"]
        if any(a["namespace"] == namespace and a["name"] == name for a in listed):
            holders.append(node.name)
    return holders


def running_on(k8s, namespace: str, name: str, node: str | None = None, after_tick: int = 0):
    """The agent's status once it is Running (on ``node``) with its tick past ``after_tick``."""
    st = status(k8s, namespace, name)
    holder = (st.get("lease") or {}).get("holder")
    if st.get("phase") != "Running" or (node and holder != node):
        return None
    return st if int(st.get("tick") or 0) > after_tick else None


def wait_running(k8s, namespace, name, node=None, after_tick=0, timeout=30):
    return eventually(
        lambda: running_on(k8s, namespace, name, node, after_tick),
        timeout=timeout,
        what=f"{name} Running on {node or 'a node'} past tick {after_tick}",
    )


def wait_final(k8s, namespace, mr, timeout=60) -> dict:
    return eventually(
        lambda: (
            (s := mr_status(k8s, namespace, mr)).get("phase") in ("Succeeded", "Failed", "Aborted")
            and s
        ),
        timeout=timeout,
        what=f"MigrationRequest {mr} final",
    )


def migrate(k8s, namespace, agent, target, name, **spec) -> dict:
    create_migration(k8s, namespace, name, agent, targetNode=target, **spec)
    return wait_final(k8s, namespace, name)


def assert_continuous(k8s, namespace, name):
    cp = stored(k8s, namespace, name)
    assert cp is not None
    # The counter counts ticks: any tick lost or repeated across a move would show here.
    assert counter_of(cp) == cp.tick
    st = status(k8s, namespace, name)
    assert st["budget"]["remaining"] + st["budget"]["spent"] == 10_000_000_000
    return cp


@pytest.fixture
def cluster(k8s, ns, label, node_procs, operator):
    """Three real nodes and the operator; returns the node processes by letter."""
    nodes = {letter: node_procs(f"{label}-{letter}") for letter in "abc"}
    op = operator()
    return nodes, op


# --------------------------------------------------------------------------- tests


def test_applied_agent_runs_and_kubectl_shows_its_columns(k8s, kubeconfig, ns, label, cluster):
    nodes, _ = cluster
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("ticker", label, digest=digest))
    first = wait_running(k8s, ns, "ticker", after_tick=2)
    later = wait_running(k8s, ns, "ticker", after_tick=first["tick"] + 3)
    assert later["lease"]["epoch"] == {"major": 1, "minor": 0}
    assert held_by(nodes.values(), ns, "ticker") == [later["node"]]
    row = next(
        line.split()
        for line in kubectl(kubeconfig, "get", "igoragents", "-n", ns).splitlines()
        if line.startswith("ticker")
    )
    assert row[1] == "Running" and row[2] == later["node"] and row[3] == "1.0"
    assert int(row[4]) > 0 and int(row[5]) > 0


def test_migration_moves_the_agent_with_its_counter_budget_and_a_new_major(k8s, ns, label, cluster):
    nodes, op = cluster
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("mover", label, digest=digest))
    before = wait_running(k8s, ns, "mover", after_tick=5)
    source = before["node"]
    target = next(n.name for n in nodes.values() if n.name != source)
    final = migrate(k8s, ns, "mover", target, "move-1")
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["source"] == source and final["target"] == target
    phases = [t["phase"] for t in final["phaseTransitionTimestamps"]]
    assert phases == [
        "Pending",
        "Scheduling",
        "Checkpointing",
        "Verifying",
        "Transferring",
        "CuttingOver",
        "Succeeded",
    ]
    assert final["replay"]["verdict"] == "Verified" and final["replay"]["ticksReplayed"] > 0
    assert final["targetEpoch"] == {"major": 2, "minor": 0}
    assert condition(final, "CutOver")["status"] == "True"
    assert final["downtime"]["milliseconds"] >= 0
    after = wait_running(k8s, ns, "mover", node=target, after_tick=final["replay"]["toTick"] + 3)
    assert after["lease"]["epoch"] == {"major": 2, "minor": 0}
    assert after["migration"] == {"name": "move-1", "phase": "Succeeded"}
    cp = assert_continuous(k8s, ns, "mover")
    assert cp.epoch.major == 2 and cp.tick > final["replay"]["toTick"]
    assert held_by(nodes.values(), ns, "mover") == [target]
    wait_events(
        k8s,
        ns,
        "move-1",
        "Pending",
        "Scheduling",
        "Frozen",
        "ReplayVerified",
        "CutOver",
        "Succeeded",
    )
    metrics = op.metrics()
    assert 'igor_operator_migrations_total{reason="Succeeded",result="Succeeded"}' in metrics
    assert 'igor_operator_replay_verdicts_total{verdict="Verified"}' in metrics


def test_chain_and_rapid_round_trips_end_with_one_instance_and_the_right_counter(
    k8s, ns, label, cluster
):
    nodes, _ = cluster
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("roamer", label, digest=digest))
    a = wait_running(k8s, ns, "roamer", after_tick=3)["node"]
    b, c = sorted(n.name for n in nodes.values() if n.name != a)
    route = [b, c, a] + [b, a] * 20
    started = time.monotonic()
    took = []
    for hop, target in enumerate(route):
        final = migrate(k8s, ns, "roamer", target, f"hop-{hop}")
        assert final["phase"] == "Succeeded", (hop, final.get("message"))
        stamps = {t["phase"]: parse_time(t["time"]) for t in final["phaseTransitionTimestamps"]}
        took.append((stamps["Succeeded"] - stamps["Pending"]).total_seconds())
    elapsed = time.monotonic() - started
    st = wait_running(k8s, ns, "roamer", node=a, after_tick=0)
    assert st["lease"]["epoch"] == {"major": 1 + len(route), "minor": 0}
    assert held_by(nodes.values(), ns, "roamer") == [a]
    cp = assert_continuous(k8s, ns, "roamer")
    assert cp.epoch.major == 1 + len(route)
    took.sort()
    print(
        f"{len(route)} migrations in {elapsed:.1f}s; request to target ticking: "
        f"p50 {took[len(took) // 2] * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms"
    )


def test_nondeterministic_agent_fails_at_the_gate_and_keeps_running_on_its_source(
    k8s, ns, label, cluster, tmp_path
):
    nodes, _ = cluster
    digest = upload_module(k8s, ns, "nondeterministic")
    create_agent(
        k8s,
        ns,
        agent_body(
            "liar",
            label,
            module="nondeterministic",
            digest=digest,
            capabilities=("clock", "log"),
            replay={"verifyInterval": 0, "windowSize": 8},
        ),
    )
    before = wait_running(k8s, ns, "liar", after_tick=12)
    source = before["node"]
    target = next(n.name for n in nodes.values() if n.name != source)
    final = migrate(k8s, ns, "liar", target, "liar-move")
    assert final["phase"] == "Failed"
    replay = final["replay"]
    assert replay["verdict"] == "Diverged"
    assert replay["firstDivergentTick"] >= replay["fromTick"]
    assert replay["expectedHash"].startswith("sha256:")
    assert "log_emit" in replay["callDifference"]
    assert replay["bundle"] == f"configmap://{ns}/igor-bundle-liar-move"
    assert condition(final, "ReplayVerified")["status"] == "False"
    assert "stays on " + source in final["message"]
    st = wait_running(k8s, ns, "liar", node=source, after_tick=replay["toTick"] + 2)
    assert st["lease"]["epoch"] == {"major": 1, "minor": 2}
    assert held_by(nodes.values(), ns, "liar") == [source]
    # The saved bundle reproduces the divergence anywhere.
    cm = client.CoreV1Api(k8s).read_namespaced_config_map("igor-bundle-liar-move", ns)
    path = tmp_path / "liar.bundle"
    path.write_bytes(base64.b64decode(cm.binary_data["bundle"]))
    out = subprocess.run(
        [sys.executable, "-m", "igor", "replay", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert f"DIVERGED at tick {replay['firstDivergentTick']}" in out.stdout


def test_dry_run_verifies_without_moving(k8s, ns, label, cluster):
    nodes, _ = cluster
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("stayer", label, digest=digest))
    before = wait_running(k8s, ns, "stayer", after_tick=4)
    source = before["node"]
    target = next(n.name for n in nodes.values() if n.name != source)
    final = migrate(k8s, ns, "stayer", target, "what-if", dryRun=True)
    assert final["phase"] == "Succeeded" and final["replay"]["verdict"] == "Verified"
    assert "CuttingOver" not in [t["phase"] for t in final["phaseTransitionTimestamps"]]
    assert "dry run" in final["message"]
    st = wait_running(k8s, ns, "stayer", node=source, after_tick=final["replay"]["toTick"] + 2)
    assert st["lease"]["epoch"] == {"major": 1, "minor": 2}
    assert held_by(nodes.values(), ns, "stayer") == [source]
    assert_continuous(k8s, ns, "stayer")


def test_deleting_a_waiting_request_aborts_it_and_leaves_the_agent(k8s, ns, label, cluster):
    nodes, _ = cluster
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("anchored", label, digest=digest))
    before = wait_running(k8s, ns, "anchored", after_tick=2)
    target = next(n.name for n in nodes.values() if n.name != before["node"])
    custom = client.CustomObjectsApi(k8s)
    custom.patch_cluster_custom_object(
        fx.GROUP, fx.VERSION, fx.NODES, target, {"spec": {"unschedulable": True}}
    )
    try:
        create_migration(k8s, ns, "doomed", "anchored", targetNode=target)
        eventually(
            lambda: (
                "cordon" in (mr_status(k8s, ns, "doomed").get("message") or "")
                or "unschedulable" in (mr_status(k8s, ns, "doomed").get("message") or "")
            ),
            what="the request waiting for its cordoned target",
        )
        custom.delete_namespaced_custom_object(fx.GROUP, fx.VERSION, ns, fx.MRS, "doomed")

        def gone():
            try:
                fx.get_migration(k8s, ns, "doomed")
            except ApiException as exc:
                return exc.status == 404
            return False

        eventually(gone, what="the request deleted")
        st = wait_running(k8s, ns, "anchored", node=before["node"], after_tick=before["tick"])
        assert st["lease"]["epoch"] == {"major": 1, "minor": 0}
        assert st["migration"] == {"name": "doomed", "phase": "Aborted"}
        wait_events(k8s, ns, "doomed", "Aborted")
    finally:
        custom.patch_cluster_custom_object(
            fx.GROUP, fx.VERSION, fx.NODES, target, {"spec": {"unschedulable": False}}
        )


def test_requests_queued_at_once_run_one_at_a_time(k8s, ns, label, node_procs, operator):
    nodes = [node_procs(f"{label}-{x}") for x in "ab"]
    operator()
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("popular", label, digest=digest))
    wait_running(k8s, ns, "popular", after_tick=3)
    names = [f"rush-{i}" for i in range(8)]
    for name in names:  # no target: each goes to the node the agent is not on
        create_migration(k8s, ns, name, "popular")
    finals = [wait_final(k8s, ns, name, timeout=90) for name in names]
    assert [f["phase"] for f in finals] == ["Succeeded"] * len(names)
    # One at a time: each started from where the previous one left the agent.
    moves = sorted((f["sourceEpoch"]["major"], f["source"], f["target"]) for f in finals)
    assert [m[0] for m in moves] == list(range(1, len(names) + 1))
    for (_, _, target), (_, source, _) in itertools.pairwise(moves):
        assert target == source
    st = wait_running(k8s, ns, "popular", after_tick=0)
    assert st["lease"]["epoch"] == {"major": 1 + len(names), "minor": 0}
    assert held_by(nodes, ns, "popular") == [st["node"]]
    assert_continuous(k8s, ns, "popular")


def test_an_exhausted_agent_moves_without_ticks_and_resumes_when_its_budget_rises(
    k8s, ns, label, node_procs, operator
):
    nodes = [node_procs(f"{label}-{x}") for x in "ab"]
    operator()
    digest = upload_module(k8s, ns, "counter")
    create_agent(k8s, ns, agent_body("broke", label, digest=digest, budget={"limit": 5}))
    exhausted = eventually(
        lambda: (
            (s := status(k8s, ns, "broke"))
            and condition(s, "BudgetExhausted").get("status") == "True"
            and s
        ),
        what="budget exhausted",
    )
    first, second = exhausted["node"], next(n.name for n in nodes if n.name != exhausted["node"])
    there = migrate(k8s, ns, "broke", second, "broke-1")
    assert there["phase"] == "Succeeded", there.get("message")
    assert "does not tick it" in there["message"]
    # The target restored the final checkpoint and has run nothing since: nothing to replay.
    back = migrate(k8s, ns, "broke", first, "broke-2")
    assert back["phase"] == "Succeeded", back.get("message")
    assert back["replay"]["verdict"] == "Skipped" and back["replay"]["ticksReplayed"] == 0
    tick = status(k8s, ns, "broke")["tick"]
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        fx.GROUP, fx.VERSION, ns, fx.AGENTS, "broke", {"spec": {"budget": {"limit": 1_000_000}}}
    )
    st = wait_running(k8s, ns, "broke", node=first, after_tick=tick + 2)
    assert st["lease"]["epoch"] == {"major": 3, "minor": 0}
    assert held_by(nodes, ns, "broke") == [first]
    cp = stored(k8s, ns, "broke")
    assert counter_of(cp) == cp.tick


def test_the_cluster_wide_limit_runs_migrations_of_different_agents_one_after_another(
    k8s, ns, label, node_procs, operator
):
    node_procs(f"{label}-a")
    node_procs(f"{label}-b")
    operator("--max-migrations", "1")
    digest = upload_module(k8s, ns, "counter")
    names = ["left", "right", "centre"]
    for name in names:
        create_agent(k8s, ns, agent_body(name, label, digest=digest))
    for name in names:
        wait_running(k8s, ns, name, after_tick=2)
    for name in names:
        create_migration(k8s, ns, f"{name}-move", name)
    finals = [wait_final(k8s, ns, f"{name}-move", timeout=90) for name in names]
    assert [f["phase"] for f in finals] == ["Succeeded"] * 3

    def span(final):
        stamps = {t["phase"]: parse_time(t["time"]) for t in final["phaseTransitionTimestamps"]}
        return stamps["Scheduling"], stamps["Succeeded"]

    spans = sorted(span(f) for f in finals)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # never two in flight
