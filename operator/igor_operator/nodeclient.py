"""Client for the node API (docs/protocol.md): freeze a migrating agent, fetch its bundle.

Every failure becomes a retry.StepError classified for the migration state machine: a call that
never reached the node is retriable; one that may have reached it (timeout, connection dropped
mid-answer) is ambiguous, and only ever repeated against the same node at the same epoch, where
the endpoints are idempotent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from igor.checkpoint import Epoch

from .retry import ErrorClass, StepError, classify_http, classify_transport


class NodeClient:
    def __init__(self, token: str | None = None, timeout: float = 15.0):
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_token_file(cls, path: str | Path | None, timeout: float = 15.0) -> NodeClient:
        token = Path(path).read_text().strip() if path else None
        return cls(token, timeout)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _agent_url(address: str, namespace: str, name: str, what: str = "") -> str:
        base = address.rstrip("/")
        url = f"{base}/v1/agents/{quote(namespace, safe='')}/{quote(name, safe='')}"
        return f"{url}/{what}" if what else url

    async def _request(
        self, method: str, url: str, *, json_body: Any = None, what: str
    ) -> tuple[int, bytes]:
        session = await self._sess()
        try:
            async with session.request(
                method, url, json=json_body, headers=self._headers()
            ) as resp:
                body = await resp.read()
                if resp.status >= 300:
                    text = body.decode(errors="replace")[:500]
                    raise StepError(
                        "NodeRefused" if resp.status < 500 else "NodeError",
                        f"{what}: {url} answered {resp.status}: {text}",
                        classify_http(resp.status),
                        resp.status,
                    )
                return resp.status, body
        except aiohttp.ClientConnectorError as exc:
            raise StepError(
                "NodeUnreachable",
                f"{what}: cannot connect to {url}: {exc}",
                classify_transport(False),
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise StepError(
                "NodeNoAnswer",
                f"{what}: no answer from {url}: {type(exc).__name__} {exc}",
                classify_transport(True),
            ) from None

    async def freeze(self, address: str, namespace: str, name: str, epoch: Epoch) -> dict[str, Any]:
        """Ask the source to stop ticking and write its final checkpoint at ``epoch``."""
        url = self._agent_url(address, namespace, name, "freeze")
        _, body = await self._request(
            "POST",
            url,
            json_body={"epoch": {"major": epoch.major, "minor": epoch.minor}},
            what="freeze",
        )
        try:
            answer = json.loads(body)
            int(answer["tick"])
            str(answer["hash"])
        except (ValueError, KeyError, TypeError):
            raise StepError(
                "NodeProtocol",
                f"freeze: {url} answered {body[:200]!r}, expected tick, hash and location",
                ErrorClass.FATAL,
            ) from None
        return answer

    async def agent(self, address: str, namespace: str, name: str) -> dict[str, Any]:
        """What the node says about one agent it holds (tick, epoch, window)."""
        _, body = await self._request(
            "GET", self._agent_url(address, namespace, name), what="agent"
        )
        try:
            return json.loads(body)
        except ValueError:
            raise StepError(
                "NodeProtocol", f"agent: {address} answered {body[:200]!r}", ErrorClass.FATAL
            ) from None

    async def bundle(self, address: str, namespace: str, name: str) -> bytes:
        _, body = await self._request(
            "GET", self._agent_url(address, namespace, name, "bundle"), what="bundle"
        )
        return body

    async def checkpoint(self, address: str, namespace: str, name: str) -> bytes:
        _, body = await self._request(
            "GET", self._agent_url(address, namespace, name, "checkpoint"), what="checkpoint"
        )
        return body

    async def agents(self, address: str) -> Any:
        _, body = await self._request("GET", f"{address.rstrip('/')}/v1/agents", what="list")
        return json.loads(body)
