"""Helpers and fixtures for the operator's integration tests (this module holds no tests).

The operator runs as a real process (`python -m igor_operator`) against the session's real
control plane. Each test gets its own namespace, and its nodes carry a label unique to the test
that its agents select, so objects left by other tests never take part.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests import agents

from .helpers import eventually, make_namespace
from .nodes import TOKEN, started_nodes, token_file
from .processes import ChildProcess, free_port

GROUP, VERSION = "igor.dev", "v1alpha1"
AGENTS, NODES, MRS = "igoragents", "igornodes", "migrationrequests"
LEASE_NS = "igor-system"
TEST_LABEL = "igor.dev/test"
__all__ = ["TOKEN", "eventually"]


class OperatorProcess(ChildProcess):
    """`python -m igor_operator` as a child process; SIGKILL-able like any real process."""

    def __init__(
        self, kubeconfig: str, workdir: Path, namespace: str, *extra: str, lease: str | None = None
    ):
        self.workdir = workdir
        self.metrics_port = free_port()
        self.lease = lease or f"igor-operator-{uuid.uuid4().hex[:6]}"
        argv = [
            sys.executable,
            "-m",
            "igor_operator",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            LEASE_NS,
            "--watch-namespace",
            namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--node-token-file",
            str(token_file(workdir)),
            "--leader-lease",
            self.lease,
            "--leader-lease-duration",
            "3",
            "--leader-renew-period",
            "0.5",
            *extra,
        ]
        log_path = workdir / f"operator-{self.lease}-{self.metrics_port}.log"
        super().__init__("operator", argv, log_path)
        self.starts = 0

    def start(self, timeout: float = 60, wait_ready: bool = True) -> OperatorProcess:
        self.spawn()
        self.starts += 1
        if wait_ready:
            self.wait_for("igor operator ready", timeout)
        return self

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            return resp.read().decode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def ns(k8s):
    return make_namespace(k8s, "op")


@pytest.fixture
def label() -> str:
    """Value of the igor.dev/test label on this test's nodes; its agents select it."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def operator(kubeconfig, tmp_path, ns):
    started: list[OperatorProcess] = []

    def start(*extra: str, wait_ready: bool = True, lease: str | None = None) -> OperatorProcess:
        proc = OperatorProcess(kubeconfig, tmp_path, ns, *extra, lease=lease)
        proc.start(wait_ready=wait_ready)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()


@pytest.fixture
def node_procs(kubeconfig, tmp_path, label):
    with started_nodes(kubeconfig, tmp_path, labels=f"{TEST_LABEL}={label}") as start:
        yield start


@pytest.fixture
def fake_nodes(k8s, label):
    """IgorNodes and node Leases written straight through the API, as a node daemon would."""
    made: list[str] = []

    def make(name: str, **kw: Any) -> str:
        kw.setdefault("labels", {TEST_LABEL: label})
        create_fake_node(k8s, name, **kw)
        made.append(name)
        return name

    yield make
    custom = client.CustomObjectsApi(k8s)
    coord = client.CoordinationV1Api(k8s)
    for name in made:
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, NODES, name)
        with contextlib.suppress(ApiException):
            coord.delete_namespaced_lease(f"igor-node-{name}", LEASE_NS)


# --------------------------------------------------------------------------- objects


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ensure_lease_namespace(k8s) -> None:
    core = client.CoreV1Api(k8s)
    try:
        core.create_namespace(client.V1Namespace(metadata={"name": LEASE_NS}))
    except ApiException as exc:
        if exc.status != 409:
            raise


def put_node_lease(k8s, node: str, duration: int = 60) -> None:
    ensure_lease_namespace(k8s)
    coord = client.CoordinationV1Api(k8s)
    name = f"igor-node-{node}"
    spec = {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": micro_now()}
    try:
        lease = coord.read_namespaced_lease(name, LEASE_NS)
    except ApiException as exc:
        if exc.status != 404:
            raise
        coord.create_namespaced_lease(
            LEASE_NS,
            {"metadata": {"name": name, "namespace": LEASE_NS}, "spec": spec},
        )
        return
    coord.replace_namespaced_lease(
        name,
        LEASE_NS,
        {
            "metadata": {
                "name": name,
                "namespace": LEASE_NS,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": spec,
        },
    )


def create_fake_node(
    k8s,
    name: str,
    *,
    capabilities: tuple[str, ...] = ("clock", "rand", "log", "http"),
    price: int = 1000,
    capacity: int = 100,
    labels: dict[str, str] | None = None,
    ready: bool = True,
    lease_duration: int | None = 60,
    address: str = "http://127.0.0.1:1",
) -> None:
    custom = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IgorNode",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "capabilities": [{"name": c, "version": 1} for c in capabilities],
            "price": price,
            "capacity": {"agents": capacity},
        },
    }
    custom.create_cluster_custom_object(GROUP, VERSION, NODES, body)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    custom.patch_cluster_custom_object_status(
        GROUP,
        VERSION,
        NODES,
        name,
        {
            "status": {
                "address": address,
                "heartbeatTime": now,
                "agentsRunning": 0,
                "leaseName": f"igor-node-{name}",
                "leaseNamespace": LEASE_NS,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "Test",
                        "message": "",
                        "lastTransitionTime": now,
                    }
                ],
            }
        },
    )
    if lease_duration is not None:
        put_node_lease(k8s, name, lease_duration)


