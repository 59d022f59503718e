"""Wiring: API client, engine, store, lease keeper, supervisor, HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio import client, config

from igor.host import Engine
from igor.store import CheckpointStore, FileStore, KubeStore

from .config import NodeConfig
from .leasekeeper import LeaseKeeper
from .metrics import NodeMetrics
from .registration import Registration
from .server import Authenticator, make_app
from .supervisor import Supervisor

log = logging.getLogger("igor.node")


async def api_client(cfg: NodeConfig) -> client.ApiClient:
    if cfg.kubeconfig:
        await config.load_kube_config(config_file=cfg.kubeconfig)
    else:
        config.load_incluster_config()
    return client.ApiClient()


def make_store(cfg: NodeConfig, api: client.ApiClient) -> CheckpointStore:
    if cfg.store.startswith("file:"):
        return FileStore(Path(cfg.store[5:]))
    return KubeStore(api)


GC_FREEZE_S = 30
GC_FULL_EVERY = 20  # freezes between full collections (10 minutes)


async def keep_gc_pauses_short() -> None:
    """Freeze long-lived objects out of the cyclic collector's reach.

    A node holds hundreds of thousands of long-lived objects (instances, replay
    windows); a full collection over them stalls the event loop for 50-250 ms,
    which is every agent's tick lag. Frozen objects are skipped. Garbage among
    them (dropped agents) is reclaimed by one full collection every ten minutes.
    """
    rounds = 0
    while True:
        await asyncio.sleep(GC_FREEZE_S)
        rounds += 1
        if rounds % GC_FULL_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


async def run(cfg: NodeConfig) -> None:
    api = await api_client(cfg)
    engine = Engine()
    metrics = NodeMetrics()
    store = make_store(cfg, api)
    supervisor: Supervisor | None = None

    async def on_renewed(was_fenced: bool) -> None:
        if was_fenced and supervisor is not None:
            log.warning("lease valid again: re-listing agents before ticking")
            supervisor.request_resync()

    keeper = LeaseKeeper(api, cfg, metrics, on_renewed)
    supervisor = Supervisor(api, cfg, engine, store, metrics, lambda: keeper.valid)
    registration = Registration(api, cfg, engine)
    app = make_app(
        cfg,
        supervisor,
        metrics,
        Authenticator(cfg, api),
        ready=lambda: keeper.valid and supervisor.synced.is_set(),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = None
    if cfg.tls_cert and cfg.tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    site = web.TCPSite(runner, cfg.listen_host, cfg.listen_port, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    address = cfg.advertise or f"{scheme}://{cfg.listen_host}:{port}"
    log.info("node %s serving on %s", cfg.name, address)

    await keeper.ensure_namespace()
    await registration.register()
    await keeper.renew_once()

    async def heartbeats() -> None:
        while True:
            try:
                await registration.heartbeat(address, len(supervisor.agents), keeper.valid)
            except Exception as exc:  # the next heartbeat tries again
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(cfg.renew_interval_s)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(keeper.run(), name="lease"),
        asyncio.create_task(supervisor.run_watch(), name="watch"),
        asyncio.create_task(supervisor.run_scheduler(), name="ticks"),
        asyncio.create_task(heartbeats(), name="heartbeat"),
        asyncio.create_task(keep_gc_pauses_short(), name="gc"),
    ]
    # Printed for whoever started us (tests, the demo): where the API listens.
    print(f"igor-node {cfg.name} listening on {address}", flush=True)
    await stop.wait()
    log.info("shutting down: final checkpoints, then releasing the lease")
    tasks[2].cancel()
    if keeper.valid:
        await supervisor.shutdown()
    await keeper.release()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    await api.close()
    engine.close()
