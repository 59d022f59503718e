"""Shared helpers: timing with perf_counter_ns, percentiles, run conditions, example agents.

A benchmark module exposes ``NAME``, a docstring (its description) and
``run(opts: Options) -> Result``. ``Result.line`` is the one summary line;
``Result.figures`` holds every number, JSON-serialisable.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AGENTS_BUILD = REPO / "agents" / "build"


@dataclass(frozen=True)
class Options:
    quick: bool = False  # a smoke run: about a tenth of the work, figures are noisier
    verbose: bool = True  # print detail lines (tables, per-agent figures) as they come

    def scaled(self, n: int, minimum: int = 1) -> int:
        return max(minimum, n // 10) if self.quick else n


@dataclass
class Result:
    name: str
    line: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"bench": self.name, "summary": self.line}
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        if self.error is not None:
            doc["error"] = self.error
        doc.update(self.figures)
        return doc


class Skip(Exception):
    """Raised by a benchmark that cannot run here; the message is the reason."""


def detail(opts: Options, text: str) -> None:
    if opts.verbose:
        print(f"  {text}", flush=True)


# --- timing -----------------------------------------------------------------------------


def now_ns() -> int:
    return time.perf_counter_ns()


def time_each(fn: Callable[[], object], n: int) -> list[int]:
    """Call fn n times; the duration of each call in ns (perf_counter_ns costs ~0.1 us)."""
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def interleaved(
    variants: dict[str, Callable[[], object]],
    n: int,
    *,
    chunk: int = 250,
    warmup: int = 200,
    between: Callable[[str], None] | None = None,
) -> dict[str, list[int]]:
    """Time each variant n times, in alternating chunks so that load from other processes
    spreads evenly over all of them. Returns per-call durations (ns) per variant.

    `between(name)` runs outside the timed region before each chunk (to reset state).
    """
    for name, fn in variants.items():
        if between:
            between(name)
        for _ in range(warmup):
            fn()
    samples: dict[str, list[int]] = {name: [] for name in variants}
    gc.collect()
    done = 0
    order = list(variants)
    while done < n:
        k = min(chunk, n - done)
        for name in order:
            if between:
                between(name)
            samples[name].extend(time_each(variants[name], k))
        order = order[1:] + order[:1]
        done += k
    return samples


def repeat_until(fn: Callable[[], object], *, min_reps: int, min_seconds: float) -> list[int]:
    """Call fn at least min_reps times and for at least min_seconds; per-call ns."""
    out: list[int] = []
    deadline = time.perf_counter() + min_seconds
    while len(out) < min_reps or time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


# --- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def stats_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """Mean and percentiles of ns samples, in microseconds (3 decimals)."""
    return {
        "mean_us": round(mean(samples_ns) / 1000, 3),
        "p50_us": round(percentile(samples_ns, 50) / 1000, 3),
        "p90_us": round(percentile(samples_ns, 90) / 1000, 3),
        "p99_us": round(percentile(samples_ns, 99) / 1000, 3),
        "n": len(samples_ns),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


def fmt_us(us: float) -> str:
    if us >= 10_000:
        return f"{us / 1000:.1f}ms"
    if us >= 1_000:
        return f"{us / 1000:.2f}ms"
    if us >= 100:
        return f"{us:.0f}us"
    return f"{us:.1f}us"


def fmt_bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


# --- run conditions ---------------------------------------------------------------------


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "wasmtime": pkg("wasmtime"),
        "cbor2": pkg("cbor2"),
        "platform": platform.platform(),
        "loadavg": loadavg(),
        "commit": commit or None,
        "argv": sys.argv[1:],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_line(env: dict[str, Any]) -> str:
    load = " ".join(str(x) for x in env["loadavg"]) if env["loadavg"] else "n/a"
    return (
        f"# env: cpus={env['cpu_count']} (affinity {env['cpu_affinity']}) "
        f"cpu={env['cpu_model']!r} python={env['python']} wasmtime={env['wasmtime']} "
        f"cbor2={env['cbor2']} loadavg={load} commit={env['commit']} date={env['date']}"
    )


# --- example agents ---------------------------------------------------------------------

_agents_built = False


def agent(name: str) -> tuple[bytes, bytes]:
    """(wasm, manifest JSON) of an example agent, building agents/ if needed."""
    global _agents_built
    if not _agents_built:
        _agents_built = True
        try:
            subprocess.run(
                ["make", "-s", "-C", str(REPO / "agents")],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            # Prebuilt modules still do; missing ones are a skip below.
            print(f"  (make -C agents failed: {exc}; using what is in agents/build)")
    wasm, man = AGENTS_BUILD / f"{name}.wasm", AGENTS_BUILD / f"{name}.manifest.json"
    if not (wasm.is_file() and man.is_file()):
        raise Skip(f"agents/build/{name}.wasm is missing and could not be built (needs clang)")
    return wasm.read_bytes(), man.read_bytes()
