"""`igor-operator` / `python -m igor_operator`: run the igor operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from .gate import GiB, SandboxLimits
from .migration import Limits
from .settings import DEFAULT_NAMESPACE, Config, WebhookConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="igor-operator",
        description="Schedule, migrate (replay-verified) and recover igor agents on IgorNodes.",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster config)")
    p.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help="namespace of the node Leases and the operator's leader Lease "
        f"(default {DEFAULT_NAMESPACE}; created if missing)",
    )
    p.add_argument(
        "--watch-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="handle IgorAgents and MigrationRequests only in this namespace (repeatable; "
        "default: all namespaces)",
    )
    p.add_argument("--no-create-namespace", action="store_true", help="never create --namespace")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-addr", default="127.0.0.1", help="address for the metrics server")
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /healthz (the event loop answers) and /readyz (leading, or standing by) "
        "on this port",
    )
    p.add_argument("--health-addr", default="127.0.0.1", help="address for the health server")
    p.add_argument("--node-token-file", type=Path, help="bearer token for the node API")
    p.add_argument("--node-timeout", type=float, default=15.0, help="node API timeout, seconds")
    hook = p.add_argument_group("admission webhooks")
    hook.add_argument("--webhook", action="store_true", help="serve validating webhooks")
    hook.add_argument("--webhook-addr", default="127.0.0.1", help="listen address")
    hook.add_argument("--webhook-port", type=int, default=0, help="listen port (0: any free)")
    hook.add_argument("--webhook-host", help="host name or IP the API server uses to reach us")
    hook.add_argument("--webhook-cert", type=Path, help="TLS certificate (default: self-signed)")
    hook.add_argument("--webhook-key", type=Path, help="TLS key for --webhook-cert")
    hook.add_argument(
        "--webhook-configuration",
        default="igor.dev",
        help="name of the ValidatingWebhookConfiguration the operator keeps up to date",
    )
    ha = p.add_argument_group("leader election")
    ha.add_argument("--identity", default="", help="leader identity (default: host-pid)")
    ha.add_argument("--leader-lease", default="igor-operator", help="name of the leader Lease")
    ha.add_argument("--leader-lease-duration", type=float, default=15.0, help="seconds")
    ha.add_argument("--leader-renew-period", type=float, default=2.0, help="seconds")
    mig = p.add_argument_group("migrations")
    mig.add_argument("--max-migrations", type=int, default=5, help="in flight, cluster-wide")
    mig.add_argument("--max-migrations-per-node", type=int, default=2, help="as source or target")
    mig.add_argument(
        "--migration-phase-timeout", type=float, default=60.0, help="seconds per phase"
    )
    mig.add_argument(
        "--cutover-wait",
        type=float,
        default=30.0,
        help="seconds to wait for the target's first tick after a cut-over",
    )
    gate = p.add_argument_group("replay sandbox")
    gate.add_argument("--replay-timeout", type=float, default=120.0, help="seconds per replay")
    gate.add_argument("--replay-cpu-seconds", type=int, default=120)
    gate.add_argument("--replay-memory-mib", type=int, default=1024, help="writable memory limit")
    p.add_argument("--workers", type=int, default=8, help="concurrent reconciles")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    webhook = None
    if args.webhook:
        webhook = WebhookConfig(
            addr=args.webhook_addr,
            port=args.webhook_port,
            host=args.webhook_host,
            certfile=args.webhook_cert,
            pkeyfile=args.webhook_key,
            configuration=args.webhook_configuration,
        )
    return Config(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        watch_namespaces=tuple(args.watch_namespace),
        create_namespace=not args.no_create_namespace,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_addr,
        health_port=args.health_port,
        health_addr=args.health_addr,
        node_token_file=args.node_token_file,
        node_timeout=args.node_timeout,
        webhook=webhook,
        verbose=args.verbose,
        identity=args.identity,
        leader_lease_name=args.leader_lease,
        leader_lease_duration=args.leader_lease_duration,
        leader_renew_period=args.leader_renew_period,
        migration=Limits(
            max_parallel=args.max_migrations,
            max_parallel_per_node=args.max_migrations_per_node,
            phase_timeout=args.migration_phase_timeout,
            cutover_wait=args.cutover_wait,
        ),
        sandbox=SandboxLimits(
            data=args.replay_memory_mib * 1024 * 1024,
            address_space=max(16 * GiB, args.replay_memory_mib * 1024 * 1024 + 15 * GiB),
            cpu_seconds=args.replay_cpu_seconds,
            timeout=args.replay_timeout,
        ),
        workers=args.workers,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf narrates every watch event at INFO; the operator's own log says what matters.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from .app import run

    try:
        return asyncio.run(run(config_from_args(args)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
