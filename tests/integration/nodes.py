"""Real node daemon processes for integration tests (shared by node and operator tests)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import aiohttp  # noqa: F401  (the node's dependency; import early for a clear error)

from igor.localstack import node_argv

TOKEN = "test-node-token"


def token_file(directory: Path) -> Path:
    path = directory / "node-token"
    path.write_text(TOKEN)
    return path


class NodeProcess:
    """`python -m igor_node` as a child process; kill/stop/cont are real signals."""

    def __init__(
        self,
        name: str,
        kubeconfig: str | Path,
        workdir: Path,
        *,
        capabilities: str = "clock,rand,log,http,wallet,pricing",
        price: int = 1000,
        capacity: int = 1000,
        lease_duration: int = 6,
        store: str = "configmap",
        labels: str = "",
        extra: list[str] | None = None,
    ):
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"node-{name}.log"
        self.argv = [
            *node_argv(
                name,
                kubeconfig,
                token_file(workdir),
                capabilities=capabilities,
                price=price,
                capacity=capacity,
                lease_duration=lease_duration,
            ),
            "--store",
            store,
            *(["--labels", labels] if labels else []),
            *(extra or []),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.address: str | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self, timeout: float = 30) -> NodeProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("KUBECONFIG", None)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"node {self.name} exited:\n{self.log_tail()}") from None
                continue
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                self.address = m.group(1)
                return self
        raise RuntimeError(f"node {self.name} did not start in {timeout}s:\n{self.log_tail()}")

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        with open(self.log_path, "a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self._lines.put(line)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def terminate(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        with_cont = True
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            with_cont = False
        if with_cont:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
