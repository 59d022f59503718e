"""The igor.dev/v1alpha1 API: resource names, enums and condition helpers.

The CustomResourceDefinitions in ``<repo>/crds`` are the schema; this module is the one place the
operator, the node daemon and the tests take API names and enum values from. Every enum in the
CRDs has a StrEnum here with the same values in the same order, and
``tests/unit/test_crds.py`` checks both directions. docs/resources.md documents every field.

No Kubernetes client calls happen here: the helpers build and compare plain dicts, the shape the
``kubernetes`` client and kopf use for custom objects.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

GROUP = "igor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# `kubectl get igor` lists every kind that carries this category.
CATEGORY = "igor"


class Kind(enum.StrEnum):
    IGOR_AGENT = "IgorAgent"
    IGOR_NODE = "IgorNode"
    MIGRATION_REQUEST = "MigrationRequest"


@dataclass(frozen=True)
class Resource:
    """Names of one kind, as declared by its CRD."""

    kind: Kind
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool

    @property
    def group(self) -> str:
        return GROUP

    @property
    def version(self) -> str:
        return VERSION

    @property
    def api_version(self) -> str:
        return API_VERSION

    @property
    def crd_name(self) -> str:
        """metadata.name of the CRD, e.g. ``igoragents.igor.dev``."""
        return f"{self.plural}.{GROUP}"

    @property
    def crd_file(self) -> str:
        """File name of the CRD inside the crds folder."""
        return f"{self.plural}.yaml"


IGOR_AGENT = Resource(Kind.IGOR_AGENT, "igoragents", "igoragent", ("ia",), namespaced=True)
IGOR_NODE = Resource(Kind.IGOR_NODE, "igornodes", "igornode", ("inode",), namespaced=False)
MIGRATION_REQUEST = Resource(
    Kind.MIGRATION_REQUEST, "migrationrequests", "migrationrequest", ("mr", "migreq"), True
)

RESOURCES: Mapping[Kind, Resource] = {r.kind: r for r in (IGOR_AGENT, IGOR_NODE, MIGRATION_REQUEST)}
KINDS: tuple[Kind, ...] = tuple(RESOURCES)
PLURALS: Mapping[Kind, str] = {k: r.plural for k, r in RESOURCES.items()}

# Plurals as plain constants, for decorators: @kopf.on.create(GROUP, VERSION, AGENT_PLURAL).
AGENT_PLURAL = IGOR_AGENT.plural
NODE_PLURAL = IGOR_NODE.plural
MIGRATION_PLURAL = MIGRATION_REQUEST.plural


# --------------------------------------------------------------------------- enums shared by kinds


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Capability(enum.StrEnum):
    """Host capabilities (igor's node set). Keys of IgorAgent spec.manifest.capabilities."""

    CLOCK = "clock"
    RAND = "rand"
    LOG = "log"
    WALLET = "wallet"
    PRICING = "pricing"
    HTTP = "http"
    X402 = "x402"


# --------------------------------------------------------------------------- IgorAgent


class AgentPhase(enum.StrEnum):
    """IgorAgent status.phase: a summary for people; programs read conditions."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    MIGRATING = "Migrating"
    RECOVERING = "Recovering"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


class LeaseState(enum.StrEnum):
    """IgorAgent status.lease.state. Only ACTIVE allows ticking."""

    ACTIVE = "Active"
    HANDOFF_INITIATED = "HandoffInitiated"
    HANDOFF_PENDING = "HandoffPending"
    RETIRED = "Retired"
    RECOVERY_REQUIRED = "RecoveryRequired"


class ReplayVerdict(enum.StrEnum):
    """IgorAgent status.replay.verdict: result of the last periodic verification."""

    VERIFIED = "Verified"
    DIVERGED = "Diverged"
    ERROR = "Error"
    UNKNOWN = "Unknown"


class DivergenceAction(enum.StrEnum):
    """IgorAgent spec.replay.divergenceAction (lower case, as in igor's flags)."""

    LOG = "log"
    PAUSE = "pause"
    INTENSIFY = "intensify"
    MIGRATE = "migrate"


class AgentConditionType(enum.StrEnum):
    SCHEDULED = "Scheduled"
    READY = "Ready"
    REPLAY_VERIFIED = "ReplayVerified"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    MIGRATING = "Migrating"
    DEGRADED = "Degraded"


# --------------------------------------------------------------------------- IgorNode


class NodeConditionType(enum.StrEnum):
    READY = "Ready"


# --------------------------------------------------------------------------- MigrationRequest


class MigrationPhase(enum.StrEnum):
    """MigrationRequest status.phase (also mirrored in IgorAgent status.migration.phase)."""

    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    CHECKPOINTING = "Checkpointing"
    VERIFYING = "Verifying"
    TRANSFERRING = "Transferring"
    CUTTING_OVER = "CuttingOver"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_MIGRATION_PHASES


TERMINAL_MIGRATION_PHASES = frozenset(
    {MigrationPhase.SUCCEEDED, MigrationPhase.FAILED, MigrationPhase.ABORTED}
)


class MigrationReason(enum.StrEnum):
    """MigrationRequest spec.reason. MANUAL is the default (requests made by people)."""

    MANUAL = "Manual"
    DRAIN = "Drain"
    PRICE = "Price"
    CAPABILITY = "Capability"
    RECOVERY = "Recovery"
    REBALANCE = "Rebalance"
    DIVERGENCE = "Divergence"


class MigrationVerdict(enum.StrEnum):
    """MigrationRequest status.replay.verdict: result of the replay gate."""

    VERIFIED = "Verified"
    DIVERGED = "Diverged"
    ERROR = "Error"
    SKIPPED = "Skipped"


class MigrationConditionType(enum.StrEnum):
    ABORT_REQUESTED = "AbortRequested"
    REPLAY_VERIFIED = "ReplayVerified"
    # True once authority moved to the target; deleting the request after it is a no-op.
    CUT_OVER = "CutOver"


# --------------------------------------------------------------------------- status helpers


def epoch_display(major: int, minor: int) -> str:
    """IgorAgent status.epoch: lease.epoch as "major.minor" (the Epoch printer column).

    The CRD rejects a status whose ``epoch`` differs from ``lease.epoch``, so write both in the
    same update.
    """
    if major < 0 or minor < 0:
        raise ValueError(f"epoch parts must be >= 0, got {major}.{minor}")
    return f"{int(major)}.{int(minor)}"


def initial_agent_status(budget_limit: int, generation: int) -> dict[str, Any]:
    """The status the operator writes on an IgorAgent's first reconcile.

    Status defaults in a CRD only apply once a status exists, so the operator writes the fields
    behind the printer columns itself: Phase Pending, Epoch 0.0, Tick 0, Budget = the limit.
    """
    return {
        "observedGeneration": generation,
        "phase": AgentPhase.PENDING.value,
        "epoch": epoch_display(0, 0),
        "tick": 0,
        "budget": {"remaining": max(0, budget_limit), "spent": 0},
    }


def initial_migration_status(generation: int = 1, now: datetime | None = None) -> dict[str, Any]:
    """The status the operator writes on a MigrationRequest's first reconcile."""
    return {
        "observedGeneration": generation,
        "phase": MigrationPhase.PENDING.value,
        "phaseTransitionTimestamps": [
            {"phase": MigrationPhase.PENDING.value, "time": format_time(now)}
        ],
        "attempts": 0,
    }


# --------------------------------------------------------------------------- conditions

# Limits and patterns of metav1.Condition, as declared in the CRDs.
CONDITION_TYPE_MAX = 316
CONDITION_REASON_MAX = 1024
CONDITION_MESSAGE_MAX = 32768
_CONDITION_TYPE_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_CONDITION_REASON_RE = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_TRUNCATED = " ...[truncated]"


def format_time(when: datetime | None = None) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises ("...T12:00:00Z")."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type: str,
    status: ConditionStatus | str | bool,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build a metav1.Condition dict.

    ``status`` may be a bool (True/False) or "True"/"False"/"Unknown". ``reason`` must be
    CamelCase as the CRDs require; a bad type or reason raises ValueError here instead of failing
    the whole status update at the API server. A message longer than the CRD allows is cut and
    marked.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    try:
        status = ConditionStatus(status)
    except ValueError:
        raise ValueError(
            f"condition status must be one of True, False, Unknown, got {status!r}"
        ) from None
    if len(type) > CONDITION_TYPE_MAX or not _CONDITION_TYPE_RE.match(type):
        raise ValueError(f"condition type must be CamelCase (e.g. Ready), got {type!r}")
    if len(reason) > CONDITION_REASON_MAX or not _CONDITION_REASON_RE.match(reason):
        raise ValueError(
            f"condition reason must be a non-empty CamelCase word (e.g. NodeLost), got {reason!r}"
        )
    if len(message) > CONDITION_MESSAGE_MAX:
        message = message[: CONDITION_MESSAGE_MAX - len(_TRUNCATED)] + _TRUNCATED
    result: dict[str, Any] = {
        "type": str(type),
        "status": status.value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    }
    if observed_generation is not None:
        result["observedGeneration"] = int(observed_generation)
    return result


def find_condition(
    conditions: Iterable[Mapping[str, Any]] | None, type: str
) -> dict[str, Any] | None:
    """The condition of the given type, or None."""
    for c in conditions or ():
        if c.get("type") == type:
            return dict(c)
    return None


def is_condition_true(conditions: Iterable[Mapping[str, Any]] | None, type: str) -> bool:
    c = find_condition(conditions, type)
    return c is not None and c.get("status") == ConditionStatus.TRUE


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None, new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Return a new conditions list with ``new`` set, following the API conventions.

    A condition of the same type is replaced in place (order is kept; a new type is appended).
    When its status does not change, the existing lastTransitionTime is kept, while reason,
    message and observedGeneration are taken from ``new``. The input is not modified, and the
    result equals the input when nothing changed, so ``result != old`` tells whether a status
    update is needed.
    """
    new = dict(new)
    result: list[dict[str, Any]] = []
    found = False
    for c in conditions or ():
        c = dict(c)
        if c.get("type") == new["type"]:
            found = True
            if c.get("status") == new.get("status") and "lastTransitionTime" in c:
                new["lastTransitionTime"] = c["lastTransitionTime"]
            c = new
        result.append(c)
    if not found:
        result.append(new)
    return result


def remove_condition(
    conditions: Iterable[Mapping[str, Any]] | None, type: str
) -> list[dict[str, Any]]:
    """Return a new conditions list without the condition of the given type."""
    return [dict(c) for c in conditions or () if c.get("type") != type]


# --------------------------------------------------------------------------- CRD files

CRD_DIR_ENV = "IGOR_CRD_DIR"


def crd_dir() -> Path:
    """The folder holding the CRD files.

    ``$IGOR_CRD_DIR`` when set, else ``<repo>/crds`` next to this package in a source checkout.
    The CRDs are not packaged into the wheel: the Helm chart installs them (from its own crds/
    copy), never the operator, so only tests and tools read them from disk.
    """
    env = os.environ.get(CRD_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "crds"


def crd_paths() -> tuple[Path, ...]:
    """Paths of the three CRD files, in KINDS order (IgorAgent, IgorNode, MigrationRequest)."""
    folder = crd_dir()
    paths = tuple(folder / RESOURCES[k].crd_file for k in KINDS)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"igor CRD files {', '.join(missing)} not found in {folder}; "
            f"set {CRD_DIR_ENV} to the folder that holds them"
        )
    return paths


def load_crds() -> dict[Kind, dict[str, Any]]:
    """The three CRDs as dicts, by kind, ready to create through the API."""
    result = {}
    for kind, path in zip(KINDS, crd_paths(), strict=True):
        with path.open(encoding="utf-8") as f:
            result[kind] = yaml.safe_load(f)
    return result
