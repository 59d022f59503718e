"""`make demo`: the whole story on a real control plane, start to finish.

With no KUBECONFIG it starts the embedded control plane (etcd, kube-apiserver,
kube-controller-manager); with KUBECONFIG set it uses that cluster. Either way it
runs the operator and three node daemons as local processes, applies an example
agent with kubectl, shows it ticking, migrates it through a MigrationRequest,
migrates it again by cordoning its node, runs the non-deterministic agent into a
blocked migration, replays the saved bundle, prints a timeline, and tears
everything down.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

from igor import api, kube
from igor.controlplane import LocalControlPlane, find
from igor.localstack import LocalStack

REPO = Path(__file__).resolve().parents[1]
AGENTS = REPO / "agents" / "build"
NS = "igor-demo"
T = TypeVar("T")


class Demo:
    def __init__(self, kubeconfig: Path, workdir: Path):
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.api = kube.api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.started = time.monotonic()
        self.timeline: list[tuple[float, str]] = []

    # ----- output ----------------------------------------------------------------------

    def say(self, text: str) -> None:
        at = time.monotonic() - self.started
        self.timeline.append((at, text))
        print(f"[{at:6.1f}s] {text}", flush=True)

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        argv = [str(find("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        print("$ kubectl " + " ".join(args), flush=True)
        out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        print(out.stdout.rstrip(), flush=True)
        return out.stdout

    def wait(self, what: str, check: Callable[[], T], timeout: float = 60) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    # ----- resources -------------------------------------------------------------------

    def agent(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            api.GROUP, api.VERSION, NS, api.IGOR_AGENT.plural, name
        )

    def status(self, name: str) -> dict[str, Any]:
        return self.agent(name).get("status") or {}

    def mr_status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            api.GROUP, api.VERSION, NS, api.MIGRATION_REQUEST.plural, name
        )
        return obj.get("status") or {}

    def upload(self, module: str) -> str:
        wasm = (AGENTS / f"{module}.wasm").read_bytes()
        self.core.create_namespaced_config_map(
            NS,
            client.V1ConfigMap(
                metadata={"name": f"{module}-module"},
                binary_data={"module.wasm": base64.b64encode(wasm).decode()},
            ),
        )
        return "sha256:" + hashlib.sha256(wasm).hexdigest()

    def agent_manifest(self, name: str, module: str, caps: list[str], **extra: Any) -> str:
        digest = self.upload(module)
        doc = {
            "apiVersion": api.API_VERSION,
            "kind": "IgorAgent",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "module": {
                    "configMap": {"name": f"{module}-module", "key": "module.wasm"},
                    "digest": digest,
                },
                "manifest": {"capabilities": {c: {"version": 1} for c in caps}},
                "budget": {"limit": 1_000_000_000},
                "tick": {"intervalMillis": 200},
                "checkpointIntervalSeconds": 2,
                **extra,
            },
        }
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2))
        return str(path)

    def migrate(self, name: str, agent: str, target: str | None = None) -> str:
        spec: dict[str, Any] = {"agent": agent, "reason": "Manual"}
        if target:
            spec["targetNode"] = target
        path = self.workdir / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": api.API_VERSION,
                    "kind": "MigrationRequest",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": spec,
                }
            )
        )
        self.kubectl("apply", "-f", str(path))
        return name

    def wait_migration(self, name: str) -> dict[str, Any]:
        last = None

        def done():
            nonlocal last
            status = self.mr_status(name)
            phase = status.get("phase")
            if phase != last:
                self.say(f"MigrationRequest {name}: {phase}")
                last = phase
            return status if phase in ("Succeeded", "Failed", "Aborted") else None

        status = self.wait(f"MigrationRequest {name}", done, timeout=120)
        stamps = status.get("phaseTransitionTimestamps") or []
        print("  phases: " + " -> ".join(f"{s['phase']} ({s['time']})" for s in stamps))
        return status

    def wait_running(self, name: str, min_tick: int = 1, node: str | None = None) -> dict:
        def running():
            s = self.status(name)
            ok = s.get("phase") == "Running" and s.get("tick", 0) >= min_tick
            return s if ok and (node is None or s.get("node") == node) else None

        return self.wait(f"{name} Running", running)

    # ----- the story -------------------------------------------------------------------

    def run(self, stack: LocalStack) -> None:
        self.step("start the operator and three node daemons")
        stack.start_operator()
        self.say("operator ready (leader elected)")
        for node in ("node-a", "node-b", "node-c"):
            self.say(f"{node} serving on {stack.start_node(node)}")
        self.kubectl("get", "igornodes")

        self.step("apply an example agent with kubectl")
        self.core.create_namespace(client.V1Namespace(metadata={"name": NS}))
        path = self.agent_manifest("heartbeat", "heartbeat", ["clock", "rand", "log"])
        self.kubectl("apply", "-f", path)
        status = self.wait_running("heartbeat", min_tick=5)
        self.say(
            f"heartbeat Running on {status['node']} at epoch {status['epoch']}, tick "
            f"{status['tick']}"
        )
        self.kubectl("get", "igoragents", "-n", NS)

        self.step("migrate it with a MigrationRequest")
        source = status["node"]
        target = next(n for n in ("node-a", "node-b", "node-c") if n != source)
        self.migrate("move-1", "heartbeat", target)
        mr = self.wait_migration("move-1")
        replay = mr.get("replay") or {}
        self.say(
            f"move-1 {mr['phase']}: {source} -> {mr.get('target')}, replay "
            f"{replay.get('verdict')} over {replay.get('ticksReplayed')} ticks, downtime "
            f"{(mr.get('downtime') or {}).get('ticks')} ticks / "
            f"{(mr.get('downtime') or {}).get('milliseconds')} ms"
        )
        status = self.wait_running("heartbeat", node=target, min_tick=status["tick"] + 3)
        self.say(
            f"heartbeat ticking on {status['node']} at epoch {status['epoch']}, tick "
            f"{status['tick']}"
        )

        self.step(f"cordon {target}: the operator evacuates it")
        self.kubectl(
            "patch", "igornode", target, "--type=merge", "-p", '{"spec":{"unschedulable":true}}'
        )

        def moved():
            s = self.status("heartbeat")
            return (
                s if s.get("node") not in (None, target) and s.get("phase") == "Running" else None
            )

        status = self.wait("evacuation", moved, timeout=120)
        self.say(f"heartbeat evacuated to {status['node']} at epoch {status['epoch']}")
        self.kubectl("get", "migrationrequests", "-n", NS)

        self.step("a non-deterministic agent cannot migrate: the replay gate blocks it")
        path = self.agent_manifest(
            "sneaky",
            "nondeterministic",
            ["clock", "log"],
            replay={"verifyInterval": 0},
        )
        self.kubectl("apply", "-f", path)
        status = self.wait_running("sneaky", min_tick=20)
        self.say(f"sneaky Running on {status['node']} at tick {status['tick']}")
        self.migrate("move-sneaky", "sneaky")
        mr = self.wait_migration("move-sneaky")
        replay = mr.get("replay") or {}
        self.say(
            f"move-sneaky {mr['phase']}: verdict {replay.get('verdict')} at tick "
            f"{replay.get('firstDivergentTick')}; bundle at {replay.get('bundle')}"
        )
        after = self.wait_running("sneaky", node=status["node"], min_tick=status["tick"] + 1)
        self.say(f"sneaky still ticking on its source {after['node']} (tick {after['tick']})")
        self.replay_saved_bundle("move-sneaky")

        self.step("timeline")
        self.kubectl("get", "igor", "-n", NS)
        for at, text in self.timeline:
            print(f"  {at:6.1f}s  {text}")

    def replay_saved_bundle(self, mr_name: str) -> None:
        cm = self.core.read_namespaced_config_map(f"igor-bundle-{mr_name}", NS)
        path = self.workdir / f"{mr_name}.bundle"
        path.write_bytes(base64.b64decode(cm.binary_data["bundle"]))
        print(f"$ igor replay {path}", flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "igor", "replay", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(out.stdout.rstrip(), flush=True)
        if out.returncode != 1 or "DIVERGED" not in out.stdout:
            raise RuntimeError(f"expected igor replay to reproduce the divergence: {out.stderr}")
        self.say(
            f"igor replay reproduced the divergence from the saved bundle (exit {out.returncode})"
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="igor-demo-") as tmp:
        work = Path(tmp)
        plane = None
        kubeconfig_env = os.environ.get("KUBECONFIG")
        if kubeconfig_env:
            kubeconfig = Path(kubeconfig_env)
            print(f"using the cluster in KUBECONFIG={kubeconfig}")
            with kube.api_client(kubeconfig) as apic:
                kube.apply_crds(apic)
        else:
            print(
                "no KUBECONFIG: starting the embedded control plane "
                "(etcd, kube-apiserver, kube-controller-manager)"
            )
            plane = LocalControlPlane(work / "controlplane", crd_files=kube.crd_files()).start()
            kubeconfig = plane.kubeconfig
            print(f"control plane ready in {plane.timings['total']:.1f}s at {plane.api_url}")
        stack = LocalStack(kubeconfig, work / "stack")
        demo = Demo(kubeconfig, work)
        try:
            demo.run(stack)
        except Exception as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
            for name, proc in [("operator", stack.operator), *stack.nodes.items()]:
                if proc is not None:
                    print(
                        f"--- last lines of {name} ({proc.log_path}):\n{proc.log_tail(15)}",
                        file=sys.stderr,
                    )
            return 1
        finally:
            print("\n== tearing down", flush=True)
            stack.stop()
            if kubeconfig_env:
                demo.core.delete_namespace(NS)
            if plane is not None:
                plane.stop()
    print("demo complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
