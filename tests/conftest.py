"""Shared fixtures. The control plane is real: etcd, kube-apiserver and
kube-controller-manager run as local processes for the whole session."""

from __future__ import annotations

import pytest

from igor import kube
from igor.controlplane import LocalControlPlane, available


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    if not available():
        pytest.fail(
            "control plane binaries missing: run `make setup` (it builds etcd, "
            "kube-apiserver, kube-controller-manager and kubectl into a cache)"
        )
    plane = LocalControlPlane(tmp_path_factory.mktemp("controlplane"), crd_files=kube.crd_files())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> str:
    return str(control_plane.kubeconfig)


@pytest.fixture
def k8s(control_plane):
    """An ApiClient for the session's control plane, closed after the test."""
    with kube.api_client(control_plane.kubeconfig) as api:
        yield api
