"""Static checks of the CRDs in crds/ and of igor.api, without an API server.

The integration tests apply the same CRDs to a real kube-apiserver; these tests catch what can be
caught earlier: structural-schema rules, printer columns that point nowhere, enums that drifted
from igor/api.py, and examples in docs/resources.md that no longer match the schema.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from igor import abi, api

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "resources.md"

CRDS: dict[api.Kind, dict[str, Any]] = api.load_crds()

# Where each enum lives in each CRD, and the StrEnum that must hold exactly the same values.
# Paths: "[]" is an array item, "<name>" a map value.
ENUMS: dict[api.Kind, dict[str, type[enum.StrEnum]]] = {
    api.Kind.IGOR_AGENT: {
        "spec.placement.requiredCapabilities[]": api.Capability,
        "spec.replay.divergenceAction": api.DivergenceAction,
        "status.phase": api.AgentPhase,
        "status.lease.state": api.LeaseState,
        "status.replay.verdict": api.ReplayVerdict,
        "status.migration.phase": api.MigrationPhase,
        "status.conditions[].status": api.ConditionStatus,
    },
    api.Kind.IGOR_NODE: {
        "spec.capabilities[].name": api.Capability,
        "status.conditions[].status": api.ConditionStatus,
    },
    api.Kind.MIGRATION_REQUEST: {
        "spec.reason": api.MigrationReason,
        "status.phase": api.MigrationPhase,
        "status.phaseTransitionTimestamps[].phase": api.MigrationPhase,
        "status.replay.verdict": api.MigrationVerdict,
        "status.conditions[].status": api.ConditionStatus,
    },
}

CONDITION_TYPES: dict[api.Kind, type[enum.StrEnum]] = {
    api.Kind.IGOR_AGENT: api.AgentConditionType,
    api.Kind.IGOR_NODE: api.NodeConditionType,
    api.Kind.MIGRATION_REQUEST: api.MigrationConditionType,
}

COLUMNS: dict[api.Kind, list[str]] = {
    api.Kind.IGOR_AGENT: ["Phase", "Node", "Epoch", "Tick", "Budget", "Age"],
    api.Kind.IGOR_NODE: ["Ready", "Agents", "Price", "Unschedulable", "Age"],
    api.Kind.MIGRATION_REQUEST: ["Agent", "Phase", "Source", "Target", "Verdict", "Age"],
}

# The only places where unknown fields are kept: capability options (free-form by design) and
# kopf's progress storage (status.kopf; without it kopf's status patches are pruned).
PRESERVE_UNKNOWN: dict[api.Kind, set[str]] = {
    api.Kind.IGOR_AGENT: {"spec.manifest.capabilities.<name>.options", "status.kopf"},
    api.Kind.IGOR_NODE: {"status.kopf"},
    api.Kind.MIGRATION_REQUEST: {"status.kopf"},
}

# Keys a JSONSchemaProps may carry (apiextensions.k8s.io/v1); anything else is a typo.
SCHEMA_KEYS = {
    "type",
    "format",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}

ALL_KINDS = pytest.mark.parametrize("kind", api.KINDS, ids=str)


def schema_of(kind: api.Kind) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path ("[]" for array items, "<name>" for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.<name>")


def lookup(kind: api.Kind, path: str) -> dict[str, Any] | None:
    nodes = dict(walk(schema_of(kind)))
    return nodes.get(path)


# --------------------------------------------------------------------------- CRD headers


def test_three_files_one_per_kind() -> None:
    paths = api.crd_paths()
    assert [p.name for p in paths] == [
        "igoragents.yaml",
        "igornodes.yaml",
        "migrationrequests.yaml",
    ]
    assert sorted(p.name for p in (REPO / "crds").glob("*.yaml")) == sorted(p.name for p in paths)


@ALL_KINDS
def test_header(kind: api.Kind) -> None:
    crd = CRDS[kind]
    res = api.RESOURCES[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == res.crd_name
    spec = crd["spec"]
    assert spec["group"] == api.GROUP
    assert spec["scope"] == ("Namespaced" if res.namespaced else "Cluster")
    names = spec["names"]
    assert names["kind"] == kind
    assert names["listKind"] == f"{kind}List"
    assert names["plural"] == res.plural
    assert names["singular"] == res.singular
    assert tuple(names["shortNames"]) == res.short_names
    assert names["categories"] == [api.CATEGORY]


def test_short_names_unique() -> None:
    names = [n for r in api.RESOURCES.values() for n in (r.plural, r.singular, *r.short_names)]
    assert len(names) == len(set(names))
    # Built-in short names kubectl users type every day must stay theirs.
    assert not {"in", "no", "ns", "po", "cm", "rs", "sa", "svc", "ing", "pv", "pvc"} & set(names)


@ALL_KINDS
def test_single_served_storage_version_with_status(kind: api.Kind) -> None:
    versions = CRDS[kind]["spec"]["versions"]
    assert len(versions) == 1
    (v,) = versions
    assert v["name"] == api.VERSION
    assert v["served"] is True and v["storage"] is True
    assert v["subresources"] == {"status": {}}
    assert f"{api.GROUP}/{v['name']}" == api.API_VERSION


# --------------------------------------------------------------------------- structural schema


@ALL_KINDS
def test_schema_is_structural(kind: api.Kind) -> None:
    root = schema_of(kind)
    assert root["type"] == "object"
    assert "spec" in root["required"]
    assert root["properties"]["metadata"] == {"type": "object"}
    for path, node in walk(root):
        where = f"{kind} {path or '<root>'}"
        assert set(node) <= SCHEMA_KEYS, f"{where}: unknown keys {set(node) - SCHEMA_KEYS}"
        assert "type" in node, f"{where}: no type"
        assert node["type"] in {"object", "array", "string", "integer", "boolean", "number"}
        scalar_item = path.endswith(("[]", "<name>")) and node["type"] != "object"
        if path not in {"", "metadata"} and not scalar_item:
            assert node.get("description"), f"{where}: no description (kubectl explain)"
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), f"{where}: array without items"
            assert "x-kubernetes-list-type" in node, f"{where}: array without list type"
        if node["type"] == "object":
            assert not ("properties" in node and "additionalProperties" in node), where
        assert "nullable" not in node, f"{where}: nullable is not used in igor's API"
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert path in PRESERVE_UNKNOWN[kind], f"{where}: unexpected preserve-unknown-fields"
            assert node["type"] == "object"
        for key in node.get("required", []):
            assert key in node.get("properties", {}), f"{where}: required {key} not declared"


@ALL_KINDS
def test_preserve_unknown_only_where_intended(kind: api.Kind) -> None:
    found = {p for p, n in walk(schema_of(kind)) if n.get("x-kubernetes-preserve-unknown-fields")}
    assert found == PRESERVE_UNKNOWN[kind]


def _check_scalar(value: Any, node: dict[str, Any], where: str) -> list[str]:
    """A small validator for the keywords igor's CRDs use (no CEL)."""
    errors: list[str] = []
    t = node["type"]
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "boolean": bool,
        "number": (int, float),
    }
    if not isinstance(value, kinds[t]) or (t == "integer" and isinstance(value, bool)):
        return [f"{where}: expected {t}, got {value!r}"]
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{where}: {value!r} not in {node['enum']}")
    if t == "integer":
        if "minimum" in node and value < node["minimum"]:
            errors.append(f"{where}: {value} < {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{where}: {value} > {node['maximum']}")
    if t == "string":
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {node['pattern']}")
        if len(value) > node.get("maxLength", len(value)):
            errors.append(f"{where}: longer than {node['maxLength']}")
        if len(value) < node.get("minLength", 0):
            errors.append(f"{where}: shorter than {node['minLength']}")
        if node.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors.append(f"{where}: {value!r} is not a date-time")
    return errors


