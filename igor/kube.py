"""Small Kubernetes client helpers shared by the CLI, demo, tests and operator."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

REPO_ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = REPO_ROOT / "crds"


def api_client(kubeconfig: str | Path | None = None) -> client.ApiClient:
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)


def crd_files(directory: Path = CRD_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def apply_crds(api: client.ApiClient, files: Iterable[Path] | None = None) -> list[str]:
    """Create or update each CRD (server-side apply), then wait until Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in files if files is not None else crd_files():
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        ext.patch_custom_resource_definition(
            name,
            body,
            field_manager="igor",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        names.append(name)
    for name in names:
        wait_crd_established(ext, name)
    return names


def wait_crd_established(ext: client.ApiextensionsV1Api, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            crd = ext.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        else:
            conditions = (crd.status and crd.status.conditions) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
        time.sleep(0.1)
    raise TimeoutError(f"CustomResourceDefinition {name} not Established after {timeout:.0f}s")
