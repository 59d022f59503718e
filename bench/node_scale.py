"""Agents per node process: N counter agents at 1 tick/s on one real node daemon.

Starts the real local control plane, uploads the counter module, creates N
IgorAgents bound to one node (status written the way the operator binds them),
starts one `igor_node` process, waits until all N run, then measures for
MEASURE_S seconds: tick lag p50/p99/max (from the node's /v1/stats, exact over
its recent ticks), achieved tick rate, the node's RSS and its CPU use (utime +
stime from /proc over the window, in cores). Self-verification stays on (every
5 ticks, the default), so its cost is included. Checkpoints are every 300 s so
the measurement is the tick path, not API-server writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Options, Result

NAME = "node_scale"
AGENTS = 1000
MEASURE_S = 30
SETTLE_S = int(os.environ.get("IGOR_BENCH_SETTLE_S", "30"))


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(address: str) -> dict[str, Any]:
    from tests.integration.nodes import TOKEN

    req = urllib.request.Request(
        address + "/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def run(opts: Options) -> Result:
    from kubernetes import client

    sys.path.insert(0, str(common.REPO))
    from igor import kube
    from igor.controlplane import LocalControlPlane, available

    if not available():
        raise common.Skip("control plane binaries missing: run make setup")
    wasm_path = common.AGENTS_BUILD / "counter.wasm"
    if not wasm_path.exists():
        raise common.Skip("agents/build/counter.wasm missing: run make setup")
    n = opts.scaled(AGENTS, minimum=50)
    measure = 10 if opts.quick else MEASURE_S
    wasm = wasm_path.read_bytes()
    digest = "sha256:" + hashlib.sha256(wasm).hexdigest()
    with tempfile.TemporaryDirectory(prefix="igor-bench-node-") as tmp:
        work = Path(tmp)
        plane = LocalControlPlane(work / "cp", crd_files=kube.crd_files()).start()
        node = None
        try:
            api = kube.api_client(plane.kubeconfig)
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            core.create_namespace(client.V1Namespace(metadata={"name": "bench"}))
            core.create_namespaced_config_map(
                "bench",
                client.V1ConfigMap(
                    metadata={"name": "counter"},
                    binary_data={"module.wasm": base64.b64encode(wasm).decode()},
                ),
            )
            started = time.monotonic()
            for i in range(n):
                name = f"a{i:05d}"
                obj = custom.create_namespaced_custom_object(
                    "igor.dev",
                    "v1alpha1",
                    "bench",
                    "igoragents",
                    {
                        "apiVersion": "igor.dev/v1alpha1",
                        "kind": "IgorAgent",
                        "metadata": {"name": name},
                        "spec": {
                            "module": {
                                "configMap": {"name": "counter", "key": "module.wasm"},
                                "digest": digest,
                            },
                            "manifest": {
                                "capabilities": {
                                    c: {"version": 1} for c in ("clock", "rand", "log")
                                }
                            },
                            "budget": {"limit": 10**15},
                            "checkpointIntervalSeconds": 300,
                        },
                    },
                )
                custom.patch_namespaced_custom_object_status(
                    "igor.dev",
                    "v1alpha1",
                    "bench",
                    "igoragents",
                    name,
                    {
                        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                        "status": {
                            "node": "bench-node",
                            "epoch": "1.0",
                            "lease": {
                                "holder": "bench-node",
                                "epoch": {"major": 1, "minor": 0},
                                "state": "Active",
                            },
                        },
                    },
                )
            common.detail(opts, f"created {n} IgorAgents in {time.monotonic() - started:.1f}s")
            from tests.integration.nodes import NodeProcess

            node = NodeProcess(
                "bench-node", plane.kubeconfig, work, capacity=n + 10, lease_duration=30
            ).start(timeout=60)
            started = time.monotonic()
            while True:
                stats = _stats(node.address)
                if stats["agents"] >= n:
                    break
                if time.monotonic() - started > 600:
                    raise RuntimeError(f"only {stats['agents']}/{n} agents started in 600 s")
                time.sleep(1)
            ramp = time.monotonic() - started
            common.detail(opts, f"node runs all {n} agents after {ramp:.1f}s")
            time.sleep(SETTLE_S)  # start-up commits (one per agent) must not count
            before, cpu0, t0 = (
                _stats(node.address),
                _proc_cpu_seconds(node.proc.pid),
                time.monotonic(),
            )
            time.sleep(measure)
            after, cpu1, t1 = (
                _stats(node.address),
                _proc_cpu_seconds(node.proc.pid),
                time.monotonic(),
            )
        finally:
            if node is not None:
                node.terminate(timeout=60)
            plane.stop()
    rate = (after["ticks"] - before["ticks"]) / (t1 - t0)
    cores = (cpu1 - cpu0) / (t1 - t0)
    figures = {
        "agents": n,
        "measure_s": round(t1 - t0, 1),
        "ramp_s": round(ramp, 1),
        "ticks_per_s": round(rate, 1),
        "expected_ticks_per_s": n,
        "tick_lag_p50_ms": after["tickLagP50Ms"],
        "tick_lag_p99_ms": after["tickLagP99Ms"],
        "tick_lag_max_ms": after["tickLagMaxMs"],
        "rss_mb": round(after["rssBytes"] / 2**20, 1),
        "cpu_cores": round(cores, 3),
    }
    line = (
        f"{NAME}: agents={n} tick_lag p50={figures['tick_lag_p50_ms']}ms "
        f"p99={figures['tick_lag_p99_ms']}ms rate={rate:.0f}/s (want {n}/s) "
        f"rss={figures['rss_mb']}MB cpu={cores:.2f} cores"
    )
    return Result(NAME, line, figures)
