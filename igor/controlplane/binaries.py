"""Where the control plane binaries are: built by hack/controlplane/build.sh."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
REPO_ROOT = Path(__file__).resolve().parents[2]


class BinariesNotFound(RuntimeError):
    pass


def candidate_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("IGOR_CONTROLPLANE_BIN"):
        dirs.append(Path(env))
    dirs.append(REPO_ROOT / "hack" / "controlplane" / "bin")
    return dirs


def find(name: str) -> Path:
    for directory in candidate_dirs():
        path = directory / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return Path(found)
    searched = ", ".join(str(d) for d in candidate_dirs())
    raise BinariesNotFound(
        f"{name} not found (searched {searched} and PATH): run `make setup`, "
        "or set IGOR_CONTROLPLANE_BIN to a folder holding etcd, kube-apiserver, "
        "kube-controller-manager and kubectl"
    )


def available() -> bool:
    try:
        for name in REQUIRED:
            find(name)
    except BinariesNotFound:
        return False
    return True