def validate(value: Any, node: dict[str, Any], where: str = "") -> list[str]:
    errors = _check_scalar(value, node, where)
    if errors:
        return errors
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return errors
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in node.get("required", []):
            if key not in value:
                errors.append(f"{where}.{key}: required")
        if len(value) > node.get("maxProperties", len(value)):
            errors.append(f"{where}: more than {node['maxProperties']} properties")
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{where}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                errors += validate(item, node["additionalProperties"], f"{where}.{key}")
            elif where != ".metadata":
                errors.append(f"{where}.{key}: unknown field")
    if isinstance(value, list):
        if len(value) > node.get("maxItems", len(value)):
            errors.append(f"{where}: more than {node['maxItems']} items")
        for i, item in enumerate(value):
            errors += validate(item, node["items"], f"{where}[{i}]")
        if node.get("x-kubernetes-list-type") == "set" and len(set(value)) != len(value):
            errors.append(f"{where}: duplicate items in a set")
        if node.get("x-kubernetes-list-type") == "map":
            keys = [tuple(v.get(k) for k in node["x-kubernetes-list-map-keys"]) for v in value]
            if len(set(keys)) != len(keys):
                errors.append(f"{where}: duplicate map-list keys")
    return errors


@ALL_KINDS
def test_defaults_are_valid(kind: api.Kind) -> None:
    for path, node in walk(schema_of(kind)):
        if "default" not in node:
            continue
        assert not path.startswith("status"), f"{path}: status defaults never show in columns"
        if node["type"] == "object":
            # default: {} materialises nested defaults; it must not miss required children.
            assert node["default"] == {}, path
            assert not node.get("required"), f"{path}: default {{}} but required children"
        assert validate(node["default"], node, path) == []


