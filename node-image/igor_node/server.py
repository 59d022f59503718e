"""The node's HTTP API (docs/protocol.md): probes, metrics, inspection, freeze, bundles.

Everything but the probes needs a bearer token: the shared token from the node
API Secret, or (with --auth tokenreview) a service-account token that the API
server confirms and that belongs to an allowed user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from igor import checkpoint as ckpt
from igor.checkpoint import Epoch
from igor.store import AgentKey

from .config import NodeConfig
from .metrics import NodeMetrics
from .supervisor import Supervisor

log = logging.getLogger("igor.node.api")
PUBLIC = {"/healthz", "/readyz"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator:
    def __init__(self, cfg: NodeConfig, api_client: client.ApiClient):
        self.cfg = cfg
        self.auth = client.AuthenticationV1Api(api_client)
        self._token = Path(cfg.token_file).read_text().strip() if cfg.token_file else None

    async def allowed(self, token: str) -> bool:
        if self._token is not None and hmac.compare_digest(token, self._token):
            return True
        if self.cfg.auth != "tokenreview":
            return False
        review = await self.auth.create_token_review({"spec": {"token": token}})
        status = review.status
        if not status or not status.authenticated:
            return False
        return not self.cfg.allowed_users or status.user.username in self.cfg.allowed_users


def make_app(
    cfg: NodeConfig,
    supervisor: Supervisor,
    metrics: NodeMetrics,
    authenticator: Authenticator,
    ready: Callable[[], bool],
) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not await authenticator.allowed(header[7:].strip()):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    def held_or_404(request: web.Request):
        key = AgentKey(request.match_info["ns"], request.match_info["name"])
        held = supervisor.agents.get(key)
        if held is None:
            raise web.HTTPNotFound(
                text=f'{{"error": "{key} is not held by node {cfg.name}"}}',
                content_type="application/json",
            )
        return key, held

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok")
        return web.Response(text="not ready: lease not valid or agents not synced", status=503)

    async def metrics_handler(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"node": cfg.name, "agents": len(supervisor.agents), **metrics.stats()}
        )

    async def list_agents(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node": cfg.name,
                "agents": [supervisor.describe(h) for h in supervisor.agents.values()],
            }
        )

    async def get_agent(request: web.Request) -> web.Response:
        _, held = held_or_404(request)
        return web.json_response(supervisor.describe(held))

    async def freeze(request: web.Request) -> web.Response:
        key = AgentKey(request.match_info["ns"], request.match_info["name"])
        try:
            body = await request.json()
            epoch = Epoch(int(body["epoch"]["major"]), int(body["epoch"]["minor"]))
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": 'body must be {"epoch": {"major": M, "minor": m}}'}, status=400
            )
        try:
            cp = await supervisor.freeze(key, epoch)
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except PermissionError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except (RuntimeError, TimeoutError) as exc:
            return web.json_response({"error": f"final checkpoint failed: {exc}"}, status=503)
        held = supervisor.agents.get(key)
        return web.json_response(
            {
                "tick": cp.tick,
                "hash": "sha256:" + cp.hash.hex(),
                "stateHash": "sha256:" + hashlib.sha256(cp.state).hexdigest(),
                "epoch": {"major": cp.epoch.major, "minor": cp.epoch.minor},
                "location": held.committed_location if held else "",
            }
        )

    async def bundle(request: web.Request) -> web.Response:
        _, held = held_or_404(request)
        from_tick = request.query.get("fromTick")
        try:
            made = supervisor.bundle(held, int(from_tick) if from_tick else None)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.Response(body=made.encode(), content_type="application/cbor")

    async def checkpoint(request: web.Request) -> web.Response:
        _, held = held_or_404(request)
        if held.committed is None:
            return web.json_response({"error": "no checkpoint committed yet"}, status=404)
        return web.Response(body=ckpt.encode(held.committed), content_type="application/cbor")

    app = web.Application(middlewares=[auth])
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_handler),
            web.get("/v1/stats", stats),
            web.get("/v1/agents", list_agents),
            web.get("/v1/agents/{ns}/{name}", get_agent),
            web.post("/v1/agents/{ns}/{name}/freeze", freeze),
            web.get("/v1/agents/{ns}/{name}/bundle", bundle),
            web.get("/v1/agents/{ns}/{name}/checkpoint", checkpoint),
        ]
    )
    return app
