"""IgorAgent spec.manifest (camelCase, as in the CRD) to igor's manifest JSON (snake_case).

The CRD spells igor's manifest the Kubernetes way; igor's parser and the checkpoint's manifest
digest use igor's own spelling (igor.agentspec converts, as the node does). Validating with
igor.manifest itself keeps admission and nodes in agreement; messages are translated back so
they name the CRD field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from igor import abi, agentspec
from igor import manifest as igor_manifest

# igor section -> (CRD section, igor key -> CRD key), to name CRD fields in messages.
_TO_CRD = {
    "resource_limits": (
        "resourceLimits",
        {
            "max_memory_bytes": "maxMemoryBytes",
            "max_cpu_millis": "maxCpuMillis",
            "max_storage_bytes": "maxStorageBytes",
        },
    ),
    "migration_policy": (
        "migrationPolicy",
        {
            "enabled": "enabled",
            "max_price_per_second": "maxPricePerSecond",
            "preferred_regions": "preferredRegions",
        },
    ),
}


class InvalidManifest(ValueError):
    """spec.manifest cannot run; ``field`` is the CRD path (e.g. spec.manifest.capabilities)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def to_igor(spec_manifest: Mapping[str, Any] | None) -> dict[str, Any]:
    """igor's manifest object for an IgorAgent's spec.manifest, exactly as the node builds it
    (igor.agentspec), so that digests agree."""
    return json.loads(to_json(spec_manifest))


def to_json(spec_manifest: Mapping[str, Any] | None) -> bytes:
    return agentspec.manifest_json(dict(spec_manifest or {}))


def crd_field(igor_field: str) -> str:
    """Translate an igor manifest field path into the IgorAgent field path."""
    if not igor_field:
        return "spec.manifest"
    head, _, rest = igor_field.partition(".")
    if head in _TO_CRD:
        crd_section, keys = _TO_CRD[head]
        sub, _, tail = rest.partition(".")
        parts = [crd_section, keys.get(sub, sub)] if sub else [crd_section]
        if tail:
            parts.append(tail)
        return "spec.manifest." + ".".join(parts)
    return f"spec.manifest.{igor_field}"


def parse(spec_manifest: Mapping[str, Any] | None) -> igor_manifest.Manifest:
    """Parse and check spec.manifest as a node of this igor version would; raise InvalidManifest."""
    try:
        parsed = igor_manifest.parse(to_igor(spec_manifest), source="spec.manifest")
    except igor_manifest.ManifestError as exc:
        raise InvalidManifest(crd_field(exc.field), _message(exc)) from None
    offered = dict(abi.CAPABILITY_VERSIONS)
    for name in parsed.capabilities:
        if name in abi.KNOWN_UNIMPLEMENTED_CAPABILITIES:
            raise InvalidManifest(
                f"spec.manifest.capabilities.{name}",
                f"capability {name} is not implemented by this igor version "
                f"(implemented: {', '.join(sorted(offered))})",
            )
    try:
        igor_manifest.check_node_can_run(parsed, offered, source="spec.manifest")
    except igor_manifest.ManifestError as exc:
        raise InvalidManifest(crd_field(exc.field), _message(exc)) from None
    return parsed


def problem(spec_manifest: Mapping[str, Any] | None) -> InvalidManifest | None:
    try:
        parse(spec_manifest)
    except InvalidManifest as exc:
        return exc
    return None


def required_capabilities(spec: Mapping[str, Any]) -> dict[str, int]:
    """Capability name -> minimum version the node must offer, from manifest and placement."""
    needed: dict[str, int] = {}
    caps = ((spec.get("manifest") or {}).get("capabilities")) or {}
    for name, body in caps.items():
        version = body.get("version", 1) if isinstance(body, Mapping) else 1
        needed[name] = max(1, int(version)) if isinstance(version, int) else 1
    for name in (spec.get("placement") or {}).get("requiredCapabilities") or ():
        needed.setdefault(name, 1)
    return needed


def _message(exc: igor_manifest.ManifestError) -> str:
    # ManifestError's str() is "source: field: message"; keep only the message. Checked
    # against this igor's own capability table, "the node" is igor itself.
    text = str(exc)
    prefix = f"{exc.source}: {exc.field}: " if exc.field else f"{exc.source}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    return text.replace("node offers", "igor implements").replace("node provides", "igor allows")
