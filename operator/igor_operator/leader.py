"""Leader election with a coordination.k8s.io Lease, as client-go's leaderelection does.

Only the leader reconciles. Others wait until the Lease expires (renewTime + duration < now) and
then take it with an update at the Lease's resourceVersion, so two candidates can never both
win. A leader that cannot renew within the renew deadline stops reconciling (the process exits
and is restarted), before another candidate can take over. Agent authority never depends on the
operator being unique (every authority write is resourceVersion-guarded), so a short overlap
costs conflicts, not safety.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from . import metrics
from .scheduler import parse_time

log = logging.getLogger(__name__)


def micro_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Decision:
    action: str  # "create", "acquire", "renew" or "wait"
    spec: dict[str, Any] | None = None
    wait: float = 0.0


def decide(
    spec: dict[str, Any] | None, me: str, now: datetime, duration: float, exists: bool = True
) -> Decision:
    """What a candidate does about the Lease ``spec`` at ``now``."""
    seconds = max(1, round(duration))
    fresh = {
        "holderIdentity": me,
        "leaseDurationSeconds": seconds,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": 0,
    }
    if not exists:
        return Decision("create", fresh)
    spec = spec or {}
    holder = spec.get("holderIdentity") or ""
    transitions = int(spec.get("leaseTransitions") or 0)
    if holder == me:
        return Decision(
            "renew", {**spec, "renewTime": micro_time(now), "leaseDurationSeconds": seconds}
        )
    renew = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    held_for = int(spec.get("leaseDurationSeconds") or seconds)
    if holder and renew is not None and now <= renew + timedelta(seconds=held_for):
        remaining = (renew + timedelta(seconds=held_for) - now).total_seconds()
        return Decision("wait", wait=max(0.0, remaining))
    return Decision("acquire", {**fresh, "leaseTransitions": transitions + (1 if holder else 0)})


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        retry_period: float = 2.0,
    ):
        self._coord = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.retry_period = retry_period
        # A leader that has not renewed for this long gives up before anyone else may take over.
        self.renew_deadline = duration * 2 / 3
        self._last_renew: datetime | None = None
        # Whether the last leader-election call reached the API server (for /readyz).
        self.connected = False
        # Called after each attempt that found another leader's Lease valid (for /readyz).
        self.on_standby: Callable[[], None] | None = None

    async def _try(self) -> bool | None:
        """True: leader now; False: someone else holds a valid Lease; None: lost a race."""
        now = datetime.now(UTC)
        try:
            lease = await self._coord.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = None
        if lease is None:
            decision = decide(None, self.identity, now, self.duration, exists=False)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": decision.spec,
            }
            try:
                await self._coord.create_namespaced_lease(self.namespace, body)
            except ApiException as exc:
                if exc.status == 409:
                    return None
                raise
            self._last_renew = now
            return True
        raw = self._coord.api_client.sanitize_for_serialization(lease)
        decision = decide(raw.get("spec"), self.identity, now, self.duration)
        if decision.action == "wait":
            return False
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": decision.spec,
        }
        try:
            await self._coord.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        if decision.action == "acquire":
            log.info("became leader (Lease %s/%s)", self.namespace, self.name)
        self._last_renew = now
        return True

    async def acquire(self) -> None:
        """Return once this instance is the leader."""
        announced = False
        while True:
            try:
                leader = await self._try()
                self.connected = True
                if leader:
                    metrics.LEADER.set(1)
                    return
                if self.on_standby is not None:
                    self.on_standby()
            except (ApiException, OSError) as exc:
                self.connected = False
                log.warning("leader election: %s", exc)
            if not announced:
                log.info("waiting to become leader (Lease %s/%s)", self.namespace, self.name)
                announced = True
            await asyncio.sleep(self.retry_period)

    async def hold(self, on_lost: Callable[[], None]) -> None:
        """Renew until cancelled; call on_lost and return when renewing fails for too long."""
        while True:
            await asyncio.sleep(self.retry_period)
            ok: bool | None = None
            try:
                ok = await self._try()
                self.connected = True
            except Exception as exc:
                self.connected = False
                log.warning("renewing the leader Lease failed: %s", exc)
            if ok:
                continue
            since = datetime.now(UTC) - (self._last_renew or datetime.now(UTC))
            if ok is False or since.total_seconds() >= self.renew_deadline:
                log.error("lost the leader Lease %s/%s", self.namespace, self.name)
                metrics.LEADER.set(0)
                on_lost()
                return

    async def release(self) -> None:
        """Hand the Lease back so that another candidate need not wait for it to expire."""
        with contextlib.suppress(Exception):
            lease = await self._coord.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            spec = self._coord.api_client.sanitize_for_serialization(lease.spec)
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": lease.metadata.resource_version,
                },
                "spec": spec,
            }
            await self._coord.replace_namespaced_lease(self.name, self.namespace, body)
        metrics.LEADER.set(0)
