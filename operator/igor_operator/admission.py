"""Validating admission for what CEL in the CRDs cannot express.

CEL holds the invariants of one object (immutable digest and spec, ranges, enums). These need
igor's manifest parser or other objects: an IgorAgent's manifest must be one igor can run, and a
MigrationRequest must name an agent that exists and may migrate, and at least one target (the
target node or a candidate) that offers the agent's capabilities within its maximum price.
Messages name the field. The operator enforces the same rules again when it reconciles, so a
request admitted while the webhook was down still fails cleanly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import manifests, migration, scheduler


def agent_problems(spec: Mapping[str, Any]) -> list[str]:
    problems = []
    module = spec.get("module") or {}
    if not module.get("digest"):
        problems.append("spec.module.digest: required (sha256:<64 hex digits> of the module)")
    invalid = manifests.problem(spec.get("manifest"))
    if invalid is not None:
        problems.append(str(invalid))
    return problems


def target_problem(
    agent_spec: Mapping[str, Any], node: Mapping[str, Any] | None, name: str
) -> str | None:
    """Why ``node`` can never take the agent (missing capability, over price), or None.

    Readiness, capacity and cordons change over time; admission leaves them to the operator.
    """
    if node is None:
        return f"IgorNode {name} not found"
    req = scheduler.Requirements.for_agent(agent_spec)
    # Judge only what the node is, not its current state.
    info = replace(
        scheduler.NodeInfo.from_objects(node, None, datetime.now(UTC)), ready=True, lease_valid=True
    )
    missing = scheduler.missing_capabilities(req, info)
    if missing:
        needed = ", ".join(sorted(req.capabilities))
        return (
            f"IgorNode {name} lacks capabilit{'y' if len(missing) == 1 else 'ies'} "
            f"{', '.join(missing)} (the agent needs {needed}; the node offers "
            f"{', '.join(sorted(info.capabilities)) or 'none'})"
        )
    if req.max_price is not None and info.price > req.max_price:
        return (
            f"IgorNode {name} costs {info.price}, over the agent's spec.placement.maxPrice "
            f"{req.max_price}"
        )
    return None


def migration_problems(
    spec: Mapping[str, Any],
    namespace: str,
    agent: Mapping[str, Any] | None,
    nodes: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    name = spec.get("agent")
    if agent is None:
        return [f"spec.agent: IgorAgent {name} not found in namespace {namespace}"]
    agent_spec = agent.get("spec") or {}
    policy = (agent_spec.get("manifest") or {}).get("migrationPolicy") or {}
    if policy.get("enabled") is False:
        return [
            f"spec.agent: IgorAgent {name} forbids migration "
            "(its spec.manifest.migrationPolicy.enabled is false)"
        ]
    listed = migration.requested_targets(spec)
    if not listed:
        return []
    holder = ((agent.get("status") or {}).get("lease") or {}).get("holder")
    problems = []
    for target in listed:
        if target == holder:
            problem = f"IgorNode {target} already runs the agent"
        else:
            problem = target_problem(agent_spec, nodes.get(target), target)
        if problem is None:
            return []  # one usable target is enough: the others are fallbacks
        field = "spec.targetNode" if target == spec.get("targetNode") else "spec.candidates"
        problems.append(f"{field}: {problem}")
    return problems
