"""When the operator marks an IgorNode Ready=False: its Lease expired, and the node is silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from igor_operator import nodes


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(age: float, duration: int = 4) -> dict:
    renew = datetime.now(UTC) - timedelta(seconds=age)
    return {
        "metadata": {"name": "igor-node-a"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": duration, "renewTime": iso(renew)},
    }


def node(status: str | None, reason: str = "LeaseRenewed", heartbeat_age: float = 10) -> dict:
    heartbeat = iso(datetime.now(UTC) - timedelta(seconds=heartbeat_age))
    conditions = [] if status is None else [{"type": "Ready", "status": status, "reason": reason}]
    return {
        "metadata": {"name": "a"},
        "status": {"conditions": conditions, "heartbeatTime": heartbeat},
    }


def test_only_an_expired_lease_makes_a_node_not_ready():
    expired, valid = lease(age=10), lease(age=1)
    assert nodes.needs_not_ready(node("True"), expired)
    assert nodes.needs_not_ready(node("Unknown"), expired)
    assert nodes.needs_not_ready(node(None), expired)
    assert not nodes.needs_not_ready(node("True"), valid)  # a live node is never contradicted
    assert not nodes.needs_not_ready(node("True"), None)  # no Lease: not known to be expired
    assert not nodes.needs_not_ready(node("False", nodes.LEASE_EXPIRED), expired)  # done


def test_a_self_fenced_node_that_still_writes_its_status_is_left_alone():
    expired = lease(age=10)  # expired 6 s ago
    still_writing = node("False", "LeaseNotRenewed", heartbeat_age=1)
    silent = node("False", "LeaseNotRenewed", heartbeat_age=8)
    assert not nodes.needs_not_ready(still_writing, expired)
    assert nodes.needs_not_ready(silent, expired)


def test_the_message_names_when_the_lease_expired():
    msg = nodes.not_ready_message(
        {
            "metadata": {"name": "igor-node-a"},
            "spec": {"leaseDurationSeconds": 4, "renewTime": "2026-01-01T00:00:00.250000Z"},
        }
    )
    assert "igor-node-a expired at 2026-01-01T00:00:04.250Z" in msg
    assert "renewed at 2026-01-01T00:00:00.250Z" in msg
    assert "never renewed" in nodes.not_ready_message({"metadata": {"name": "x"}, "spec": {}})
