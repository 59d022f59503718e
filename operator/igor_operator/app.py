"""The operator process: leader election, then kopf plus the reconcile workers until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Hashable
from pathlib import Path

import kopf

from . import agents, health, metrics, migrations, nodes
from . import cache as cache_mod
from .cache import Cache
from .context import AGENT_KEY, MIGRATION_KEY, NODE_KEY, Context, agent_key, migration_key, node_key
from .events import EventRecorder
from .gate import Sandbox
from .handlers import QuietRefusals, build_registry
from .kubeapi import Kube, new_api_client
from .leader import LeaderElector
from .nodeclient import NodeClient
from .settings import Config, configure_kopf
from .workqueue import WorkQueue

log = logging.getLogger("igor_operator")

EXIT_OK = 0
EXIT_LOST_LEADERSHIP = 3


def self_signed_certificate(hosts: list[str], folder: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate for the webhook (its own CA, as the API server's
    caBundle), made with `cryptography` so kopf's optional certbuilder is not needed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "igor-operator-webhook")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = folder / "webhook.crt", folder / "webhook.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyfile.chmod(0o600)
    return certfile, keyfile


def _kopf_settings(config: Config, tmp: Path) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, config)
    hook = config.webhook
    if hook is not None:
        host = hook.host or hook.addr
        certfile, keyfile = hook.certfile, hook.pkeyfile
        if certfile is None or keyfile is None:
            certfile, keyfile = self_signed_certificate([host, hook.addr, "localhost"], tmp)
        settings.admission.server = kopf.WebhookServer(
            addr=hook.addr,
            port=hook.port or None,
            host=host,
            certfile=str(certfile),
            pkeyfile=str(keyfile),
        )
        settings.admission.managed = hook.configuration
    return settings


async def _prime(ctx: Context) -> None:
    """List everything once so the first decisions see the whole cluster, not a partial watch."""
    watched = set(ctx.config.watch_namespaces)
    for kind in ("agent", "node", "migration"):
        items, _ = await ctx.kube.list(kind)
        for item in items:
            namespace = (item.get("metadata") or {}).get("namespace")
            if kind == "node" or not watched or namespace in watched:
                ctx.cache.put(kind, item)
    for lease in await ctx.kube.list_leases(ctx.config.namespace):
        ctx.cache.put(cache_mod.LEASE, lease)
    ctx.live = ctx.live_nodes(dt.datetime.now(dt.UTC))


def _queue_everything(ctx: Context) -> None:
    for agent in ctx.cache.agents():
        ctx.enqueue(agent_key(*cache_mod.key_of(agent)))
    for node in ctx.cache.nodes():
        ctx.enqueue(node_key(cache_mod.key_of(node)[1]))
    for mr in ctx.cache.migrations():
        ctx.enqueue(migration_key(*cache_mod.key_of(mr)))


def _dispatcher(ctx: Context):
    async def dispatch(key: Hashable) -> float | None:
        kind, namespace, name = key  # type: ignore[misc]
        if kind == AGENT_KEY:
            return await agents.reconcile(ctx, namespace, name)
        if kind == NODE_KEY:
            return await nodes.reconcile(ctx, name)
        if kind == MIGRATION_KEY:
            return await migrations.reconcile(ctx, namespace, name)
        return None

    return dispatch


def _observe(key: Hashable, seconds: float, ok: bool) -> None:
    kind = key[0] if isinstance(key, tuple) else "unknown"
    metrics.RECONCILE_SECONDS.labels(kind, "ok" if ok else "error").observe(seconds)


async def run(config: Config) -> int:
    state = health.Health()
    server = None
    if config.health_port is not None:
        server = health.HealthServer(state, config.health_addr, config.health_port)
        await server.start()
    try:
        return await _run(config, state)
    finally:
        state.state = health.STOPPING
        if server is not None:
            await server.stop()


async def _run(config: Config, state: health.Health) -> int:
    logging.getLogger("kopf.objects").addFilter(QuietRefusals())
    if config.kubeconfig is not None:
        # kopf's login reads $KUBECONFIG; our own client is given the path directly.
        os.environ["KUBECONFIG"] = str(config.kubeconfig)
    api_client = await new_api_client(config.kubeconfig)
    kube = Kube(api_client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.create_namespace:
        try:
            await kube.ensure_namespace(config.namespace)
        except Exception as exc:
            log.warning("could not ensure namespace %s: %s", config.namespace, exc)
    if config.metrics_port is not None:
        metrics.serve(config.metrics_port, config.metrics_addr)
    identity = config.identity or f"{socket.gethostname()}-{os.getpid()}"
    elector = LeaderElector(
        api_client,
        config.namespace,
        config.leader_lease_name,
        identity,
        duration=config.leader_lease_duration,
        retry_period=config.leader_renew_period,
    )
    state.elector = elector

    def standing_by() -> None:
        state.state = health.STANDBY

    elector.on_standby = standing_by
    acquiring = asyncio.create_task(elector.acquire())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not acquiring.done():
        acquiring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquiring
        await api_client.close()
        return EXIT_OK
    state.state = health.ACQUIRED
    log.info("leader %s: reconciling", identity)

    ctx = Context(
        config=config,
        kube=kube,
        cache=Cache(),
        events=EventRecorder(api_client, identity),
        nodes=NodeClient.from_token_file(config.node_token_file, config.node_timeout),
        sandbox=Sandbox(config.sandbox),
    )
    ctx.queue = WorkQueue(_dispatcher(ctx), config.workers, on_done=_observe)
    ctx.sandbox.prewarm()
    lost = asyncio.Event()

    def on_lost() -> None:
        lost.set()
        stop.set()

    background: list[asyncio.Task] = []
    kopf_stop = asyncio.Event()
    operator: asyncio.Task | None = None
    with tempfile.TemporaryDirectory(prefix="igor-operator-") as tmp:
        try:
            await _prime(ctx)
            ctx.queue.start()
            _queue_everything(ctx)
            background.append(asyncio.create_task(elector.hold(on_lost), name="igor-leader"))
            background.append(asyncio.create_task(nodes.liveness_loop(ctx), name="igor-liveness"))
            background.append(asyncio.create_task(_queue_gauge(ctx), name="igor-queue-gauge"))
            ready = asyncio.Event()
            scope: dict = {"clusterwide": True}
            if config.watch_namespaces:
                # The node Leases live in the operator's namespace: watch it too.
                scope = {"namespaces": sorted({*config.watch_namespaces, config.namespace})}
            operator = asyncio.create_task(
                kopf.operator(
                    registry=build_registry(ctx),
                    settings=_kopf_settings(config, Path(tmp)),
                    standalone=True,
                    stop_flag=kopf_stop,
                    ready_flag=ready,
                    **scope,
                ),
                name="igor-kopf",
            )
            background.append(asyncio.create_task(_announce(ready, stop, state), name="igor-ready"))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({operator, stopping}, return_when=asyncio.FIRST_COMPLETED)
            state.state = health.STOPPING
            stopping.cancel()
            if operator.done() and not operator.cancelled() and operator.exception():
                log.error("kopf stopped: %s", operator.exception())
        finally:
            # Stop deciding before the watches stop: a view that no longer updates would make
            # every node Lease look expired.
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(BaseException):
                    await task
            await ctx.queue.stop()
            await ctx.events.flush()
            kopf_stop.set()
            if operator is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(operator, 10)
            await ctx.sandbox.close()
            await ctx.nodes.close()
            if not lost.is_set():
                await elector.release()
            await api_client.close()
            log.info("igor operator stopped")
    return EXIT_LOST_LEADERSHIP if lost.is_set() else EXIT_OK


async def _announce(ready: asyncio.Event, stop: asyncio.Event, state: health.Health) -> None:
    await ready.wait()
    # kopf installs its own SIGTERM/SIGINT handlers when it starts; take them back so that
    # shutdown stops the reconcilers first and kopf's watches last.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not stop.is_set():
        state.state = health.LEADING
    log.info("igor operator ready")


async def _queue_gauge(ctx: Context) -> None:
    while True:
        metrics.QUEUE_DEPTH.set(len(ctx.queue))
        await asyncio.sleep(1)
