"""Kubernetes Events: every state change the operator makes is recorded on the object."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

log = logging.getLogger(__name__)

COMPONENT = "igor-operator"
NORMAL = "Normal"
WARNING = "Warning"
# An Event about a cluster-scoped object (an IgorNode) needs a namespace of its own.
CLUSTER_EVENTS_NAMESPACE = "default"


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str

    @classmethod
    def normal(cls, reason: str, message: str) -> Event:
        return cls(NORMAL, reason, message)

    @classmethod
    def warning(cls, reason: str, message: str) -> Event:
        return cls(WARNING, reason, message)


class EventRecorder:
    """Posts core/v1 Events in the background, so that reporting a step never delays the next
    one. Failures are logged, never raised: an event is not worth a retry."""

    def __init__(self, api: client.ApiClient, instance: str = "", max_pending: int = 1000):
        self._core = client.CoreV1Api(api)
        self._instance = instance
        self._pending: set[asyncio.Task[None]] = set()
        self._max_pending = max_pending

    async def record(self, obj: dict[str, Any], event: Event) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or CLUSTER_EVENTS_NAMESPACE
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'igor')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        log_fn = log.warning if event.type == WARNING else log.info
        log_fn(
            "%s %s/%s: %s: %s",
            obj.get("kind"),
            meta.get("namespace") or "",
            meta.get("name"),
            event.reason,
            event.message,
        )
        if len(self._pending) >= self._max_pending:
            log.debug("dropping event %s on %s: too many pending", event.reason, meta.get("name"))
            return
        task = asyncio.create_task(self._post(namespace, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            await self._core.create_namespaced_event(namespace, body)
        except Exception as exc:
            log.debug("could not post event %s: %s", body.get("reason"), exc)

    async def flush(self) -> None:
        """Wait (a little) for the events still being posted, at shutdown."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=5.0)

    async def record_all(self, obj: dict[str, Any], events: list[Event]) -> None:
        for event in events:
            await self.record(obj, event)
