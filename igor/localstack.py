"""The operator and node daemons as local processes, against any kubeconfig.

`make demo` uses it on the embedded control plane; it works the same against
a real cluster whose pods cannot run igor (for example on a laptop).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from igor.controlplane.process import ManagedProcess

NODE_TOKEN = "local-node-token"


def node_argv(
    name: str,
    kubeconfig: Path | str,
    token_file: Path | str,
    *,
    capabilities: str,
    price: int,
    capacity: int,
    lease_duration: int,
    listen: str = "127.0.0.1:0",
) -> list[str]:
    """The command line of a node daemon on this machine (also used by the tests)."""
    return [
        sys.executable, "-m", "igor_node",
        "--name", name,
        "--kubeconfig", str(kubeconfig),
        "--listen", listen,
        "--token-file", str(token_file),
        "--capabilities", capabilities,
        "--price", str(price),
        "--capacity", str(capacity),
        "--lease-duration", str(lease_duration),
    ]  # fmt: skip


class LocalStack:
    def __init__(self, kubeconfig: Path, workdir: Path, *, lease_duration: int = 6):
        self.kubeconfig = Path(kubeconfig)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file = self.workdir / "node-token"
        self.token_file.write_text(NODE_TOKEN)
        self.lease_duration = lease_duration
        self.operator: ManagedProcess | None = None
        self.nodes: dict[str, ManagedProcess] = {}

    def _wait_log(self, proc: ManagedProcess, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(
                pattern, proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
            )
            if match:
                return match.group(0)
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.log_tail()}")

    def start_operator(self, timeout: float = 60) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "igor_operator",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node-token-file",
            str(self.token_file),
        ]
        self.operator = ManagedProcess("igor-operator", argv, self.workdir / "operator.log").start()
        self._wait_log(self.operator, r"igor operator ready", timeout)
        return self.operator

    def start_node(
        self,
        name: str,
        *,
        capabilities: str = "clock,rand,log,http",
        price: int = 1000,
        capacity: int = 1000,
        timeout: float = 60,
    ) -> str:
        argv = node_argv(
            name,
            self.kubeconfig,
            self.token_file,
            capabilities=capabilities,
            price=price,
            capacity=capacity,
            lease_duration=self.lease_duration,
        )
        proc = ManagedProcess(f"node-{name}", argv, self.workdir / f"node-{name}.log").start()
        self.nodes[name] = proc
        line = self._wait_log(proc, r"listening on https?://\S+", timeout)
        return line.split("listening on ", 1)[1]

    def stop(self) -> None:
        for proc in [*self.nodes.values(), *([self.operator] if self.operator else [])]:
            proc.stop(grace=20)
        self.nodes.clear()
        self.operator = None
