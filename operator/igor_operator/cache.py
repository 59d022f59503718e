"""The operator's view of the cluster: the last seen version of every object it works on.

Fed by kopf's watches (handlers.py), by an initial list at start-up, and by the answers to the
operator's own writes, so a decision made right after a write already sees it (as a
kube-scheduler's assume cache does). Authority changes never trust this view alone: they are
written with the object's resourceVersion, and a stale view only costs a conflict and a retry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects

AGENT = "agent"
NODE = "node"
MIGRATION = "migration"
LEASE = "lease"
KINDS = (AGENT, NODE, MIGRATION, LEASE)


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _rv(obj: Mapping[str, Any] | None) -> int | None:
    value = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Cache:
    objects: dict[str, dict[Key, dict[str, Any]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    # Deleted objects' last resourceVersion, so a late watch event cannot resurrect them.
    tombstones: dict[str, dict[Key, int]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    def put(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Store obj unless a newer version is already known; True when stored."""
        key = key_of(obj)
        store = self.objects[kind]
        new_rv = _rv(obj)
        old_rv = _rv(store.get(key))
        dead_rv = self.tombstones[kind].get(key)
        if new_rv is not None:
            if old_rv is not None and new_rv < old_rv:
                return False
            if dead_rv is not None and new_rv <= dead_rv:
                return False
        store[key] = dict(obj)
        return True

    def delete(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        self.objects[kind].pop(key, None)
        rv = _rv(obj)
        if rv is not None:
            self.tombstones[kind][key] = rv

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects[kind].get((namespace, name))

    def all(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter(list(self.objects[kind].values()))

    def agents(self) -> list[dict[str, Any]]:
        return list(self.objects[AGENT].values())

    def migrations(self) -> list[dict[str, Any]]:
        return list(self.objects[MIGRATION].values())

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.objects[NODE].values())

    def lease(self, name: str) -> dict[str, Any] | None:
        for (_, lease_name), obj in self.objects[LEASE].items():
            if lease_name == name:
                return obj
        return None
