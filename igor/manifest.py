"""igor's capability manifest (`agent.manifest.json`): parsing and validation.

The manifest says which host capabilities an agent may link against, how much
memory it may use and whether it may migrate. It is fixed for the lifetime of
an instance and travels with the agent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from igor import abi


class ManifestError(ValueError):
    """A manifest the runtime cannot accept; `field` names the offending field."""

    def __init__(self, field: str, message: str, source: str = "manifest"):
        self.field = field
        self.source = source
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}")


@dataclass(frozen=True)
class Capability:
    name: str
    version: int
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class MigrationPolicy:
    enabled: bool = True
    max_price: int = 0  # 0: any price
    preferred_regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    capabilities: Mapping[str, Capability]
    max_memory_bytes: int = abi.DEFAULT_MAX_MEMORY_BYTES
    migration: MigrationPolicy = MigrationPolicy()
    canonical: bytes = b"{}"  # canonical JSON of what was parsed: its hash is the digest

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.canonical).digest()

    def grants(self, capability: str) -> bool:
        return capability in self.capabilities

    def allowed_imports(self) -> frozenset[str]:
        return frozenset(
            name for cap in self.capabilities for name in abi.imports_for_capability(cap)
        )


def _require_int(value: Any, field: str, source: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ManifestError(field, f"must be an integer, got {value!r}", source)
    if value < minimum:
        raise ManifestError(field, f"must be >= {minimum}, got {int(value)}", source)
    return int(value)


def _parse_capabilities(raw: Any, source: str) -> dict[str, Capability]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestError("capabilities", "must be an object of name -> {version}", source)
    caps = {}
    for name, body in sorted(raw.items()):
        where = f"capabilities.{name}"
        if not isinstance(body, dict):
            raise ManifestError(where, "must be an object with a version", source)
        version = body.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ManifestError(f"{where}.version", f"must be >= 1, got {version!r}", source)
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise ManifestError(f"{where}.options", "must be an object", source)
        caps[name] = Capability(name, version, MappingProxyType(dict(options)))
    return caps


def _parse_migration(raw: Any, source: str) -> MigrationPolicy:
    # igor: an absent policy allows migration; a present one must say enabled: true.
    if raw is None:
        return MigrationPolicy()
    if not isinstance(raw, dict):
        raise ManifestError("migration_policy", "must be an object", source)
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ManifestError("migration_policy.enabled", "must be true or false", source)
    regions = raw.get("preferred_regions") or []
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise ManifestError(
            "migration_policy.preferred_regions", "must be a list of strings", source
        )
    return MigrationPolicy(
        enabled=enabled,
        max_price=_require_int(
            raw.get("max_price_per_second", 0), "migration_policy.max_price_per_second", source
        ),
        preferred_regions=tuple(regions),
    )


def parse(data: bytes | str | Mapping[str, Any] | None, source: str = "manifest") -> Manifest:
    """Parse igor's manifest JSON (bytes, text, or an already-decoded object)."""
    if data is None or data == b"" or data == "":
        obj: Any = {}
    elif isinstance(data, Mapping):
        obj = dict(data)
    else:
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError("", f"invalid JSON: {exc}", source) from None
    if not isinstance(obj, dict):
        raise ManifestError("", "must be a JSON object", source)
    known = {"capabilities", "resource_limits", "migration_policy"}
    for key in obj:
        if key not in known:
            raise ManifestError(key, f"unknown field (expected one of {sorted(known)})", source)
    limits = obj.get("resource_limits") or {}
    if not isinstance(limits, dict):
        raise ManifestError("resource_limits", "must be an object", source)
    memory = _require_int(
        limits.get("max_memory_bytes", abi.DEFAULT_MAX_MEMORY_BYTES),
        "resource_limits.max_memory_bytes",
        source,
        minimum=abi.WASM_PAGE,
    )
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return Manifest(
        capabilities=MappingProxyType(_parse_capabilities(obj.get("capabilities"), source)),
        max_memory_bytes=memory,
        migration=_parse_migration(obj.get("migration_policy"), source),
        canonical=canonical,
    )


def check_node_can_run(
    manifest: Manifest,
    offered: Mapping[str, int] = abi.CAPABILITY_VERSIONS,
    node_max_memory: int = abi.DEFAULT_MAX_MEMORY_BYTES,
    source: str = "manifest",
) -> None:
    """Raise ManifestError unless a node offering `offered` can run this agent."""
    missing = sorted(name for name in manifest.capabilities if name not in offered)
    if missing:
        raise ManifestError(
            "capabilities",
            f"node cannot satisfy capabilities: {missing} (offered: {sorted(offered)})",
            source,
        )
    for cap in manifest.capabilities.values():
        if cap.version > offered[cap.name]:
            raise ManifestError(
                f"capabilities.{cap.name}.version",
                f"requires version {cap.version}, node offers {offered[cap.name]}",
                source,
            )
    if manifest.max_memory_bytes > node_max_memory:
        raise ManifestError(
            "resource_limits.max_memory_bytes",
            f"agent requires {manifest.max_memory_bytes} bytes memory, "
            f"node provides {node_max_memory}",
            source,
        )
