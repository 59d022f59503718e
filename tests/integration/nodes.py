"""Real node daemon processes for integration tests (shared by node and operator tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp  # noqa: F401  (the node's dependency; import early for a clear error)

from igor.localstack import node_argv

from .processes import ChildProcess

TOKEN = "test-node-token"


def token_file(directory: Path) -> Path:
    path = directory / "node-token"
    path.write_text(TOKEN)
    return path


class NodeProcess(ChildProcess):
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
        argv = [
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
        super().__init__(name, argv, workdir / f"node-{name}.log")
        self.workdir = workdir
        self.address: str | None = None

    def start(self, timeout: float = 30) -> NodeProcess:
        self.spawn()
        self.address = self.wait_for(r"listening on (https?://\S+)", timeout).group(1)
        return self


@contextlib.contextmanager
def started_nodes(kubeconfig: str | Path, workdir: Path, **defaults: Any) -> Iterator[Any]:
    """A `start(name, **kw)` factory for node processes, all terminated on exit."""
    started: list[NodeProcess] = []

    def start(name: str, **kw: Any) -> NodeProcess:
        node = NodeProcess(name, kubeconfig, workdir, **{**defaults, **kw}).start()
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            node.terminate()
