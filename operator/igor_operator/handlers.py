"""kopf handlers: thin. Watches feed the cache and queue keys; webhooks call admission.py.

Reconciling happens in the work queue (agents.py, nodes.py, migrations.py), keyed by object, so
every decision is made from the latest state (level-triggered) however many events arrived.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from igor import api

from . import admission
from . import cache as cache_mod
from .context import Context, agent_key, migration_key, node_key
from .nodes import held_agents, requeue_unplaced
from .scheduler import NODE_LEASE_PREFIX

log = logging.getLogger(__name__)


def _raw(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event.get("object") or {})


class QuietRefusals(logging.Filter):
    """kopf logs every refused admission review as an error of the webhook; a refusal is the
    webhook working, and handlers.py logs it at INFO itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Webhook ") and "failed permanently" in message)


def build_registry(ctx: Context) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    config = ctx.config

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if config.kubeconfig is None:
            info = kopf.login_with_service_account(**kwargs)
            if info is not None:
                return info
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.event(api.GROUP, api.VERSION, api.AGENT_PLURAL, registry=registry)
    async def agent_event(event: dict[str, Any], **_: Any) -> None:
        obj = _raw(event)
        if event.get("type") == "DELETED":
            ctx.cache.delete(cache_mod.AGENT, obj)
        elif not ctx.cache.put(cache_mod.AGENT, obj):
            return
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        ctx.enqueue(agent_key(namespace, name))
        ref = (obj.get("status") or {}).get("migration") or {}
        if ref.get("name"):
            ctx.enqueue(migration_key(namespace, ref["name"]))

    @kopf.on.event(api.GROUP, api.VERSION, api.NODE_PLURAL, registry=registry)
    async def node_event(event: dict[str, Any], **_: Any) -> None:
        obj = _raw(event)
        if event.get("type") == "DELETED":
            ctx.cache.delete(cache_mod.NODE, obj)
        elif not ctx.cache.put(cache_mod.NODE, obj):
            return
        name = (obj.get("metadata") or {}).get("name", "")
        ctx.enqueue(node_key(name))
        # Placement may have become possible (or impossible) for waiting agents and migrations.
        requeue_unplaced(ctx)
        for mr in ctx.cache.migrations():
            phase = (mr.get("status") or {}).get("phase")
            if phase in ("Pending", "Scheduling", "Transferring"):
                namespace, mr_name = cache_mod.key_of(mr)
                ctx.enqueue(migration_key(namespace, mr_name))

    @kopf.on.event(api.GROUP, api.VERSION, api.MIGRATION_PLURAL, registry=registry)
    async def migration_event(event: dict[str, Any], **_: Any) -> None:
        obj = _raw(event)
        if event.get("type") == "DELETED":
            ctx.cache.delete(cache_mod.MIGRATION, obj)
            ctx.memory.pop((obj.get("metadata") or {}).get("uid", ""), None)
        elif not ctx.cache.put(cache_mod.MIGRATION, obj):
            return
        namespace, name = cache_mod.key_of(obj)
        ctx.enqueue(migration_key(namespace, name))
        phase = (obj.get("status") or {}).get("phase")
        if phase and api.MigrationPhase(phase).terminal:
            # The slot it held may unblock queued migrations.
            for mr in ctx.cache.migrations():
                if (mr.get("status") or {}).get("phase") == "Pending":
                    ctx.enqueue(migration_key(*cache_mod.key_of(mr)))
            agent = (obj.get("spec") or {}).get("agent")
            if agent:
                ctx.enqueue(agent_key(namespace, agent))

    def is_node_lease(namespace: str | None, name: str | None, **_: Any) -> bool:
        return namespace == config.namespace and bool(name and name.startswith(NODE_LEASE_PREFIX))

    @kopf.on.event("coordination.k8s.io", "v1", "leases", when=is_node_lease, registry=registry)
    async def lease_event(event: dict[str, Any], **_: Any) -> None:
        obj = _raw(event)
        name = (obj.get("metadata") or {}).get("name", "")
        node = name[len(NODE_LEASE_PREFIX) :]
        if event.get("type") == "DELETED":
            ctx.cache.delete(cache_mod.LEASE, obj)
            # A node that deleted its Lease is gone: recover its agents now.
            ctx.enqueue(node_key(node))
            for agent in held_agents(ctx.cache.agents(), node):
                ctx.enqueue(agent_key(*cache_mod.key_of(agent)))
            return
        ctx.cache.put(cache_mod.LEASE, obj)
        # Renewals are routine; the liveness loop notices validity changes.

    if config.webhook is not None:

        @kopf.on.validate(
            api.GROUP,
            api.VERSION,
            api.AGENT_PLURAL,
            id="igoragents.validate",
            operations=["CREATE", "UPDATE"],
            side_effects=False,
            ignore_failures=True,
            registry=registry,
        )
        def validate_agent(spec: Any, name: str | None, namespace: str | None, **_: Any) -> None:
            problems = admission.agent_problems(dict(spec or {}))
            if problems:
                log.info("refused IgorAgent %s/%s: %s", namespace, name, "; ".join(problems))
                raise kopf.AdmissionError("; ".join(problems), code=422)

        @kopf.on.validate(
            api.GROUP,
            api.VERSION,
            api.MIGRATION_PLURAL,
            id="migrationrequests.validate",
            operations=["CREATE"],
            side_effects=False,
            ignore_failures=True,
            registry=registry,
        )
        async def validate_migration(
            spec: Any, name: str | None, namespace: str | None, **_: Any
        ) -> None:
            spec = dict(spec or {})
            namespace = namespace or ""
            agent = ctx.cache.get(cache_mod.AGENT, namespace, spec.get("agent", ""))
            if agent is None:
                try:
                    agent = await ctx.kube.get("agent", namespace, spec.get("agent", ""))
                except Exception:
                    agent = None
            nodes = {cache_mod.key_of(n)[1]: n for n in ctx.cache.nodes()}
            problems = admission.migration_problems(spec, namespace, agent, nodes)
            if problems:
                log.info("refused MigrationRequest %s/%s: %s", namespace, name, "; ".join(problems))
                raise kopf.AdmissionError("; ".join(problems), code=422)

    return registry
