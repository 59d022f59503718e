"""Operator configuration (command-line flags) and the kopf settings derived from it.

kopf's peering only keeps two operators from handling the same object at once; it is not leader
election. igor runs one active operator, chosen by leader.py, so kopf runs standalone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import kopf

from .gate import SandboxLimits
from .migration import Limits

DEFAULT_NAMESPACE = "igor-system"
FIELD_MANAGER = "igor-operator"


@dataclass(frozen=True)
class WebhookConfig:
    addr: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    host: str | None = None  # how the API server reaches us; default: addr
    certfile: Path | None = None
    pkeyfile: Path | None = None
    # Name of the ValidatingWebhookConfiguration kopf keeps up to date.
    configuration: str = "igor.dev"


@dataclass(frozen=True)
class Config:
    kubeconfig: Path | None = None
    namespace: str = DEFAULT_NAMESPACE
    # Namespaces whose IgorAgents and MigrationRequests this operator handles; empty: all.
    watch_namespaces: tuple[str, ...] = ()
    create_namespace: bool = True
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    # /healthz and /readyz (health.py); None: not served.
    health_port: int | None = None
    health_addr: str = "127.0.0.1"
    node_token_file: Path | None = None
    node_timeout: float = 15.0
    webhook: WebhookConfig | None = None
    verbose: bool = False
    identity: str = ""
    leader_lease_name: str = "igor-operator"
    leader_lease_duration: float = 15.0
    leader_renew_period: float = 2.0
    migration: Limits = field(default_factory=Limits)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    workers: int = 8
    # How often node Leases are checked for expiry, in seconds.
    liveness_period: float = 0.5
    # How often a cordoned node is re-examined for agents still to evacuate.
    drain_period: float = 5.0


def configure_kopf(settings: kopf.OperatorSettings, config: Config) -> None:
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.posting.enabled = False  # igor posts its own events (events.py)
    settings.persistence.finalizer = "igor.dev/kopf"
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="igor.dev", key="last-handled-configuration"
    )
    # Watches that go quiet behind idle proxies are re-established instead of hanging.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    settings.watching.connect_timeout = 30
    # One kopf worker per object that has events, without limit: a limit makes objects wait
    # for idle workers of others (5 s by default) and binding 300 new agents takes a minute.
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0
    settings.networking.request_timeout = 30
