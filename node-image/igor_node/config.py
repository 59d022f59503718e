"""Node configuration from flags, with IGOR_NODE_* environment variables as defaults."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from igor import abi

# kubernetes_asyncio sends dict bodies as JSON patches unless told otherwise.
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class NodeConfig:
    name: str
    lease_namespace: str = "igor-system"
    kubeconfig: str | None = None
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    advertise: str | None = None  # URL the operator uses; default http://<listen>
    capabilities: dict[str, int] = field(default_factory=lambda: dict(abi.CAPABILITY_VERSIONS))
    price: int = 1000
    capacity_agents: int = 1000
    capacity_memory: int = 64 * 1024**3
    store: str = "configmap"  # "configmap" or "file:/path"
    lease_duration_s: int = 40
    token_file: str | None = None
    auth: str = "token"  # "token" (shared bearer token) or "tokenreview"
    allowed_users: tuple[str, ...] = ()  # with tokenreview: who may call the API
    labels: dict[str, str] = field(default_factory=dict)
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def renew_interval_s(self) -> float:
        return self.lease_duration_s / 3

    @property
    def fence_after_s(self) -> float:
        # Stop ticking a quarter of the duration before the Lease could expire.
        return self.lease_duration_s * 0.75

    @property
    def lease_name(self) -> str:
        return f"igor-node-{self.name}"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"IGOR_NODE_{name}", default)


def _capabilities(text: str) -> dict[str, int]:
    caps = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, version = item.partition("=")
        if name not in abi.CAPABILITY_VERSIONS:
            raise argparse.ArgumentTypeError(
                f"unknown capability {name!r} (known: {', '.join(abi.CAPABILITY_VERSIONS)})"
            )
        caps[name] = int(version) if version else abi.CAPABILITY_VERSIONS[name]
    return caps


def _labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"label {item!r} must be key=value")
        out[key] = value
    return out


def parse_args(argv: list[str] | None = None) -> NodeConfig:
    p = argparse.ArgumentParser(prog="igor-node", description="igor node daemon")
    p.add_argument(
        "--name", default=_env("NAME") or os.environ.get("POD_NAME") or socket.gethostname()
    )
    p.add_argument("--lease-namespace", default=_env("LEASE_NAMESPACE", "igor-system"))
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG") or os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--listen", default=_env("LISTEN", "0.0.0.0:8080"), help="HOST:PORT (port 0: any)"
    )
    p.add_argument("--advertise", default=_env("ADVERTISE"), help="URL the operator reaches us at")
    p.add_argument(
        "--capabilities",
        type=_capabilities,
        default=_capabilities(_env("CAPABILITIES", ",".join(abi.CAPABILITY_VERSIONS)) or ""),
    )
    p.add_argument("--price", type=int, default=int(_env("PRICE", "1000") or 1000))
    p.add_argument("--capacity", type=int, default=int(_env("CAPACITY", "1000") or 1000))
    p.add_argument("--store", default=_env("STORE", "configmap"), help="configmap | file:DIR")
    p.add_argument("--lease-duration", type=int, default=int(_env("LEASE_DURATION", "40") or 40))
    p.add_argument("--token-file", default=_env("TOKEN_FILE"))
    p.add_argument("--auth", choices=("token", "tokenreview"), default=_env("AUTH", "token"))
    p.add_argument("--allowed-user", action="append", default=[], dest="allowed_users")
    p.add_argument("--labels", type=_labels, default=_labels(_env("LABELS", "") or ""))
    p.add_argument("--tls-cert", default=_env("TLS_CERT"), help="serve HTTPS with this cert")
    p.add_argument("--tls-key", default=_env("TLS_KEY"), help="key for --tls-cert")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if args.store != "configmap" and not args.store.startswith("file:"):
        p.error(f"--store: expected 'configmap' or 'file:DIR', got {args.store!r}")
    if args.auth == "token" and not args.token_file:
        p.error("--token-file (or IGOR_NODE_TOKEN_FILE) is required with --auth token")
    if args.token_file and not Path(args.token_file).is_file():
        p.error(f"--token-file: {args.token_file} does not exist")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not Path(path).is_file():
            p.error(f"{flag}: {path} does not exist")
    if args.lease_duration < 3:
        p.error("--lease-duration must be at least 3 seconds")
    return NodeConfig(
        name=args.name,
        lease_namespace=args.lease_namespace,
        kubeconfig=args.kubeconfig,
        listen_host=host or "0.0.0.0",
        listen_port=int(port),
        advertise=args.advertise,
        capabilities=args.capabilities,
        price=args.price,
        capacity_agents=args.capacity,
        store=args.store,
        lease_duration_s=args.lease_duration,
        token_file=args.token_file,
        auth=args.auth,
        allowed_users=tuple(args.allowed_users),
        labels=args.labels,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
