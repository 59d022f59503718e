"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)."""

from .binaries import BinariesNotFound, available, find
from .cluster import ControlPlaneError, LocalControlPlane, load_state, stop_detached

__all__ = [
    "BinariesNotFound",
    "ControlPlaneError",
    "LocalControlPlane",
    "available",
    "find",
    "load_state",
    "stop_detached",
]
