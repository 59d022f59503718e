"""Agent authority: who may execute an agent, at which epoch, in which lease state.

All of it is plain functions over plain data, so the operator's decisions and
the node's fencing checks are unit-tested without a cluster. The state machine
is igor's (ACTIVE_OWNER, HANDOFF_INITIATED, HANDOFF_PENDING, RETIRED,
RECOVERY_REQUIRED); epochs are (major, minor), where every transfer of
authority raises major and resets minor, and minor counts the other authority
events of the same holder (handoff started, handoff reverted).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from igor.api import LeaseState
from igor.checkpoint import Epoch


class LeaseTransitionError(ValueError):
    pass


FIRST_EPOCH = Epoch(1, 0)


@dataclass(frozen=True)
class AgentLease:
    holder: str
    epoch: Epoch
    state: LeaseState = LeaseState.ACTIVE

    @classmethod
    def from_status(cls, status: dict[str, Any] | None) -> AgentLease | None:
        lease = (status or {}).get("lease") or {}
        if not lease.get("holder"):
            return None
        epoch = lease.get("epoch") or {}
        return cls(
            holder=lease["holder"],
            epoch=Epoch(int(epoch.get("major", 0)), int(epoch.get("minor", 0))),
            state=LeaseState(lease.get("state", LeaseState.ACTIVE)),
        )

    def to_status(self) -> dict[str, Any]:
        """The status fragment: lease, plus the preformatted epoch for printer columns."""
        return {
            "node": self.holder,
            "epoch": f"{self.epoch.major}.{self.epoch.minor}",
            "lease": {
                "holder": self.holder,
                "epoch": {"major": self.epoch.major, "minor": self.epoch.minor},
                "state": str(self.state),
            },
        }

    @property
    def may_tick(self) -> bool:
        return self.state is LeaseState.ACTIVE


def _require(lease: AgentLease, *states: LeaseState) -> None:
    if lease.state not in states:
        allowed = ", ".join(s.value for s in states)
        raise LeaseTransitionError(f"lease is {lease.state.value}; needs one of: {allowed}")


def bind(node: str, previous: AgentLease | None = None) -> AgentLease:
    """First placement, or placement after the holder was lost: a new major epoch."""
    if previous is None:
        return AgentLease(node, FIRST_EPOCH)
    return AgentLease(node, previous.epoch.next_major())


def begin_handoff(lease: AgentLease) -> AgentLease:
    _require(lease, LeaseState.ACTIVE)
    return replace(lease, state=LeaseState.HANDOFF_INITIATED, epoch=lease.epoch.next_minor())


def revert_handoff(lease: AgentLease) -> AgentLease:
    _require(lease, LeaseState.HANDOFF_INITIATED, LeaseState.HANDOFF_PENDING)
    return replace(lease, state=LeaseState.ACTIVE, epoch=lease.epoch.next_minor())


def cut_over(lease: AgentLease, target: str) -> AgentLease:
    _require(lease, LeaseState.HANDOFF_INITIATED, LeaseState.HANDOFF_PENDING)
    return AgentLease(target, lease.epoch.next_major())


def require_recovery(lease: AgentLease) -> AgentLease:
    return replace(lease, state=LeaseState.RECOVERY_REQUIRED)


def recover(lease: AgentLease, target: str) -> AgentLease:
    """Authority moves to `target` at a new major epoch, whatever the old holder did."""
    return AgentLease(target, lease.epoch.next_major())


def may_execute(lease: AgentLease | None, node: str, held_epoch: Epoch | None = None) -> bool:
    """A node ticks an agent only while status names it holder, Active, at the epoch it holds."""
    if lease is None or lease.holder != node or not lease.may_tick:
        return False
    return held_epoch is None or held_epoch == lease.epoch


def node_lease_expired(
    renew_time: datetime | None, duration_seconds: int | None, now: datetime
) -> bool:
    if renew_time is None or not duration_seconds:
        return True
    return now > renew_time + timedelta(seconds=duration_seconds)
