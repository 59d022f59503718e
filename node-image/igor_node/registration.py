"""The node registers itself as an IgorNode, as a kubelet registers its Node."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from igor import api
from igor.host import Engine

from .config import MERGE_PATCH, NodeConfig

log = logging.getLogger("igor.node.registration")


def node_spec(cfg: NodeConfig) -> dict[str, Any]:
    # spec.unschedulable is the user's (cordon) and is never written here.
    return {
        "capabilities": [{"name": n, "version": v} for n, v in sorted(cfg.capabilities.items())],
        "price": cfg.price,
        "capacity": {"agents": cfg.capacity_agents, "memoryBytes": cfg.capacity_memory},
    }


def node_status(
    cfg: NodeConfig,
    engine: Engine,
    address: str,
    running: int,
    ready: bool,
    previous_conditions: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    name, version, settings = engine.profile
    ready_condition = api.condition(
        api.NodeConditionType.READY,
        api.ConditionStatus.TRUE if ready else api.ConditionStatus.FALSE,
        "LeaseRenewed" if ready else "LeaseNotRenewed",
        "node is renewing its lease and running agents"
        if ready
        else "node could not renew its lease in time and stopped ticking",
        None,
        now,
    )
    return {
        "address": address,
        "heartbeatTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "agentsRunning": running,
        "allocatable": {
            "agents": max(0, cfg.capacity_agents - running),
            "memoryBytes": cfg.capacity_memory,
        },
        "determinismProfile": {"engine": name, "version": version, "settings": settings},
        "leaseName": cfg.lease_name,
        "leaseNamespace": cfg.lease_namespace,
        "conditions": api.set_condition(previous_conditions or [], ready_condition),
    }


class Registration:
    def __init__(self, api_client: client.ApiClient, cfg: NodeConfig, engine: Engine):
        self.custom = client.CustomObjectsApi(api_client)
        self.cfg = cfg
        self.engine = engine
        self.conditions: list[dict[str, Any]] = []

    async def register(self) -> None:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.Kind.IGOR_NODE,
            "metadata": {"name": self.cfg.name, "labels": self.cfg.labels},
            "spec": node_spec(self.cfg),
        }
        try:
            await self.custom.create_cluster_custom_object(
                api.GROUP, api.VERSION, api.IGOR_NODE.plural, body
            )
            log.info("registered IgorNode %s", self.cfg.name)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await self.custom.patch_cluster_custom_object(
                api.GROUP,
                api.VERSION,
                api.IGOR_NODE.plural,
                self.cfg.name,
                {"metadata": {"labels": self.cfg.labels}, "spec": node_spec(self.cfg)},
                _content_type=MERGE_PATCH,
            )
            current = await self.custom.get_cluster_custom_object(
                api.GROUP, api.VERSION, api.IGOR_NODE.plural, self.cfg.name
            )
            self.conditions = (current.get("status") or {}).get("conditions") or []
            log.info("updated IgorNode %s", self.cfg.name)

    async def heartbeat(self, address: str, running: int, ready: bool) -> None:
        status = node_status(self.cfg, self.engine, address, running, ready, self.conditions)
        self.conditions = status["conditions"]
        await self.custom.patch_cluster_custom_object_status(
            api.GROUP,
            api.VERSION,
            api.IGOR_NODE.plural,
            self.cfg.name,
            {"status": status},
            _content_type=MERGE_PATCH,
        )