@ALL_KINDS
def test_list_types(kind: api.Kind) -> None:
    for path, node in walk(schema_of(kind)):
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path


@ALL_KINDS
def test_conditions_are_metav1_conditions_keyed_by_type(kind: api.Kind) -> None:
    conditions = lookup(kind, "status.conditions")
    assert conditions is not None
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert set(item["properties"]) == set(item["required"]) | {"observedGeneration"}
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    # The helpers enforce the same limits as the schema.
    assert item["properties"]["type"]["maxLength"] == api.CONDITION_TYPE_MAX
    assert item["properties"]["reason"]["maxLength"] == api.CONDITION_REASON_MAX
    assert item["properties"]["message"]["maxLength"] == api.CONDITION_MESSAGE_MAX
    # Condition types stay open (API conventions) but every type igor uses is documented.
    assert "enum" not in item["properties"]["type"]
    for t in CONDITION_TYPES[kind]:
        assert t.value in conditions["description"], t
        assert validate(api.condition(t, True, "Because"), item) == []


@ALL_KINDS
def test_observed_generation(kind: api.Kind) -> None:
    node = lookup(kind, "status.observedGeneration")
    assert node is not None and node["type"] == "integer"


# --------------------------------------------------------------------------- printer columns


def column_schema(kind: api.Kind, json_path: str) -> dict[str, Any] | None:
    """The schema node a printer column's JSONPath reads (filters read an array item)."""
    if json_path == ".metadata.creationTimestamp":
        return {"type": "string", "format": "date-time"}
    dotted = re.sub(r"\[\?\(@\.\w+==\"[^\"]*\"\)\]", "[]", json_path.lstrip("."))
    return lookup(kind, dotted)


@ALL_KINDS
def test_printer_columns(kind: api.Kind) -> None:
    columns = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    default_columns = [c["name"] for c in columns if c.get("priority", 0) == 0]
    assert default_columns == COLUMNS[kind]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    for col in columns:
        node = column_schema(kind, col["jsonPath"])
        assert node is not None, f"{kind} column {col['name']}: {col['jsonPath']} not in schema"
        expected = {"string": {"string"}, "integer": {"integer"}, "boolean": {"boolean"}}
        if col["type"] == "date":
            assert node.get("format") == "date-time", col
        else:
            assert node["type"] in expected[col["type"]], col
        if col["name"] != "Age":
            assert col.get("description"), col


