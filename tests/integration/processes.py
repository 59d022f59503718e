"""Components as real child processes in tests: the node daemon, the operator.

Each runs in its own session, its output goes to a log file and a line queue, and
faults are real signals (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from igor.controlplane.cluster import free_port

__all__ = ["ChildProcess", "free_port"]


class ChildProcess:
    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def spawn(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("KUBECONFIG", None)  # every component gets --kubeconfig explicitly
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
        assert proc.stdout
        with open(self.log_path, "a") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first new output line matching pattern; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}") from None
                continue
            if match := re.search(pattern, line):
                return match
        raise RuntimeError(f"{self.name}: no {pattern!r} within {timeout}s:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def signal(self, sig: int) -> None:
        assert self.proc
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 20) -> int | None:
        """SIGTERM (after SIGCONT, in case a test stopped it), then SIGKILL after timeout."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            self.cont()
            self.signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)
