"""The user's story on a kind cluster: build the images, load them, helm install,
apply an agent, migrate it, verify it. Needs a Docker engine and pytest-kind
(`pip install -e '.[e2e]'`); skipped with the reason where either is missing."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "no Docker engine reachable (docker info failed); kind needs one"
    try:
        import pytest_kind  # noqa: F401
    except ImportError:
        return "pytest-kind not installed (pip install -e '.[e2e]')"
    return None


_problem = _docker_problem()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(_problem is not None, reason=str(_problem))]


def _run(*argv: str, **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


@pytest.fixture(scope="module")
def cluster(request):
    from pytest_kind import KindCluster

    kind = KindCluster("igor-e2e")
    kind.create()
    for name, dockerfile in (
        ("igor-node", "node-image/Dockerfile"),
        ("igor-operator", "operator/Dockerfile"),
    ):
        _run("docker", "build", "-f", dockerfile, "-t", f"{name}:e2e", ".", cwd=REPO)
        kind.load_docker_image(f"{name}:e2e")
    yield kind
    kind.delete()


def test_helm_install_apply_migrate_verify(cluster, tmp_path):
    kubectl = [str(cluster.kubectl_path), "--kubeconfig", str(cluster.kubeconfig_path)]
    helm = str(REPO / "hack" / "controlplane" / "bin" / "helm")
    _run(
        helm,
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "install",
        "igor",
        str(REPO / "charts" / "igor"),
        "--namespace",
        "igor-system",
        "--create-namespace",
        "--set",
        "operator.image.repository=igor-operator,operator.image.tag=e2e",
        "--set",
        "node.image.repository=igor-node,node.image.tag=e2e",
        "--wait",
    )
    wasm = (REPO / "agents" / "build" / "counter.wasm").read_bytes()
    _run(
        *kubectl,
        "create",
        "configmap",
        "counter-module",
        f"--from-file=module.wasm={REPO}/agents/build/counter.wasm",
    )
    agent = {
        "apiVersion": "igor.dev/v1alpha1",
        "kind": "IgorAgent",
        "metadata": {"name": "c"},
        "spec": {
            "module": {
                "configMap": {"name": "counter-module", "key": "module.wasm"},
                "digest": "sha256:" + hashlib.sha256(wasm).hexdigest(),
            },
            "manifest": {"capabilities": {k: {"version": 1} for k in ("clock", "rand", "log")}},
            "budget": {"limit": 10**9},
        },
    }
    _run(*kubectl, "apply", "-f", "-", input=json.dumps(agent))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = json.loads(_run(*kubectl, "get", "igoragent", "c", "-o", "json")).get("status", {})
        if status.get("phase") == "Running" and status.get("tick", 0) > 3:
            break
        time.sleep(2)
    else:
        pytest.fail(f"agent never ran: {status}")
    mr = {
        "apiVersion": "igor.dev/v1alpha1",
        "kind": "MigrationRequest",
        "metadata": {"name": "m1"},
        "spec": {"agent": "c"},
    }
    _run(*kubectl, "apply", "-f", "-", input=json.dumps(mr))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        mstatus = json.loads(_run(*kubectl, "get", "migrationrequest", "m1", "-o", "json")).get(
            "status", {}
        )
        if mstatus.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(2)
    assert mstatus.get("phase") == "Succeeded", mstatus
    assert mstatus["replay"]["verdict"] == "Verified"
    cm = json.loads(_run(*kubectl, "get", "configmap", "igor-ckpt-c", "-o", "json"))
    assert base64.b64decode(cm["binaryData"]["checkpoint"])
