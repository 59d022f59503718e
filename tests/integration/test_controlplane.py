"""The local control plane is a real Kubernetes API: CRDs, status, watch, GC, dry-run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from igor.controlplane import find

from .helpers import eventually, make_namespace

GROUP, VERSION = "igor.dev", "v1alpha1"
DIGEST = "sha256:" + "ab" * 32


def agent_body(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IgorAgent",
        "metadata": {"name": name},
        "spec": {
            "module": {"configMap": {"name": "modules", "key": "counter.wasm"}, "digest": DIGEST},
            "budget": {"limit": 1_000_000},
        },
    }


def test_crds_are_established(k8s):
    ext = client.ApiextensionsV1Api(k8s)
    for plural in ("igoragents", "igornodes", "migrationrequests"):
        crd = ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        established = {c.type: c.status for c in crd.status.conditions}
        assert established.get("Established") == "True"
        assert "igor" in crd.spec.names.categories


def test_custom_resource_create_patch_status_watch_delete(k8s):
    ns = make_namespace(k8s)
    custom = client.CustomObjectsApi(k8s)
    events: list[tuple[str, dict]] = []
    ready = threading.Event()

    def watch_agents():
        w = watch.Watch()
        ready.set()
        for ev in w.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            "igoragents",
            timeout_seconds=20,
        ):
            events.append((ev["type"], ev["object"]))
            if ev["type"] == "DELETED":
                w.stop()

    watcher = threading.Thread(target=watch_agents, daemon=True)
    watcher.start()
    ready.wait()

    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "igoragents", agent_body("a1")
    )
    assert created["spec"]["module"]["digest"] == DIGEST
    # Schema defaults are applied by the server.
    assert created["spec"]["suspend"] is False

    patched = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        "igoragents",
        "a1",
        {"status": {"phase": "Running", "tick": 7, "node": "node-a"}},
    )
    assert patched["status"]["tick"] == 7
    # The status subresource ignores spec changes and the main resource ignores status.
    spec_patch = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "igoragents", "a1", {"status": {"tick": 99}}
    )
    assert spec_patch["status"]["tick"] == 7

    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "igoragents", "a1")
    watcher.join(timeout=25)
    kinds = [t for t, _ in events]
    assert kinds[0] == "ADDED" and "MODIFIED" in kinds and kinds[-1] == "DELETED"
    modified = [o for t, o in events if t == "MODIFIED"]
    assert any(o.get("status", {}).get("tick") == 7 for o in modified)


def test_owner_reference_is_garbage_collected(k8s):
    ns = make_namespace(k8s)
    core = client.CoreV1Api(k8s)
    custom = client.CustomObjectsApi(k8s)
    owner = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "igoragents", agent_body("owner")
    )
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IgorAgent",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata={"name": "dependent", "ownerReferences": [ref]})
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "igoragents", "owner")

    def dependent_gone():
        try:
            core.read_namespaced_config_map("dependent", ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(dependent_gone, timeout=60, what="garbage collection of the dependent ConfigMap")


def test_server_side_dry_run_rejects_invalid_object_with_schema_message(k8s):
    ns = make_namespace(k8s)
    custom = client.CustomObjectsApi(k8s)
    body = agent_body("bad")
    body["spec"]["module"]["digest"] = "md5:1234"
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "igoragents", body, dry_run="All"
        )
    assert info.value.status == 422
    assert "spec.module.digest" in info.value.body
    # A valid object passes dry-run and is not persisted.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "igoragents", agent_body("good"), dry_run="All"
    )
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "igoragents")
    assert listed["items"] == []


def test_namespace_deletion_completes(k8s):
    ns = make_namespace(k8s)
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata={"name": "x"}))
    core.delete_namespace(ns)

    def gone():
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, timeout=60, what=f"namespace {ns} to finish terminating")


def test_igor_dev_up_serves_kubectl_get_igor(tmp_path):
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    igor = [sys.executable, "-m", "igor"]
    state = tmp_path / "dev"
    up = subprocess.run(
        [*igor, "dev", "up", "--dir", str(state)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = up.stdout.strip().splitlines()[-1]
        assert "kubectl get igor" in up.stderr
        kubectl = [str(find("kubectl")), "--kubeconfig", kubeconfig]
        empty = subprocess.run(
            [*kubectl, "get", "igor", "-A"], capture_output=True, text=True, timeout=60
        )
        assert empty.returncode == 0, empty.stderr
        assert "No resources found" in empty.stderr
        apply = subprocess.run(
            [*kubectl, "apply", "-f", "-"],
            input=__import__("json").dumps(agent_body("demo")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert apply.returncode == 0, apply.stderr
        listed = subprocess.run(
            [*kubectl, "get", "igor"], capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert "igoragent.igor.dev/demo" in listed.stdout or "demo" in listed.stdout
    finally:
        down = subprocess.run(
            [*igor, "dev", "down", "--dir", str(state)], capture_output=True, text=True, timeout=60
        )
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr
    status = subprocess.run(
        [*igor, "dev", "status", "--dir", str(state)], capture_output=True, text=True
    )
    assert status.returncode == 1
