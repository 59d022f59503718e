"""Validating admission through the operator's webhook, served to the real API server."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from . import test_operator_fixtures as fx
from .test_operator_fixtures import (
    agent_body,
    create_agent,
    create_migration,
    eventually,
    status,
    upload_module,
)
from .test_operator_migration import wait_final, wait_running

ns, label, operator, node_procs = fx.ns, fx.label, fx.operator, fx.node_procs


@pytest.fixture
def webhook_operator(k8s, ns, operator):
    """The operator with its validating webhook, under a configuration name of its own."""
    name = f"igor-test-{uuid.uuid4().hex[:6]}"
    proc = operator("--webhook", "--webhook-configuration", name)
    admission = client.AdmissionregistrationV1Api(k8s)
    eventually(
        lambda: any(
            c.metadata.name == name for c in admission.list_validating_webhook_configuration().items
        ),
        what="the ValidatingWebhookConfiguration",
    )
    # The configuration can be in place a moment before the API server reaches the webhook
    # (its failure policy is Ignore): wait until a server-side dry run is refused.
    eventually(lambda: _webhook_answers(k8s, ns), what="the webhook to answer")
    yield proc
    proc.terminate()
    with contextlib.suppress(ApiException):
        admission.delete_validating_webhook_configuration(name)


def _webhook_answers(k8s, namespace: str) -> bool:
    body = {
        "apiVersion": f"{fx.GROUP}/{fx.VERSION}",
        "kind": "MigrationRequest",
        "metadata": {"name": "probe"},
        "spec": {"agent": "no-such-agent"},
    }
    try:
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            fx.GROUP, fx.VERSION, namespace, fx.MRS, body, dry_run="All"
        )
    except ApiException as exc:
        return "not found" in exc.body
    return False


def rejected(call) -> str:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status in (400, 422), info.value.body
    return info.value.body


def test_agent_with_an_invalid_manifest_is_refused_naming_the_field(
    k8s, ns, label, webhook_operator
):
    body = agent_body("bad-manifest", label)
    body["spec"]["manifest"]["capabilities"]["clock"] = {"version": 7}
    message = eventually(lambda: _try_create(k8s, ns, body), what="the webhook to answer")
    assert "spec.manifest.capabilities.clock.version" in message
    assert "requires version 7" in message
    # A valid one passes.
    create_agent(k8s, ns, agent_body("good-manifest", label))


def _try_create(k8s, namespace, body) -> str | None:
    try:
        create_agent(k8s, namespace, body)
    except ApiException as exc:
        return exc.body if "spec.manifest" in exc.body else None
    # Admitted: the webhook was not serving yet; remove it and try again.
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        fx.GROUP, fx.VERSION, namespace, fx.AGENTS, body["metadata"]["name"]
    )
    return None


def test_target_without_a_capability_is_refused_and_a_fallback_candidate_wins(
    k8s, ns, label, node_procs, webhook_operator
):
    full = node_procs(f"{label}-full")
    other = node_procs(f"{label}-other")
    # No "rand": the counter agent needs clock, rand and log.
    lacking = node_procs(f"{label}-lack", capabilities="clock,log")
    digest = upload_module(k8s, ns, "counter")
    body = agent_body("picky", label, digest=digest)
    body["spec"]["placement"]["nodeSelector"]["igor.dev/test"] = label
    create_agent(k8s, ns, body)
    st = wait_running(k8s, ns, "picky", after_tick=3)
    source = st["node"]
    fallback = other.name if source == full.name else full.name

    message = rejected(
        lambda: create_migration(k8s, ns, "to-lacking", "picky", targetNode=lacking.name)
    )
    assert f"spec.targetNode: IgorNode {lacking.name} lacks capability rand" in message

    create_migration(
        k8s, ns, "with-fallback", "picky", targetNode=lacking.name, candidates=[fallback]
    )
    final = wait_final(k8s, ns, "with-fallback")
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["target"] == fallback
    assert final["candidatesTried"] == [fallback]
    wait_running(k8s, ns, "picky", node=fallback, after_tick=final["replay"]["toTick"])
    assert status(k8s, ns, "picky")["lease"]["epoch"]["major"] == 2


def test_migration_of_a_missing_agent_is_refused(k8s, ns, webhook_operator):
    message = rejected(lambda: create_migration(k8s, ns, "ghost-move", "ghost"))
    assert f"spec.agent: IgorAgent ghost not found in namespace {ns}" in message
