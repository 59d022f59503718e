"""Placement: which IgorNodes can run an agent, and in which order to try them.

Plain functions over plain data, so the scheduling rules are unit-tested without a cluster.
A node fits when it is Ready, its Lease is valid, it is not cordoned, it matches the agent's node
selector, offers every capability at the needed version, is within the agent's maximum price
and has room. Fitting nodes are ranked to spread agents evenly: fewest agents first, then lowest
price, then name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from igor import api
from igor.lease import node_lease_expired

from . import manifests

NODE_LEASE_PREFIX = "igor-node-"


def node_lease_name(node: str) -> str:
    return f"{NODE_LEASE_PREFIX}{node}"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_valid(lease: Mapping[str, Any] | None, now: datetime) -> bool:
    """A node's coordination.k8s.io Lease is valid while renewTime + duration >= now."""
    if not lease:
        return False
    spec = lease.get("spec") or {}
    renew = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    return not node_lease_expired(renew, spec.get("leaseDurationSeconds"), now)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    capabilities: Mapping[str, int] = field(default_factory=dict)
    price: int = 0
    capacity: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = False
    lease_valid: bool = False
    address: str | None = None
    # Agents bound to the node (lease holder) plus migrations on their way to it.
    agents: int = 0
    profile: tuple[str, str] | None = None

    @property
    def schedulable(self) -> bool:
        return self.ready and self.lease_valid and not self.unschedulable

    @property
    def alive(self) -> bool:
        return self.lease_valid

    @classmethod
    def from_objects(
        cls,
        node: Mapping[str, Any],
        lease: Mapping[str, Any] | None,
        now: datetime,
        agents: int = 0,
    ) -> NodeInfo:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        caps = {
            c["name"]: int(c.get("version", 1))
            for c in spec.get("capabilities") or ()
            if isinstance(c, Mapping) and c.get("name")
        }
        profile = status.get("determinismProfile") or {}
        return cls(
            name=meta.get("name", ""),
            capabilities=caps,
            price=int(spec.get("price") or 0),
            capacity=int((spec.get("capacity") or {}).get("agents") or 0),
            labels=dict(meta.get("labels") or {}),
            unschedulable=bool(spec.get("unschedulable")),
            ready=api.is_condition_true(status.get("conditions"), api.NodeConditionType.READY),
            lease_valid=lease_valid(lease, now),
            address=spec.get("address") or status.get("address"),
            agents=agents,
            profile=(profile.get("engine", ""), profile.get("version", "")) if profile else None,
        )


@dataclass(frozen=True)
class Requirements:
    """What an agent needs from a node."""

    capabilities: Mapping[str, int] = field(default_factory=dict)
    max_price: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # Migrations stay between nodes with the same engine and version (replay determinism).
    profile: tuple[str, str] | None = None

    @classmethod
    def for_agent(cls, spec: Mapping[str, Any]) -> Requirements:
        placement = spec.get("placement") or {}
        max_price = placement.get("maxPrice")
        return cls(
            capabilities=manifests.required_capabilities(spec),
            max_price=int(max_price) if max_price is not None else None,
            node_selector=dict(placement.get("nodeSelector") or {}),
        )

    def with_profile(self, profile: tuple[str, str] | None) -> Requirements:
        return Requirements(self.capabilities, self.max_price, self.node_selector, profile)


# Why a node does not fit, worded to follow a count: "2 lack capability http".
NOT_READY = "not ready"
LEASE_EXPIRED = "lease expired"
CORDONED = "unschedulable"
SELECTOR = "do not match the node selector"
OVER_PRICE = "over max price"
FULL = "full"
EXCLUDED = "excluded"
PROFILE = "have a different determinism profile"

# Reasons a retry can cure (the node may become ready or free); the others are properties of the
# node the agent cannot change.
TRANSIENT = frozenset({NOT_READY, LEASE_EXPIRED, FULL, CORDONED})


def missing_capabilities(req: Requirements, node: NodeInfo) -> list[str]:
    missing = []
    for name, version in sorted(req.capabilities.items()):
        offered = node.capabilities.get(name)
        if offered is None:
            missing.append(name)
        elif offered < version:
            missing.append(f"{name} v{version}")
    return missing


def unfit_reason(req: Requirements, node: NodeInfo, *, check_capacity: bool = True) -> str | None:
    """The first reason the node cannot take the agent, or None when it fits."""
    if not node.lease_valid:
        return LEASE_EXPIRED
    if not node.ready:
        return NOT_READY
    if node.unschedulable:
        return CORDONED
    if any(node.labels.get(k) != v for k, v in req.node_selector.items()):
        return SELECTOR
    missing = missing_capabilities(req, node)
    if missing:
        word = "capability" if len(missing) == 1 else "capabilities"
        return f"lack {word} {', '.join(missing)}"
    if req.max_price is not None and node.price > req.max_price:
        return OVER_PRICE
    if req.profile and node.profile and req.profile != node.profile:
        return PROFILE
    if check_capacity and node.agents >= node.capacity:
        return FULL
    return None


def permanent(reason: str | None) -> bool:
    """A reason no retry can cure: the node lacks something the agent needs."""
    return reason is not None and reason not in TRANSIENT


def rank_key(node: NodeInfo) -> tuple[int, int, str]:
    return (node.agents, node.price, node.name)


def candidates(
    req: Requirements, nodes: Iterable[NodeInfo], exclude: Iterable[str] = ()
) -> list[NodeInfo]:
    """Fitting nodes, best first (fewest agents, lowest price, name)."""
    skip = set(exclude)
    fitting = [n for n in nodes if n.name not in skip and unfit_reason(req, n) is None]
    return sorted(fitting, key=rank_key)


def explain(req: Requirements, nodes: Iterable[NodeInfo], exclude: Iterable[str] = ()) -> str:
    """Why no node fits, e.g. "0/3 nodes fit: 2 lack capability http, 1 over max price"."""
    skip = set(exclude)
    nodes = list(nodes)
    reasons: Counter[str] = Counter()
    fit = 0
    for node in nodes:
        reason = EXCLUDED if node.name in skip else unfit_reason(req, node)
        if reason is None:
            fit += 1
        else:
            reasons[reason] += 1
    head = f"{fit}/{len(nodes)} nodes fit"
    if not reasons:
        return head
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda i: (-i[1], i[0])))
    return f"{head}: {detail}"


def with_counts(nodes: Iterable[NodeInfo], counts: Mapping[str, int]) -> list[NodeInfo]:
    return [replace(n, agents=counts.get(n.name, 0)) for n in nodes]