def test_node_ready_column_filters_ready_condition() -> None:
    cols = CRDS[api.Kind.IGOR_NODE]["spec"]["versions"][0]["additionalPrinterColumns"]
    (ready,) = [c for c in cols if c["name"] == "Ready"]
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def resolve(obj: Any, json_path: str) -> Any:
    for part in json_path.lstrip(".").split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def test_initial_agent_status_fills_value_columns() -> None:
    status = api.initial_agent_status(budget_limit=500, generation=1)
    assert validate(status, schema_of(api.Kind.IGOR_AGENT)["properties"]["status"]) == []
    obj = {"status": status}
    for name, path in [
        ("Phase", ".status.phase"),
        ("Epoch", ".status.epoch"),
        ("Tick", ".status.tick"),
        ("Budget", ".status.budget.remaining"),
    ]:
        assert resolve(obj, path) is not None, name
    assert status["epoch"] == "0.0" and status["tick"] == 0 and status["budget"]["remaining"] == 500


def test_initial_migration_status() -> None:
    status = api.initial_migration_status(now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert validate(status, schema_of(api.Kind.MIGRATION_REQUEST)["properties"]["status"]) == []
    assert status["phaseTransitionTimestamps"] == [
        {"phase": "Pending", "time": "2026-01-02T03:04:05Z"}
    ]


# --------------------------------------------------------------------------- enums vs igor.api


def _enum_paths(kind: api.Kind) -> dict[str, list[str]]:
    return {p: n["enum"] for p, n in walk(schema_of(kind)) if "enum" in n}


@ALL_KINDS
def test_crd_enums_equal_api_enums(kind: api.Kind) -> None:
    found = _enum_paths(kind)
    # Every enum in the CRD is mapped to a StrEnum, and every mapping names a real enum.
    assert set(found) == set(ENUMS[kind])
    for path, values in found.items():
        assert values == [m.value for m in ENUMS[kind][path]], path


def _cel_rules(kind: api.Kind) -> dict[str, list[dict[str, str]]]:
    return {
        p: n["x-kubernetes-validations"]
        for p, n in walk(schema_of(kind))
        if "x-kubernetes-validations" in n
    }


def test_capability_names_rule_matches_api() -> None:
    rules = _cel_rules(api.Kind.IGOR_AGENT)["spec.manifest.capabilities"]
    (rule,) = rules
    names = re.findall(r"'([a-z0-9]+)'", rule["rule"].split(" in ", 1)[1])
    assert names == [c.value for c in api.Capability]
    assert ", ".join(api.Capability) in rule["message"]
    caps = lookup(api.Kind.IGOR_AGENT, "spec.manifest.capabilities")
    assert caps is not None and caps["maxProperties"] == len(api.Capability)


def test_capabilities_match_abi() -> None:
    offered = set(abi.CAPABILITY_VERSIONS) | set(abi.KNOWN_UNIMPLEMENTED_CAPABILITIES)
    assert {c.value for c in api.Capability} == offered


def test_terminal_migration_phases() -> None:
    assert {p for p in api.MigrationPhase if p.terminal} == {"Succeeded", "Failed", "Aborted"}


# --------------------------------------------------------------------------- CEL rules


EXPECTED_RULES = {
    api.Kind.IGOR_AGENT: {
        "spec.module": "exactly one of module.configMap or module.url must be set",
        "spec.module.digest": (
            "module.digest is immutable: create a new IgorAgent to change the module"
        ),
        "spec.manifest.capabilities": "manifest.capabilities keys must be one of",
        "spec.tick": "tick.fastIntervalMillis must not exceed tick.intervalMillis",
        "status": "status.epoch must equal status.lease.epoch",
    },
    api.Kind.IGOR_NODE: {},
    api.Kind.MIGRATION_REQUEST: {
        "spec": "MigrationRequest spec is immutable",
        "spec.candidates": "spec.candidates must not contain duplicates",
    },
}


@ALL_KINDS
def test_cel_rules(kind: api.Kind) -> None:
    rules = _cel_rules(kind)
    assert set(rules) == set(EXPECTED_RULES[kind])
    for path, (rule,) in rules.items():
        assert set(rule) == {"rule", "message"}, path
        assert EXPECTED_RULES[kind][path] in rule["message"], path


def test_immutability_rules() -> None:
    digest = _cel_rules(api.Kind.IGOR_AGENT)["spec.module.digest"][0]
    assert digest["rule"] == "self == oldSelf"
    spec = _cel_rules(api.Kind.MIGRATION_REQUEST)["spec"][0]
    assert spec["rule"] == "self == oldSelf"
    # Whole-spec equality must stay cheap for the CEL cost estimator: bound every string/list.
    for path, node in walk(schema_of(api.Kind.MIGRATION_REQUEST)["properties"]["spec"], "spec"):
        if node["type"] == "string" and "enum" not in node:
            assert "maxLength" in node, path
        if node["type"] == "array":
            assert "maxItems" in node, path


# --------------------------------------------------------------------------- docs examples


def doc_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    docs = [d for b in blocks for d in yaml.safe_load_all(b) if d]
    return [d for d in docs if d.get("apiVersion") == api.API_VERSION]


def test_docs_have_an_example_per_kind() -> None:
    kinds = {d["kind"] for d in doc_examples()}
    assert kinds == {k.value for k in api.KINDS}


@pytest.mark.parametrize(
    "example", doc_examples(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_docs_example_validates(example: dict[str, Any]) -> None:
    kind = api.Kind(example["kind"])
    assert set(example) <= {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "namespace" not in example["metadata"], "examples are applied into a test namespace"
    assert validate(example, schema_of(kind)) == []
    spec = example["spec"]
    if kind == api.Kind.IGOR_AGENT:
        module = spec["module"]
        assert ("configMap" in module) != ("url" in module)
        caps = spec.get("manifest", {}).get("capabilities", {})
        assert set(caps) <= {c.value for c in api.Capability}


def doc_section(kind: api.Kind) -> str:
    """The part of docs/resources.md under the kind's level-2 heading."""
    text = DOCS.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    (section,) = [s for s in sections if s.startswith(f"{kind}\n")]
    return section


@ALL_KINDS
def test_docs_document_every_field(kind: api.Kind) -> None:
    """Every spec and status field has a row in the kind's section of docs/resources.md."""
    section = doc_section(kind)
    for path, _node in walk(schema_of(kind)):
        if not path.startswith(("spec.", "status.")) or path.endswith(("[]", "<name>")):
            continue
        if path.startswith("status.conditions[]."):
            continue  # the shared Conditions section documents the item fields
        assert f"`{path}`" in section, f"{kind} {path} not documented"


# --------------------------------------------------------------------------- condition helpers

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_condition_shape() -> None:
    c = api.condition("Ready", True, "Running", "ticking", observed_generation=3, now=T0)
    assert c == {
        "type": "Ready",
        "status": "True",
        "reason": "Running",
        "message": "ticking",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 3,
    }
    assert "observedGeneration" not in api.condition("Ready", "Unknown", "NodeLost", now=T0)
    assert api.condition("Ready", False, "X", now=T0)["status"] == "False"
    assert api.condition("Ready", api.ConditionStatus.UNKNOWN, "X", now=T0)["status"] == "Unknown"


def test_condition_time_is_utc_seconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    when = datetime(2026, 1, 1, 14, 0, 0, 123456, tzinfo=plus2)
    assert (
        api.condition("Ready", True, "X", now=when)["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        api.condition("Ready", True, "X", now=datetime(2026, 1, 1))
    stamp = api.condition("Ready", True, "X")["lastTransitionTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)


@pytest.mark.parametrize(
    "reason", ["", "lower case", "Has-Dash", "1Digit", "Trailing,", "x" * 1025]
)
def test_condition_rejects_bad_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        api.condition("Ready", True, reason)


@pytest.mark.parametrize("status", ["true", "yes", "", None])
def test_condition_rejects_bad_status(status: Any) -> None:
    with pytest.raises(ValueError, match="status"):
        api.condition("Ready", status, "X")


def test_condition_rejects_bad_type() -> None:
    with pytest.raises(ValueError, match="type"):
        api.condition("not ok", True, "X")
    assert api.condition("igor.dev/Fenced", True, "X")["type"] == "igor.dev/Fenced"


def test_condition_truncates_long_message() -> None:
    c = api.condition("Ready", True, "X", "m" * 40000)
    assert len(c["message"]) == api.CONDITION_MESSAGE_MAX
    assert c["message"].endswith("[truncated]")


def test_set_condition_appends_new_type() -> None:
    ready = api.condition("Ready", True, "Running", now=T0)
    assert api.set_condition(None, ready) == [ready]
    sched = api.condition("Scheduled", True, "Placed", now=T0)
    assert api.set_condition([ready], sched) == [ready, sched]


def test_set_condition_keeps_transition_time_when_status_unchanged() -> None:
    old = [
        api.condition("Scheduled", True, "Placed", now=T0),
        api.condition("Ready", True, "Running", "tick 1", observed_generation=1, now=T0),
    ]
    new = api.condition("Ready", True, "Running", "tick 2", observed_generation=2, now=T1)
    result = api.set_condition(old, new)
    assert [c["type"] for c in result] == ["Scheduled", "Ready"]
    assert result[1]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert result[1]["message"] == "tick 2"
    assert result[1]["observedGeneration"] == 2
    assert result[0] == old[0]


def test_set_condition_updates_transition_time_when_status_changes() -> None:
    old = [api.condition("Ready", True, "Running", now=T0)]
    new = api.condition("Ready", False, "NodeLost", "lease expired", now=T1)
    (result,) = api.set_condition(old, new)
    assert result == new
    assert result["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_set_condition_does_not_mutate_and_reports_no_change() -> None:
    old = [api.condition("Ready", True, "Running", "same", now=T0)]
    snapshot = [dict(c) for c in old]
    result = api.set_condition(old, api.condition("Ready", True, "Running", "same", now=T1))
    assert old == snapshot
    assert result == old
    assert result[0] is not old[0]


def test_set_condition_without_old_time_takes_new_time() -> None:
    old = [{"type": "Ready", "status": "True", "reason": "Running", "message": ""}]
    (result,) = api.set_condition(old, api.condition("Ready", True, "Running", now=T1))
    assert result["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_find_remove_is_true() -> None:
    conds = [
        api.condition("Ready", True, "Running", now=T0),
        api.condition("Degraded", False, "Healthy", now=T0),
    ]
    assert api.find_condition(conds, "Degraded") == conds[1]
    assert api.find_condition(conds, "Migrating") is None
    assert api.find_condition(None, "Ready") is None
    assert api.is_condition_true(conds, "Ready")
    assert not api.is_condition_true(conds, "Degraded")
    assert not api.is_condition_true(conds, "Migrating")
    assert api.remove_condition(conds, "Ready") == [conds[1]]
    assert api.remove_condition(None, "Ready") == []


def test_epoch_display() -> None:
    assert api.epoch_display(3, 0) == "3.0"
    assert api.epoch_display(12, 7) == "12.7"
    with pytest.raises(ValueError):
        api.epoch_display(-1, 0)
    node = lookup(api.Kind.IGOR_AGENT, "status.epoch")
    assert node is not None and re.fullmatch(node["pattern"], api.epoch_display(10, 20))


# --------------------------------------------------------------------------- names and files


def test_names() -> None:
    assert api.API_VERSION == "igor.dev/v1alpha1"
    assert api.PLURALS == {
        api.Kind.IGOR_AGENT: "igoragents",
        api.Kind.IGOR_NODE: "igornodes",
        api.Kind.MIGRATION_REQUEST: "migrationrequests",
    }
    assert api.AGENT_PLURAL == "igoragents"
    assert api.MIGRATION_REQUEST.crd_name == "migrationrequests.igor.dev"
    assert not api.IGOR_NODE.namespaced


def test_crd_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(api.CRD_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=api.CRD_DIR_ENV):
        api.crd_paths()
    for p in (REPO / "crds").glob("*.yaml"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    assert api.crd_paths()[0] == tmp_path / "igoragents.yaml"
    assert api.load_crds()[api.Kind.IGOR_NODE]["spec"]["scope"] == "Cluster"
