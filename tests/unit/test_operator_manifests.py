"""spec.manifest (CRD spelling) checked with igor's own parser; messages name CRD fields."""

from __future__ import annotations

import pytest

from igor_operator import admission, manifests


def test_converts_to_igor_spelling_and_parses():
    spec = {
        "capabilities": {"clock": {"version": 1}, "http": {"version": 1, "options": {"x": 1}}},
        "resourceLimits": {"maxMemoryBytes": 1 << 20},
        "migrationPolicy": {"maxPricePerSecond": 5},
    }
    igor = manifests.to_igor(spec)
    assert igor["resource_limits"] == {"max_memory_bytes": 1 << 20}
    assert igor["migration_policy"]["max_price_per_second"] == 5
    assert igor["migration_policy"]["enabled"] is True
    parsed = manifests.parse(spec)
    assert set(parsed.capabilities) == {"clock", "http"}
    assert parsed.max_memory_bytes == 1 << 20 and parsed.migration.enabled


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            {"capabilities": {"clock": {"version": 0}}},
            "spec.manifest.capabilities.clock.version",
            ">= 1",
        ),
        (
            {"capabilities": {"clock": {"version": 2}}},
            "spec.manifest.capabilities.clock.version",
            "igor implements 1",
        ),
        (
            {"capabilities": {"x402": {"version": 1}}},
            "spec.manifest.capabilities.x402",
            "not implemented",
        ),
        (
            {"resourceLimits": {"maxMemoryBytes": 1 << 30}},
            "spec.manifest.resourceLimits.maxMemoryBytes",
            "memory",
        ),
    ],
)
def test_invalid_manifests_name_the_crd_field(spec, field, words):
    problem = manifests.problem(spec)
    assert problem is not None
    assert problem.field == field
    assert str(problem).startswith(field + ": ")
    assert words in str(problem)


def test_agent_admission_lists_problems():
    assert admission.agent_problems({"module": {"digest": "sha256:" + "a" * 64}}) == []
    problems = admission.agent_problems(
        {"module": {}, "manifest": {"capabilities": {"rand": {"version": 9}}}}
    )
    assert problems[0].startswith("spec.module.digest: required")
    assert problems[1].startswith("spec.manifest.capabilities.rand.version:")
