"""The operator's Kubernetes API calls (kubernetes_asyncio), returning plain dicts.

Status writes that move authority are JSON merge patches that carry metadata.resourceVersion:
the API server applies them only to that exact version and answers 409 Conflict otherwise
(docs/protocol.md), so two writers can never both win.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from igor import api

from .settings import FIELD_MANAGER

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

PLURALS = {
    "agent": api.AGENT_PLURAL,
    "node": api.NODE_PLURAL,
    "migration": api.MIGRATION_PLURAL,
}


class Conflict(Exception):
    """The object changed since it was read (409): re-read and decide again."""


class NotFound(Exception):
    pass


async def new_api_client(kubeconfig: str | Path | None) -> client.ApiClient:
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    return await config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)


def _raise(exc: ApiException) -> None:
    if exc.status == 409:
        raise Conflict(str(exc.reason)) from None
    if exc.status == 404:
        raise NotFound(str(exc.reason)) from None
    raise exc


class Kube:
    def __init__(self, api_client: client.ApiClient):
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    def to_dict(self, model: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(model)

    # ------------------------------------------------------------------ igor objects

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            if kind == "node":
                return await self.custom.get_cluster_custom_object(
                    api.GROUP, api.VERSION, PLURALS[kind], name
                )
            return await self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, PLURALS[kind], name
            )
        except ApiException as exc:
            _raise(exc)
            raise

    async def list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        if kind == "node":
            result = await self.custom.list_cluster_custom_object(
                api.GROUP, api.VERSION, PLURALS[kind]
            )
        else:
            result = await self.custom.list_custom_object_for_all_namespaces(
                api.GROUP, api.VERSION, PLURALS[kind]
            )
        kind_name = {v: k for k, v in api.PLURALS.items()}[PLURALS[kind]]
        items = result.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api.API_VERSION)
            item.setdefault("kind", kind_name.value)
        return items, (result.get("metadata") or {}).get("resourceVersion", "")

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None,
    ) -> dict[str, Any]:
        """Merge ``status`` into the object's status, only at ``resource_version`` if given."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            if kind == "node":
                return await self.custom.patch_cluster_custom_object_status(
                    api.GROUP,
                    api.VERSION,
                    PLURALS[kind],
                    name,
                    body,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE,
                )
            return await self.custom.patch_namespaced_custom_object_status(
                api.GROUP,
                api.VERSION,
                namespace,
                PLURALS[kind],
                name,
                body,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE,
            )
        except ApiException as exc:
            _raise(exc)
            raise

    async def patch_metadata(
        self, kind: str, namespace: str, name: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self.custom.patch_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                namespace,
                PLURALS[kind],
                name,
                {"metadata": metadata},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE,
            )
        except ApiException as exc:
            _raise(exc)
            raise

    async def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.custom.create_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, PLURALS[kind], body, field_manager=FIELD_MANAGER
            )
        except ApiException as exc:
            _raise(exc)
            raise

    # ------------------------------------------------------------------ leases, config maps

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.to_dict(await self.coordination.read_namespaced_lease(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_leases(self, namespace: str) -> list[dict[str, Any]]:
        result = await self.coordination.list_namespaced_lease(namespace)
        return [self.to_dict(item) for item in result.items]

    async def ensure_namespace(self, name: str) -> None:
        try:
            await self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                await self.core.create_namespace({"metadata": {"name": name}})
            except ApiException as exc2:
                if exc2.status != 409:
                    raise

    async def config_map_bytes(self, namespace: str, name: str, key: str) -> bytes:
        try:
            cm = await self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            _raise(exc)
            raise
        binary = (cm.binary_data or {}).get(key)
        if binary is not None:
            return base64.b64decode(binary)
        text = (cm.data or {}).get(key)
        if text is None:
            raise NotFound(f"ConfigMap {namespace}/{name} has no key {key}")
        # Modules in `data` are base64 text (docs/resources.md).
        return base64.b64decode(text)

    async def put_config_map(
        self,
        namespace: str,
        name: str,
        binary: dict[str, bytes],
        owner: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels or {},
                "annotations": annotations or {},
                "ownerReferences": [owner] if owner else [],
            },
            "binaryData": {k: base64.b64encode(v).decode() for k, v in binary.items()},
        }
        try:
            await self.core.create_namespaced_config_map(
                namespace, body, field_manager=FIELD_MANAGER
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            await self.core.replace_namespaced_config_map(
                name, namespace, body, field_manager=FIELD_MANAGER
            )


def owner_reference(obj: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion", api.API_VERSION),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": controller,
        "blockOwnerDeletion": False,
    }
