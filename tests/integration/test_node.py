"""The node daemon as a real process against the real control plane."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from datetime import UTC, datetime

import pytest
from kubernetes import client

from igor import checkpoint as ckpt
from igor.lease import node_lease_expired
from igor.store import configmap_name
from tests import agents

from .helpers import eventually, make_namespace
from .nodes import TOKEN, NodeProcess, started_nodes

GROUP, VERSION, PLURAL = "igor.dev", "v1alpha1", "igoragents"


@pytest.fixture
def ns(k8s):
    return make_namespace(k8s, "node")


@pytest.fixture
def nodes(kubeconfig, tmp_path):
    with started_nodes(kubeconfig, tmp_path) as start:
        yield start


def upload_module(k8s, ns: str, name: str) -> str:
    wasm = agents.wasm(name)
    client.CoreV1Api(k8s).create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata={"name": f"mod-{name}"},
            binary_data={"module.wasm": base64.b64encode(wasm).decode()},
        ),
    )
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


def create_agent(
    k8s, ns: str, name: str, module: str = "counter", digest: str | None = None, **spec
) -> dict:
    digest = digest or upload_module(k8s, ns, module)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IgorAgent",
        "metadata": {"name": name},
        "spec": {
            "module": {
                "configMap": {"name": f"mod-{module}", "key": "module.wasm"},
                "digest": digest,
            },
            "manifest": {
                "capabilities": {
                    "clock": {"version": 1},
                    "rand": {"version": 1},
                    "log": {"version": 1},
                }
            },
            "budget": {"limit": 10_000_000_000},
            "tick": {"intervalMillis": 100},
            "checkpointIntervalSeconds": 1,
            **spec,
        },
    }
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, body
    )


def set_holder(k8s, ns: str, name: str, holder: str, major: int, minor: int = 0, state="Active"):
    """What the operator does (with optimistic concurrency) when it binds or moves an agent."""
    custom = client.CustomObjectsApi(k8s)
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    patch = {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
        "status": {
            "node": holder,
            "epoch": f"{major}.{minor}",
            "lease": {"holder": holder, "epoch": {"major": major, "minor": minor}, "state": state},
        },
    }
    return custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, patch)


def agent(k8s, ns, name) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name
    )


def stored(k8s, ns, name) -> ckpt.Checkpoint | None:
    try:
        cm = client.CoreV1Api(k8s).read_namespaced_config_map(configmap_name(name), ns)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return ckpt.decode(base64.b64decode(cm.binary_data["checkpoint"]))


def counter(cp: ckpt.Checkpoint) -> int:
    return struct.unpack_from("<Q", cp.state)[0]


def status_tick(k8s, ns, name) -> int:
    return (agent(k8s, ns, name).get("status") or {}).get("tick", 0)


def read_lease(k8s, node: str):
    return client.CoordinationV1Api(k8s).read_namespaced_lease(f"igor-node-{node}", "igor-system")


def test_node_registers_and_its_lease_expires_after_it_is_killed(k8s, nodes):
    node = nodes("reg-a", lease_duration=4)
    custom = client.CustomObjectsApi(k8s)
    ready = eventually(
        lambda: (
            custom.get_cluster_custom_object(GROUP, VERSION, "igornodes", "reg-a").get("status")
            or {}
        ).get("heartbeatTime"),
        what="IgorNode heartbeat",
    )
    registered = custom.get_cluster_custom_object(GROUP, VERSION, "igornodes", "reg-a")
    assert registered["status"]["address"] == node.address
    assert {c["name"] for c in registered["spec"]["capabilities"]} >= {"clock", "rand", "log"}
    assert registered["status"]["determinismProfile"]["engine"] == "wasmtime"
    first = read_lease(k8s, "reg-a").spec.renew_time
    eventually(lambda: read_lease(k8s, "reg-a").spec.renew_time > first, what="lease renewal")
    assert ready
    node.kill()
    last = read_lease(k8s, "reg-a").spec.renew_time
    time.sleep(5)
    lease = read_lease(k8s, "reg-a")
    assert lease.spec.renew_time == last
    assert node_lease_expired(
        lease.spec.renew_time, lease.spec.lease_duration_seconds, datetime.now(UTC)
    )


def test_holder_runs_the_agent_and_a_new_holder_resumes_it_exactly(k8s, ns, nodes):
    a, b = nodes("run-a"), nodes("run-b")
    create_agent(k8s, ns, "c1")
    set_holder(k8s, ns, "c1", "run-a", 1)
    eventually(lambda: status_tick(k8s, ns, "c1") >= 10, what="ticks on node A")
    cp = eventually(lambda: stored(k8s, ns, "c1"), what="a checkpoint in the store")
    assert cp.epoch == ckpt.Epoch(1, 0) and counter(cp) == cp.tick

    # The operator moves authority to B at a new major epoch (a recovery-style move).
    before = stored(k8s, ns, "c1")
    set_holder(k8s, ns, "c1", "run-b", 2)
    moved = eventually(
        lambda: (s := stored(k8s, ns, "c1")) and s.epoch.major == 2 and s.tick > before.tick and s,
        what="B committing at epoch 2",
    )
    # B continues A's lineage: counter == tick, budget conserved, nothing forked.
    assert counter(moved) == moved.tick
    assert moved.budget + moved.spent == 10_000_000_000
    assert "run-a" in a.log_text() and "dropped without committing" in a.log_text()
    # A never commits again: every later checkpoint is B's.
    time.sleep(2)
    assert stored(k8s, ns, "c1").epoch.major == 2
    status = agent(k8s, ns, "c1")["status"]
    assert status["checkpoint"]["epoch"]["major"] == 2
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True" and "run-b" in ready["message"]
    assert b.alive()


def test_a_stopped_node_never_ticks_or_commits_what_it_no_longer_holds(k8s, ns, nodes):
    a = nodes("stop-a", lease_duration=4)
    b = nodes("stop-b", lease_duration=4)
    create_agent(k8s, ns, "c2")
    set_holder(k8s, ns, "c2", "stop-a", 1)
    eventually(lambda: (s := stored(k8s, ns, "c2")) and s.tick >= 5, what="A committing")
    a.stop()
    time.sleep(5)  # longer than A's lease: the operator would recover the agent now
    set_holder(k8s, ns, "c2", "stop-b", 2)
    eventually(lambda: stored(k8s, ns, "c2").epoch.major == 2, what="B taking over")
    a.cont()
    time.sleep(4)
    log = a.log_text()
    assert "re-listing agents before ticking" in log
    assert "dropped without committing" in log
    cp = stored(k8s, ns, "c2")
    assert cp.epoch.major == 2 and counter(cp) == cp.tick
    assert agent(k8s, ns, "c2")["status"]["checkpoint"]["epoch"]["major"] == 2
    assert b.alive() and a.alive()


def test_sigkill_during_checkpoint_writes_loses_nothing_committed(k8s, ns, nodes, tmp_path):
    store = tmp_path / "ckpts"
    digest = upload_module(k8s, ns, "counter")
    names = [f"k{i}" for i in range(20)]
    for name in names:
        create_agent(k8s, ns, name, digest=digest)
        set_holder(k8s, ns, name, "kill-a", 1)
    seen: dict[str, int] = {}
    for round_ in range(3):
        node = nodes("kill-a", store=f"file:{store}")
        time.sleep(2.5)
        node.kill()
        for name in names:
            path = store / ns / f"{name}.ckpt"
            if not path.exists():
                continue
            cp = ckpt.decode(path.read_bytes())  # never torn: write, fsync, rename
            assert cp.tick >= seen.get(name, 0), f"{name} went back in round {round_}"
            assert counter(cp) == cp.tick
            seen[name] = cp.tick
        assert not list(store.glob(f"{ns}/*.ckpt.tmp"))
    assert len(seen) == len(names) and all(t > 0 for t in seen.values())


def _http(node: NodeProcess, method: str, path: str, token: str | None = TOKEN, body=None):
    import json as _json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(node.address + path, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = _json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data=data, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_api_needs_a_token_and_freeze_yields_a_bundle_that_replays_to_the_final_checkpoint(
    k8s, ns, nodes
):
    node = nodes("api-a")
    create_agent(k8s, ns, "c3")
    set_holder(k8s, ns, "c3", "api-a", 1)
    eventually(lambda: status_tick(k8s, ns, "c3") >= 8, what="ticks")
    assert _http(node, "GET", "/healthz", token=None)[0] == 200
    assert _http(node, "GET", "/readyz", token=None)[0] == 200
    assert _http(node, "GET", "/v1/agents", token=None)[0] == 401
    assert _http(node, "GET", "/v1/agents", token="wrong")[0] == 401
    assert _http(node, "GET", "/metrics", token=None)[0] == 401
    status, body = _http(node, "GET", "/metrics")
    assert status == 200 and b"igor_node_ticks_total" in body

    # Freezing needs the status to say HandoffInitiated at that epoch first.
    refused, _ = _http(
        node, "POST", f"/v1/agents/{ns}/c3/freeze", body={"epoch": {"major": 1, "minor": 1}}
    )
    assert refused == 409
    set_holder(k8s, ns, "c3", "api-a", 1, 1, state="HandoffInitiated")
    status, body = _http(
        node, "POST", f"/v1/agents/{ns}/c3/freeze", body={"epoch": {"major": 1, "minor": 1}}
    )
    assert status == 200, body
    final = __import__("json").loads(body)
    assert final["epoch"] == {"major": 1, "minor": 1}
    time.sleep(1)
    assert status_tick(k8s, ns, "c3") == final["tick"]  # frozen: no tick after the final one
    cp = stored(k8s, ns, "c3")
    assert cp.tick == final["tick"] and cp.epoch == ckpt.Epoch(1, 1)

    status, raw = _http(node, "GET", f"/v1/agents/{ns}/c3/bundle")
    assert status == 200
    from igor import bundle as bundle_mod
    from igor.replay import Replayer

    made = bundle_mod.decode(raw)
    assert made.records[-1].tick == final["tick"]
    result = Replayer().replay_bundle(made)
    assert result.ok and result.final_state_hash == hashlib.sha256(cp.state).digest()


def test_self_verification_catches_divergence_and_pauses(k8s, ns, nodes):
    nodes("ver-a")
    create_agent(
        k8s,
        ns,
        "nd",
        module="nondeterministic",
        manifest={"capabilities": {"clock": {"version": 1}, "log": {"version": 1}}},
        replay={"verifyInterval": 3, "divergenceAction": "pause"},
    )
    set_holder(k8s, ns, "nd", "ver-a", 1)

    def diverged():
        status = agent(k8s, ns, "nd").get("status") or {}
        return (status.get("replay") or {}).get("verdict") == "Diverged" and status

    status = eventually(diverged, what="a divergence verdict")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["ReplayVerified"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ReplayDiverged"
    paused_at = status_tick(k8s, ns, "nd")
    time.sleep(1.5)
    assert status_tick(k8s, ns, "nd") == paused_at


def test_budget_exhaustion_stops_the_agent_until_the_limit_is_raised(k8s, ns, nodes):
    nodes("bud-a")
    create_agent(k8s, ns, "poor", budget={"limit": 5})
    set_holder(k8s, ns, "poor", "bud-a", 1)

    def exhausted():
        status = agent(k8s, ns, "poor").get("status") or {}
        conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return conds.get("BudgetExhausted") == "True" and status

    status = eventually(exhausted, what="BudgetExhausted")
    assert status["budget"] == {"remaining": 0, "spent": 5}
    stopped_at = status["tick"]
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "poor", {"spec": {"budget": {"limit": 1_000_000}}}
    )
    eventually(lambda: status_tick(k8s, ns, "poor") > stopped_at, what="ticking again")


def test_tokenreview_auth_accepts_an_allowed_service_account_only(k8s, ns, nodes):
    core = client.CoreV1Api(k8s)
    for sa in ("igor-operator", "someone-else"):
        core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata={"name": sa}))

    def token(sa: str) -> str:
        req = client.AuthenticationV1TokenRequest(spec={"audiences": [], "expirationSeconds": 600})
        return core.create_namespaced_service_account_token(sa, ns, req).status.token

    node = nodes(
        "tr-a",
        extra=[
            "--auth",
            "tokenreview",
            "--allowed-user",
            f"system:serviceaccount:{ns}:igor-operator",
        ],
    )
    assert _http(node, "GET", "/v1/agents", token=token("igor-operator"))[0] == 200
    assert _http(node, "GET", "/v1/agents", token=token("someone-else"))[0] == 401
    assert _http(node, "GET", "/v1/agents", token="not-a-jwt")[0] == 401
    # The shared token from the Secret keeps working beside the reviewed ones.
    assert _http(node, "GET", "/v1/agents")[0] == 200


def test_node_api_serves_https_with_the_given_certificate(nodes, tmp_path):
    import ssl
    import urllib.request

    from igor.controlplane import pki

    files = pki.generate(tmp_path / "tls")
    node = nodes(
        "tls-a", extra=["--tls-cert", str(files.serving_cert), "--tls-key", str(files.serving_key)]
    )
    assert node.address.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    req = urllib.request.Request(
        node.address + "/v1/agents", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, context=context, timeout=10) as resp:
        assert resp.status == 200
