"""The example agents, built by `make setup` (agents/Makefile) into agents/build."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "agents" / "build"


@cache
def _built() -> None:
    # Incremental and quiet when up to date, so tests always see current modules.
    subprocess.run(["make", "-s", "-C", str(REPO / "agents")], check=True)


def wasm(name: str) -> bytes:
    _built()
    return (BUILD / f"{name}.wasm").read_bytes()


def manifest_bytes(name: str) -> bytes:
    _built()
    return (BUILD / f"{name}.manifest.json").read_bytes()


def path(name: str) -> Path:
    _built()
    return BUILD / f"{name}.wasm"
