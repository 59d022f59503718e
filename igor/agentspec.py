"""IgorAgent spec as the node and the operator read it.

The CRD spells igor's manifest in Kubernetes style (camelCase); `manifest_json`
turns it back into igor's manifest format, whose canonical JSON is hashed into
every checkpoint, so the node, the operator's replay gate and `igor replay` all
agree on the manifest digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from igor import manifest as manifest_mod


class SpecError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"spec.{field}: {message}")


@dataclass(frozen=True)
class ModuleRef:
    digest: bytes
    config_map: tuple[str, str] | None = None  # (name, key)
    url: str | None = None

    @property
    def digest_str(self) -> str:
        return "sha256:" + self.digest.hex()


@dataclass(frozen=True)
class AgentSpec:
    module: ModuleRef
    manifest: manifest_mod.Manifest
    budget_limit: int
    interval_ms: int = 1000
    fast_interval_ms: int = 10
    deadline_ms: int = 15_000
    fuel_per_tick: int = 1_000_000_000
    window_size: int = 16
    verify_interval: int = 5
    divergence_action: str = "log"
    checkpoint_interval_s: int = 5
    suspend: bool = False
    node_selector: tuple[tuple[str, str], ...] = ()
    required_capabilities: tuple[str, ...] = ()
    max_price: int = 0


def manifest_json(spec_manifest: dict[str, Any] | None) -> bytes:
    """igor's manifest JSON (snake_case) from the CRD's spec.manifest."""
    m = spec_manifest or {}
    doc: dict[str, Any] = {
        "capabilities": {
            name: {
                "version": cap.get("version", 0),
                **({"options": cap["options"]} if cap.get("options") else {}),
            }
            for name, cap in (m.get("capabilities") or {}).items()
        }
    }
    limits = m.get("resourceLimits") or {}
    rl = {
        "max_memory_bytes": limits.get("maxMemoryBytes"),
        "max_cpu_millis": limits.get("maxCpuMillis"),
        "max_storage_bytes": limits.get("maxStorageBytes"),
    }
    doc["resource_limits"] = {k: v for k, v in rl.items() if v is not None}
    policy = m.get("migrationPolicy") or {}
    doc["migration_policy"] = {
        "enabled": policy.get("enabled", True),
        "max_price_per_second": policy.get("maxPricePerSecond", 0),
        "preferred_regions": policy.get("preferredRegions", []),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("sha256:") or len(value) != 71:
        raise SpecError("module.digest", f"must be sha256:<64 hex digits>, got {value!r}")
    try:
        return bytes.fromhex(value[7:])
    except ValueError:
        raise SpecError("module.digest", f"must be sha256:<64 hex digits>, got {value!r}") from None


def parse(spec: dict[str, Any]) -> AgentSpec:
    module = spec.get("module") or {}
    cm = module.get("configMap")
    ref = ModuleRef(
        digest=_digest(module.get("digest")),
        config_map=(cm["name"], cm["key"]) if cm else None,
        url=module.get("url"),
    )
    if (ref.config_map is None) == (ref.url is None):
        raise SpecError("module", "exactly one of module.configMap or module.url must be set")
    try:
        manifest = manifest_mod.parse(manifest_json(spec.get("manifest")), source="spec.manifest")
    except manifest_mod.ManifestError as exc:
        raise SpecError(f"manifest.{exc.field}", str(exc).split(": ", 2)[-1]) from None
    tick = spec.get("tick") or {}
    replay = spec.get("replay") or {}
    placement = spec.get("placement") or {}
    return AgentSpec(
        module=ref,
        manifest=manifest,
        budget_limit=int((spec.get("budget") or {}).get("limit", 0)),
        interval_ms=int(tick.get("intervalMillis", 1000)),
        fast_interval_ms=int(tick.get("fastIntervalMillis", 10)),
        deadline_ms=int(tick.get("deadlineMillis", 15_000)),
        fuel_per_tick=int(tick.get("fuelPerTick", 1_000_000_000)),
        window_size=int(replay.get("windowSize", 16)),
        verify_interval=int(replay.get("verifyInterval", 5)),
        divergence_action=str(replay.get("divergenceAction", "log")),
        checkpoint_interval_s=int(spec.get("checkpointIntervalSeconds", 5)),
        suspend=bool(spec.get("suspend", False)),
        node_selector=tuple(sorted((placement.get("nodeSelector") or {}).items())),
        required_capabilities=tuple(placement.get("requiredCapabilities") or ()),
        max_price=int(placement.get("maxPrice", 0)),
    )
