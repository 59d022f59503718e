"""Shared set-up for the cluster benchmarks: a real control plane, the operator and
node daemons as local processes, and a module uploaded to a namespace."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common


@dataclass
class Cluster:
    plane: Any
    stack: Any
    core: Any
    custom: Any
    namespace: str
    digest: str
    nodes: dict[str, str]

    def on_node(self, node: str, name: str) -> dict[str, Any] | None:
        """The agent as the node itself sees it (its live tick), or None if not held."""
        from igor.localstack import NODE_TOKEN

        req = urllib.request.Request(
            f"{self.nodes[node]}/v1/agents/{self.namespace}/{name}",
            headers={"Authorization": f"Bearer {NODE_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def agent_body(self, name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "igor.dev/v1alpha1",
            "kind": "IgorAgent",
            "metadata": {"name": name},
            "spec": {
                "module": {
                    "configMap": {"name": "module", "key": "module.wasm"},
                    "digest": self.digest,
                },
                "manifest": {"capabilities": {c: {"version": 1} for c in ("clock", "rand", "log")}},
                "budget": {"limit": 10**15},
                **spec,
            },
        }

    def create_agent(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            "igor.dev", "v1alpha1", self.namespace, "igoragents", self.agent_body(name, **spec)
        )

    def bind(self, name: str, node: str) -> None:
        """Bind as the operator does (status with resourceVersion), for runs without it."""
        obj = self.custom.get_namespaced_custom_object(
            "igor.dev", "v1alpha1", self.namespace, "igoragents", name
        )
        lease = {"holder": node, "epoch": {"major": 1, "minor": 0}, "state": "Active"}
        self.custom.patch_namespaced_custom_object_status(
            "igor.dev",
            "v1alpha1",
            self.namespace,
            "igoragents",
            name,
            {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": {"node": node, "epoch": "1.0", "lease": lease},
            },
        )

    def stats(self, node: str) -> dict[str, Any]:
        return self._node_get(node, "/v1/stats")

    def _node_get(self, node: str, path: str) -> dict[str, Any]:
        from igor.localstack import NODE_TOKEN

        req = urllib.request.Request(
            self.nodes[node] + path, headers={"Authorization": f"Bearer {NODE_TOKEN}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def agent_status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            "igor.dev", "v1alpha1", self.namespace, "igoragents", name
        )
        return obj.get("status") or {}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def cluster(
    nodes: int, module: str = "counter", *, capacity: int = 1000, operator: bool = True
) -> Iterator[Cluster]:
    from kubernetes import client

    from igor import kube
    from igor.controlplane import LocalControlPlane, available
    from igor.localstack import LocalStack

    if not available():
        raise common.Skip("control plane binaries missing: run make setup")
    wasm_path = common.AGENTS_BUILD / f"{module}.wasm"
    if not wasm_path.exists():
        raise common.Skip(f"{wasm_path} missing: run make setup")
    wasm = wasm_path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="igor-bench-cluster-") as tmp:
        work = Path(tmp)
        plane = LocalControlPlane(work / "cp", crd_files=kube.crd_files()).start()
        stack = LocalStack(plane.kubeconfig, work / "stack", lease_duration=30)
        try:
            api = kube.api_client(plane.kubeconfig)
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            core.create_namespace(client.V1Namespace(metadata={"name": "bench"}))
            core.create_namespaced_config_map(
                "bench",
                client.V1ConfigMap(
                    metadata={"name": "module"},
                    binary_data={"module.wasm": base64.b64encode(wasm).decode()},
                ),
            )
            if operator:
                stack.start_operator()
            addresses = {
                f"n{i}": stack.start_node(f"n{i}", capabilities="clock,rand,log", capacity=capacity)
                for i in range(nodes)
            }
            digest = "sha256:" + hashlib.sha256(wasm).hexdigest()
            yield Cluster(plane, stack, core, custom, "bench", digest, addresses)
        finally:
            stack.stop()
            plane.stop()
