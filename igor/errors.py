"""Errors an agent or its inputs can cause, each with a short machine-readable kind.

The node and operator put `kind` into conditions and metrics and `str(exc)`
into messages, so every message names the agent, field or limit involved.
"""

from __future__ import annotations


class AgentError(Exception):
    kind = "agent-error"


class ModuleError(AgentError):
    """The module cannot be compiled or lacks a required export."""

    kind = "bad-module"


class DigestMismatch(AgentError):
    kind = "digest-mismatch"


class LinkError(AgentError):
    """The module imports something its manifest does not grant."""

    kind = "link-error"


class InstanceFailed(AgentError):
    """A previous trap left the instance unusable; restore from a checkpoint."""

    kind = "instance-failed"


class TickDeadlineExceeded(AgentError):
    kind = "deadline-exceeded"


class FuelExhausted(AgentError):
    kind = "fuel-exhausted"


class MemoryLimitExceeded(AgentError):
    kind = "memory-limit"


class AgentTrap(AgentError):
    kind = "trap"


class CheckpointTooLarge(AgentError):
    kind = "checkpoint-too-large"


class BadStatePointer(AgentError):
    kind = "bad-state-pointer"


class BudgetExhausted(AgentError):
    kind = "budget-exhausted"


class ResumeRefused(AgentError):
    """A checkpoint does not belong to this agent, module or lineage."""

    kind = "resume-refused"
