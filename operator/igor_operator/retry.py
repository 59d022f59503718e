"""Error classification and backoff for the steps of a migration.

Retriable errors back off exponentially and may fall back to another candidate; fatal ones end
the migration; ambiguous ones (a request that may or may not have taken effect) are only ever
retried against the same node with the same epoch, where they are idempotent, and otherwise
left to recovery. Nothing here does I/O.
"""

from __future__ import annotations

import enum


class ErrorClass(enum.StrEnum):
    RETRIABLE = "Retriable"
    FATAL = "Fatal"
    AMBIGUOUS = "Ambiguous"


class StepError(Exception):
    """A migration step failed; ``kind`` is a CamelCase reason for status and events."""

    def __init__(self, kind: str, message: str, error_class: ErrorClass, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.error_class = error_class
        self.status = status  # the node's HTTP status, when it answered

    @property
    def retriable(self) -> bool:
        return self.error_class is not ErrorClass.FATAL


def classify_http(status: int) -> ErrorClass:
    """A node API answer that is not a success."""
    if status in (400, 401, 403, 405, 410, 422):
        return ErrorClass.FATAL  # configuration or protocol error: retrying cannot help
    # 404 (the node has not loaded the agent yet, or restarted), 409 (its view of the lease lags
    # behind the API server), 425/429/5xx: the node may answer differently in a moment.
    return ErrorClass.RETRIABLE


def classify_transport(delivered: bool) -> ErrorClass:
    """A node API call that got no answer.

    Not delivered (connection refused, DNS): nothing happened, retry. Delivered but unanswered
    (timeout, reset mid-response): it may have taken effect; the node endpoints the operator
    calls are idempotent per epoch, so the same call may be repeated, never another target.
    """
    return ErrorClass.RETRIABLE if not delivered else ErrorClass.AMBIGUOUS


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Delay before retry number ``attempt`` (0-based): base * 2**attempt, at most cap."""
    if attempt < 0:
        attempt = 0
    return min(cap, base * (2 ** min(attempt, 30)))