def upload_module(k8s, ns: str, name: str) -> str:
    wasm = agents.wasm(name)
    try:
        client.CoreV1Api(k8s).create_namespaced_config_map(
            ns,
            client.V1ConfigMap(
                metadata={"name": f"mod-{name}"},
                binary_data={"module.wasm": base64.b64encode(wasm).decode()},
            ),
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


def agent_body(
    name: str,
    label: str,
    *,
    module: str = "counter",
    digest: str = "sha256:" + "ab" * 32,
    capabilities: tuple[str, ...] = ("clock", "rand", "log"),
    **spec: Any,
) -> dict[str, Any]:
    placement = spec.pop("placement", {})
    placement.setdefault("nodeSelector", {TEST_LABEL: label})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IgorAgent",
        "metadata": {"name": name},
        "spec": {
            "module": {
                "configMap": {"name": f"mod-{module}", "key": "module.wasm"},
                "digest": digest,
            },
            "manifest": {"capabilities": {c: {"version": 1} for c in capabilities}},
            "budget": {"limit": 10_000_000_000},
            "tick": {"intervalMillis": 100},
            "checkpointIntervalSeconds": 1,
            "placement": placement,
            **spec,
        },
    }


def create_agent(k8s, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, AGENTS, body
    )


def get_agent(k8s, ns: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, ns, AGENTS, name
    )


def status(k8s, ns: str, name: str) -> dict[str, Any]:
    return get_agent(k8s, ns, name).get("status") or {}


def create_migration(k8s, ns: str, name: str, agent: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MigrationRequest",
        "metadata": {"name": name},
        "spec": {"agent": agent, **spec},
    }
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, MRS, body
    )


def get_migration(k8s, ns: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, ns, MRS, name)


def mr_status(k8s, ns: str, name: str) -> dict[str, Any]:
    return get_migration(k8s, ns, name).get("status") or {}


def events_for(k8s, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = client.CoreV1Api(k8s).list_namespaced_event(ns).items
    return [
        (e.type, e.reason, e.message)
        for e in sorted(
            items, key=lambda e: (e.last_timestamp or e.event_time or 0, e.metadata.name)
        )
        if e.involved_object.name == name
    ]


def wait_events(k8s, ns: str, name: str, *reasons: str, timeout: float = 15) -> list[str]:
    """The event reasons recorded on ``name`` once all of ``reasons`` are among them (the
    operator posts events in the background)."""
    return eventually(
        lambda: (
            (got := [r for _, r, _ in events_for(k8s, ns, name)])
            and all(r in got for r in reasons)
            and got
        ),
        timeout=timeout,
        what=f"events {reasons} on {name}",
    )


def condition(obj_status: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj_status.get("conditions") or ():
        if c.get("type") == type_:
            return c
    return {}


def report_ready(k8s, ns: str, name: str) -> None:
    """What the holder node writes once it runs the agent at the current epoch."""
    custom = client.CustomObjectsApi(k8s)
    obj = get_agent(k8s, ns, name)
    conds = [c for c in (obj["status"].get("conditions") or []) if c["type"] != "Ready"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conds.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ticking",
            "message": "",
            "lastTransitionTime": now,
        }
    )
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        AGENTS,
        name,
        {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": {"conditions": conds, "tick": 1},
        },
    )


def kubectl(kubeconfig: str, *args: str) -> str:
    from igor.controlplane import find

    out = subprocess.run(
        [str(find("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def delete_migration(k8s, ns: str, name: str) -> None:
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(GROUP, VERSION, ns, MRS, name)


def migration_gone(k8s, ns: str, name: str) -> bool:
    try:
        get_migration(k8s, ns, name)
    except ApiException as exc:
        return exc.status == 404
    return False


def node_condition(k8s, name: str, type: str) -> dict[str, Any]:
    node = client.CustomObjectsApi(k8s).get_cluster_custom_object(GROUP, VERSION, NODES, name)
    for c in (node.get("status") or {}).get("conditions") or []:
        if c["type"] == type:
            return c
    return {}
