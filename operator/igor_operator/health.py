"""`/healthz` and `/readyz` on --health-port: a small aiohttp server on the operator's own loop.

`/healthz` answers 200 whenever the event loop runs the handler at all: a blocked loop makes the
probe time out, and that is what a liveness probe is for. `/readyz` answers 200 once the operator
has talked to the API server and is either the leader with its watches ready, or a standby
waiting for the leader Lease; 503 before that, after a failed leader-election call, and while
stopping. A standby is ready: a rollout must not wait for it to become the leader.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

STARTING = "starting"  # no answer from the API server yet
STANDBY = "standby"  # waiting for the leader Lease
ACQUIRED = "acquired"  # leader, priming the cache and starting the watches
LEADING = "leading"  # leader, watches ready
STOPPING = "stopping"


@dataclass
class Health:
    state: str = STARTING
    # The LeaderElector: its `connected` tells whether its last API server call succeeded.
    elector: Any = None

    @property
    def connected(self) -> bool:
        return bool(self.elector is not None and self.elector.connected)

    def ready(self) -> bool:
        return self.connected and self.state in (STANDBY, LEADING)

    def describe(self) -> str:
        if self.state == STOPPING:
            return "stopping"
        if not self.connected:
            return f"{self.state}: not connected to the API server"
        if self.state in (STARTING, ACQUIRED):
            return f"{self.state}: not ready yet"
        return self.state


class HealthServer:
    def __init__(self, health: Health, addr: str, port: int):
        self.health = health
        self.addr = addr
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.addr, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("health endpoints on http://%s:%d/healthz, /readyz", self.addr, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.health.ready():
            return web.Response(text=f"ok: {self.health.describe()}\n")
        return web.Response(status=503, text=f"not ready: {self.health.describe()}\n")
