"""Checkpoint stores. Every write carries the writer's epoch and is refused when
the store already holds a newer (epoch, tick): the store is the fencing token.

- FileStore: a folder (local runs, tests): write, fsync, rename.
- KubeStore: one ConfigMap per agent (the default in a cluster): survives the
  loss of the node pod, needs nothing beyond the API server; compare-and-swap
  on resourceVersion.
- An S3-compatible store implements the same three coroutines, with the epoch in
  object metadata and a conditional put (If-Match on the ETag) as the swap.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from igor import checkpoint as ckpt
from igor.checkpoint import Checkpoint

# ConfigMaps are limited to 1 MiB in total; keep room for metadata.
KUBE_MAX_CHECKPOINT_BYTES = 900 * 1024


class StoreError(Exception):
    pass


class StaleEpoch(StoreError):
    """A write from a writer that has been superseded."""


@dataclass(frozen=True)
class AgentKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def _order(cp: Checkpoint) -> tuple[int, int, int]:
    return (cp.epoch.major, cp.epoch.minor, cp.tick)


def check_fence(stored: Checkpoint | None, new: Checkpoint) -> None:
    if stored is not None and _order(stored) > _order(new):
        raise StaleEpoch(
            f"checkpoint for {new.agent_id} at epoch {new.epoch} tick {new.tick} refused: the "
            f"store holds epoch {stored.epoch} tick {stored.tick}"
        )


class CheckpointStore(ABC):
    @abstractmethod
    async def put(self, key: AgentKey, cp: Checkpoint, owner: dict[str, Any] | None = None) -> str:
        """Store cp as the agent's latest checkpoint; returns its location."""

    @abstractmethod
    async def get(self, key: AgentKey) -> Checkpoint | None: ...

    @abstractmethod
    async def delete(self, key: AgentKey) -> None: ...


class FileStore(CheckpointStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # A temp file left by a crash mid-write is never the checkpoint.
        for stale in self.root.glob("*/.*.tmp"):
            stale.unlink(missing_ok=True)

    def _path(self, key: AgentKey) -> Path:
        for part in (key.namespace, key.name):
            if not part or "/" in part or part in (".", ".."):
                raise StoreError(f"invalid agent key {key}")
        return self.root / key.namespace / f"{key.name}.ckpt"

    def _put_sync(self, key: AgentKey, cp: Checkpoint) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{key.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            check_fence(self._get_sync(key), cp)
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as f:
                f.write(ckpt.encode(cp))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return f"file://{path}"

    def _get_sync(self, key: AgentKey) -> Checkpoint | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return ckpt.decode(data)

    async def put(self, key: AgentKey, cp: Checkpoint, owner: dict[str, Any] | None = None) -> str:
        return await asyncio.to_thread(self._put_sync, key, cp)

    async def get(self, key: AgentKey) -> Checkpoint | None:
        return await asyncio.to_thread(self._get_sync, key)

    async def delete(self, key: AgentKey) -> None:
        self._path(key).unlink(missing_ok=True)


def configmap_name(agent: str) -> str:
    name = f"igor-ckpt-{agent}"
    if len(name) <= 253:
        return name
    return f"igor-ckpt-{agent[:200]}-{hashlib.sha256(agent.encode()).hexdigest()[:10]}"


class KubeStore(CheckpointStore):
    """ConfigMap per agent; `api` is a kubernetes_asyncio ApiClient."""

    def __init__(self, api: Any, field_manager: str = "igor-node"):
        self._core = client.CoreV1Api(api)
        self.field_manager = field_manager

    async def _read(self, key: AgentKey) -> Any | None:
        try:
            return await self._core.read_namespaced_config_map(
                configmap_name(key.name), key.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    @staticmethod
    def _decode(cm: Any) -> Checkpoint | None:
        data = (cm.binary_data or {}).get("checkpoint") if cm is not None else None
        return ckpt.decode(base64.b64decode(data)) if data else None

    def _body(self, key: AgentKey, cp: Checkpoint, owner: dict[str, Any] | None, rv: str | None):
        encoded = ckpt.encode(cp)
        if len(encoded) > KUBE_MAX_CHECKPOINT_BYTES:
            raise StoreError(
                f"checkpoint of {key} is {len(encoded)} bytes; the ConfigMap store holds at most "
                f"{KUBE_MAX_CHECKPOINT_BYTES}: configure an S3-compatible store for large states"
            )
        metadata: dict[str, Any] = {
            "name": configmap_name(key.name),
            "namespace": key.namespace,
            "labels": {"app.kubernetes.io/managed-by": "igor", "igor.dev/agent": key.name[:63]},
            "annotations": {
                "igor.dev/epoch": f"{cp.epoch.major}.{cp.epoch.minor}",
                "igor.dev/tick": str(cp.tick),
                "igor.dev/hash": "sha256:" + cp.hash.hex(),
            },
        }
        if owner:
            metadata["ownerReferences"] = [owner]
        if rv:
            metadata["resourceVersion"] = rv
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "binaryData": {"checkpoint": base64.b64encode(encoded).decode()},
        }

    async def put(self, key: AgentKey, cp: Checkpoint, owner: dict[str, Any] | None = None) -> str:
        for _ in range(10):
            current = await self._read(key)
            check_fence(self._decode(current), cp)
            try:
                if current is None:
                    await self._core.create_namespaced_config_map(
                        key.namespace,
                        self._body(key, cp, owner, None),
                        field_manager=self.field_manager,
                    )
                else:
                    await self._core.replace_namespaced_config_map(
                        configmap_name(key.name),
                        key.namespace,
                        self._body(key, cp, owner, current.metadata.resource_version),
                        field_manager=self.field_manager,
                    )
            except ApiException as exc:
                if exc.status == 409:  # someone wrote in between: re-read, re-check the fence
                    continue
                raise StoreError(
                    f"writing checkpoint of {key}: {exc.status} {exc.reason}"
                ) from None
            return f"configmap://{key.namespace}/{configmap_name(key.name)}"
        raise StoreError(f"writing checkpoint of {key}: too many concurrent writers")

    async def get(self, key: AgentKey) -> Checkpoint | None:
        return self._decode(await self._read(key))

    async def delete(self, key: AgentKey) -> None:
        try:
            await self._core.delete_namespaced_config_map(configmap_name(key.name), key.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
