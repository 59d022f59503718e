"""The node's own coordination.k8s.io Lease, and self-fencing.

The node may tick only while it is sure its Lease is valid. It measures that
with the monotonic clock from the moment it *sent* its last successful renewal,
and stops a quarter of the Lease duration early, so that it has stopped before
the operator can see the Lease expire and move its agents. The monotonic clock
keeps running while the process is stopped (SIGSTOP), so a node that wakes up
knows at once that it may have been superseded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .config import MERGE_PATCH, NodeConfig
from .metrics import NodeMetrics

log = logging.getLogger("igor.node.lease")


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseKeeper:
    def __init__(
        self,
        api: client.ApiClient,
        cfg: NodeConfig,
        metrics: NodeMetrics,
        on_renewed: Callable[[bool], Awaitable[None]],
    ):
        self.coord = client.CoordinationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.cfg = cfg
        self.metrics = metrics
        self.on_renewed = on_renewed  # called with was_fenced after each successful renewal
        self._valid_until = 0.0  # monotonic

    @property
    def valid(self) -> bool:
        return time.monotonic() < self._valid_until

    def _body(self) -> dict:
        now = _now().isoformat()
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.cfg.lease_name,
                "namespace": self.cfg.lease_namespace,
                "labels": {"app.kubernetes.io/managed-by": "igor", "igor.dev/node": self.cfg.name},
            },
            "spec": {
                "holderIdentity": self.cfg.name,
                "leaseDurationSeconds": self.cfg.lease_duration_s,
                "renewTime": now,
                "acquireTime": now,
            },
        }

    async def ensure_namespace(self) -> None:
        try:
            await self.core.create_namespace({"metadata": {"name": self.cfg.lease_namespace}})
        except ApiException as exc:
            if exc.status not in (409, 403):
                raise

    async def renew_once(self) -> bool:
        sent = time.monotonic()
        try:
            await self.coord.patch_namespaced_lease(
                self.cfg.lease_name,
                self.cfg.lease_namespace,
                {
                    "spec": {
                        "holderIdentity": self.cfg.name,
                        "renewTime": _now().isoformat(),
                        "leaseDurationSeconds": self.cfg.lease_duration_s,
                    }
                },
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("lease renewal failed: %s %s", exc.status, exc.reason)
                return False
            try:
                await self.coord.create_namespaced_lease(self.cfg.lease_namespace, self._body())
            except ApiException as exc2:
                log.warning("lease creation failed: %s %s", exc2.status, exc2.reason)
                return False
        except (TimeoutError, OSError) as exc:
            log.warning("lease renewal failed: %s", exc)
            return False
        was_fenced = not self.valid and self._valid_until > 0
        self._valid_until = sent + self.cfg.fence_after_s
        await self.on_renewed(was_fenced)
        return True

    async def run(self) -> None:
        while True:
            before = self.valid
            await self._renew_bounded()
            if before and not self.valid:
                self.metrics.fencing.labels(kind="self-fenced").inc()
                log.error("lease not renewed in time: stopped ticking every agent")
            await asyncio.sleep(self.cfg.renew_interval_s)

    async def _renew_bounded(self) -> bool:
        # A renewal that hangs must not hold the loop past the next renewal.
        try:
            return await asyncio.wait_for(self.renew_once(), timeout=self.cfg.renew_interval_s)
        except TimeoutError:
            log.warning("lease renewal timed out")
            return False

    async def release(self) -> None:
        """Graceful shutdown: give the Lease up so that recovery starts at once."""
        self._valid_until = 0.0
        try:
            await self.coord.delete_namespaced_lease(self.cfg.lease_name, self.cfg.lease_namespace)
        except (ApiException, OSError) as exc:
            log.warning("could not delete lease: %s", exc)
