"""Local control plane start time and the warm control-plane build.

Starts igor.controlplane.LocalControlPlane STARTS times (each in a fresh temporary
folder: new certificates, new etcd data, free ports; the CRDs in crds/ applied and
Established; kube-controller-manager spawned) and reports, from its `timings`
(seconds since start() began), p50 and max of: etcd healthy, kube-apiserver ready
(/readyz and the default namespace), CRDs established, total. Each control plane is
stopped before the next starts.

Then times `bash hack/controlplane/build.sh` with warm inputs: it must be a cache hit
(prints the bin folder without building). It runs only if the cache folder for the
current inputs is complete, so this benchmark never starts a multi-minute build.

Skips with a reason when the binaries (or `go`, for the build part) are missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Options, Result

NAME = "controlplane"
STARTS = 3
BUILD_SH = common.REPO / "hack" / "controlplane" / "build.sh"
BUILD_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


def start_times(opts: Options) -> dict[str, Any]:
    from igor.controlplane import LocalControlPlane

    crds = sorted((common.REPO / "crds").glob("*.yaml"))
    starts = 1 if opts.quick else STARTS
    runs: list[dict[str, float]] = []
    for i in range(starts):
        with tempfile.TemporaryDirectory(prefix="igor-bench-cp-") as tmp:
            plane = LocalControlPlane(Path(tmp), crd_files=crds)
            plane.start()
            try:
                timings = dict(plane.timings)
            finally:
                t0 = time.monotonic()
                plane.stop()
                timings["stop"] = time.monotonic() - t0
        runs.append({k: round(v, 3) for k, v in timings.items()})
        common.detail(
            opts,
            f"start {i + 1}/{starts}: " + ", ".join(f"{k} {v:.2f}s" for k, v in runs[-1].items()),
        )
    keys = [k for k in ("etcd", "apiserver", "crds", "total", "stop") if k in runs[0]]
    return {
        "starts": len(runs),
        "crd_files": [p.name for p in crds],
        "p50_s": {k: round(common.percentile([r[k] for r in runs], 50), 3) for k in keys},
        "max_s": {k: round(max(r[k] for r in runs), 3) for k in keys},
        "runs": runs,
    }


def build_cache_dir() -> tuple[str, Path] | None:
    """The cache key and bin folder build.sh would use now (None without `go`)."""
    go = shutil.which("go")
    if go is None:
        return None
    here = BUILD_SH.parent
    go_version = subprocess.run(
        [go, "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "GOTOOLCHAIN": "local"},  # as build.sh exports it
    ).stdout
    blob = b"".join((here / f).read_bytes() for f in ("go.mod", "go.sum", "build.sh"))
    key = hashlib.sha256(blob + go_version.encode()).hexdigest()[:16]
    if root := os.environ.get("IGOR_CACHE_DIR"):
        cache_root = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_root = Path(xdg) / "igor"
    return key, cache_root / "controlplane" / key / "bin"


def warm_build(opts: Options) -> dict[str, Any]:
    where = build_cache_dir()
    if where is None:
        return {"skipped": "go is not on PATH (build.sh keys its cache on `go version`)"}
    key, bin_dir = where
    missing = [b for b in BUILD_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        return {
            "skipped": f"cache {key} lacks {', '.join(missing)}: build.sh would build "
            "(minutes); run `make setup` first"
        }
    times = []
    for _ in range(1 if opts.quick else 3):
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["bash", str(BUILD_SH)], capture_output=True, text=True, timeout=120, check=True
        )
        times.append(time.perf_counter() - t0)
    out = proc.stdout.strip().splitlines()
    cache_hit = "up to date" in proc.stderr and out[-1:] == [str(bin_dir)]
    fig = {
        "key": key,
        "cache_hit": cache_hit,
        "p50_s": round(common.percentile(times, 50), 3),
        "max_s": round(max(times), 3),
        "runs_s": [round(t, 3) for t in times],
    }
    common.detail(
        opts,
        f"warm build.sh: p50 {fig['p50_s']:.3f}s, max {fig['max_s']:.3f}s, "
        f"cache hit: {cache_hit} (key {key})",
    )
    return fig


def run(opts: Options) -> Result:
    from igor.controlplane import BinariesNotFound, binaries

    try:
        for name in binaries.REQUIRED:
            binaries.find(name)
    except BinariesNotFound as exc:
        raise common.Skip(f"control plane binaries missing: {exc}") from None
    starts = start_times(opts)
    build = warm_build(opts)
    p50, mx = starts["p50_s"], starts["max_s"]
    line = (
        f"{NAME}: start p50={p50['total']:.2f}s max={mx['total']:.2f}s "
        f"(etcd {p50['etcd']:.2f}s, apiserver ready {p50['apiserver']:.2f}s"
        + (f", crds {p50['crds']:.2f}s" if "crds" in p50 else "")
        + f") n={starts['starts']} | "
        + (
            f"warm build.sh {build['p50_s']:.2f}s cache_hit={build['cache_hit']}"
            if "skipped" not in build
            else f"warm build.sh skipped: {build['skipped']}"
        )
    )
    return Result(NAME, line, {"start": starts, "warm_build": build})
