"""A real local control plane: etcd, kube-apiserver and kube-controller-manager.

The same approach as controller-runtime's envtest: the real binaries run as
local processes on free loopback ports, with generated certificates. Tests,
`igor dev up` and `make demo` all use this one class.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from igor import kube

from . import binaries, pki
from .process import ManagedProcess, stop_process_group

STATE_FILE = "state.json"


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ControlPlaneState:
    """What `igor dev down` needs to find a detached control plane again."""

    workdir: str
    kubeconfig: str
    api_url: str
    pids: dict[str, int]


def write_kubeconfig(path: Path, server: str, files: pki.PKIFiles) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "igor-local",
                "cluster": {"server": server, "certificate-authority": str(files.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "igor-admin",
                "user": {
                    "client-certificate": str(files.admin_cert),
                    "client-key": str(files.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "igor-local",
                "context": {"cluster": "igor-local", "user": "igor-admin", "namespace": "default"},
            }
        ],
        "current-context": "igor-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class LocalControlPlane:
    """Start with `start()` (or `with`), stop with `stop()`; nothing is left behind.

    `detached=True` lets the processes outlive this Python process (for
    `igor dev up`); otherwise they are killed by the kernel if we die.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        controller_manager: bool = True,
        detached: bool = False,
        crd_files: list[Path] | None = None,
    ):
        self.workdir = Path(workdir)
        self.controller_manager = controller_manager
        self.detached = detached
        # CRDs installed before kube-controller-manager starts, so that its
        # garbage collector discovers them at once instead of 30 s later.
        self.crd_files = crd_files
        self.processes: list[ManagedProcess] = []
        self.kubeconfig = self.workdir / "kubeconfig"
        self.api_port = 0
        self.timings: dict[str, float] = {}

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> LocalControlPlane:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.files = pki.generate(self.workdir / "pki")
            etcd_url = self._start_etcd(timeout)
            self.timings["etcd"] = time.monotonic() - started
            self._start_apiserver(etcd_url, timeout)
            self.timings["apiserver"] = time.monotonic() - started
            if self.crd_files:
                with kube.api_client(self.kubeconfig) as api:
                    kube.apply_crds(api, self.crd_files)
                self.timings["crds"] = time.monotonic() - started
            if self.controller_manager:
                self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        self._save_state()
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(
            name, argv, self.workdir / "logs" / f"{name}.log", tied=not self.detached
        )
        self.processes.append(proc.start(env=_child_env()))
        return proc

    def _start_etcd(self, timeout: float) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        proc = self._spawn(
            "etcd",
            [
                str(binaries.find("etcd")),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(proc, lambda: _http_ok(f"{client_url}/health"), timeout, "etcd /health")
        return client_url

    def _start_apiserver(self, etcd_url: str, timeout: float) -> None:
        self.api_port = free_port()
        f = self.files
        argv = [
            str(binaries.find("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            f"--secure-port={self.api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={f.serving_cert}",
            f"--tls-private-key-file={f.serving_key}",
            f"--client-ca-file={f.ca_cert}",
            f"--service-account-issuer={self.api_url}",
            f"--service-account-key-file={f.service_account_key}",
            f"--service-account-signing-key-file={f.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No serviceaccount controller runs, so the admission plugin that
            # requires each pod's ServiceAccount to exist would refuse pods.
            "--disable-admission-plugins=ServiceAccount",
            "--v=0",
        ]
        proc = self._spawn("kube-apiserver", argv)
        write_kubeconfig(self.kubeconfig, self.api_url, f)
        self._wait(proc, self._apiserver_ready, timeout, "kube-apiserver /readyz")

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.find("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbage-collector-controller,namespace-controller",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=0",
            ],
        )

    def _apiserver_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.files.ca_cert))
        context.load_cert_chain(str(self.files.admin_cert), str(self.files.admin_key))
        if not _http_ok(f"{self.api_url}/readyz", context):
            return False
        # /readyz can pass a moment before the bootstrap controller has created
        # the default namespace that every client expects.
        return _http_ok(f"{self.api_url}/api/v1/namespaces/default", context)

    def _wait(self, proc: ManagedProcess, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ControlPlaneError(
                    f"{proc.name} exited during start-up; last log lines "
                    f"({proc.log_path}):\n{proc.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{what} not ready after {timeout:.0f}s; last log lines ({proc.log_path}):\n"
            f"{proc.log_tail()}"
        )

    def _save_state(self) -> None:
        state = ControlPlaneState(
            workdir=str(self.workdir),
            kubeconfig=str(self.kubeconfig),
            api_url=self.api_url,
            pids={p.name: p.pid for p in self.processes if p.pid},
        )
        (self.workdir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))


def load_state(workdir: Path) -> ControlPlaneState | None:
    path = Path(workdir) / STATE_FILE
    if not path.exists():
        return None
    return ControlPlaneState(**json.loads(path.read_text()))


def stop_detached(workdir: Path) -> list[str]:
    """Stop a control plane started with detached=True; returns what was stopped."""
    state = load_state(workdir)
    if state is None:
        return []
    stopped = []
    for name, pid in reversed(list(state.pids.items())):
        stop_process_group(pid)
        stopped.append(f"{name} (pid {pid})")
    (Path(workdir) / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # A KUBECONFIG inherited from the user must not leak into the components.
    env.pop("KUBECONFIG", None)
    return env


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError, OSError):
        return False
