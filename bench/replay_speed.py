"""Replay verification speed versus live ticking.

DESIGN.md section 8 target: replay at least as fast as live ticking (ratio >= 1).

For each agent: run N live ticks with AgentRuntime.tick() (replay window = N), build
the ReplayBundle of that window the way tests/unit/test_replay.py does, and verify it
with Replayer.replay_bundle() (fresh instance, resume from the start checkpoint,
host calls answered from the record, state hash / fuel / cost / hint compared after
every tick). Also timed: the same replay from the bundle's bytes (decode + replay),
which is what `igor replay BUNDLE` does. Median of REPS runs.

ratio = replay ticks/s / live ticks/s.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import common
from bench.common import Options, Result

NAME = "replay_speed"
AGENTS = ("counter", "heartbeat")
TARGET = 1.0
N = 5_000
REPS = 3


def one_run(engine, replayer, name: str, n: int) -> dict[str, float]:
    from igor import bundle as bundle_mod
    from igor import manifest as manifest_mod
    from igor.runtime import AgentRuntime

    wasm, manifest_json = common.agent(name)
    runtime = AgentRuntime(
        engine,
        wasm,
        manifest_mod.parse(manifest_json),
        agent_id=f"bench/{name}",
        budget=10**15,
        price=1000,
        window_size=n,
    )
    t0 = time.perf_counter()
    for _ in range(n):
        runtime.tick()
    live_s = time.perf_counter() - t0

    bundle = runtime.replay_bundle()
    t0 = time.perf_counter()
    result = replayer.replay_bundle(bundle)
    replay_s = time.perf_counter() - t0
    if not result.ok or result.ticks_replayed != n:
        raise RuntimeError(f"replay of {name} did not verify: {result.summary()}")

    data = bundle.encode()
    t0 = time.perf_counter()
    decoded = bundle_mod.decode(data)
    decode_s = time.perf_counter() - t0
    result = replayer.replay_bundle(decoded)
    from_bytes_s = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError(f"replay of {name} from bytes did not verify: {result.summary()}")
    return {
        "live_tps": n / live_s,
        "replay_tps": n / replay_s,
        "replay_from_bytes_tps": n / from_bytes_s,
        "bundle_decode_us_per_tick": decode_s / n * 1e6,
        "bundle_bytes": len(data),
    }


def run(opts: Options) -> Result:
    from igor.host import Engine
    from igor.replay import Replayer

    n = opts.scaled(N, 200)
    engine = Engine()
    replayer = Replayer(engine)
    per_agent: dict[str, dict[str, Any]] = {}
    try:
        for name in AGENTS:
            one_run(engine, replayer, name, min(n, 200))  # warm-up: compile, caches
            runs = [one_run(engine, replayer, name, n) for _ in range(REPS)]
            fig: dict[str, Any] = {
                key: round(statistics.median(r[key] for r in runs), 1)
                for key in ("live_tps", "replay_tps", "replay_from_bytes_tps")
            }
            fig["bundle_decode_us_per_tick"] = round(
                statistics.median(r["bundle_decode_us_per_tick"] for r in runs), 1
            )
            fig["ratio"] = common.ratio(fig["replay_tps"], fig["live_tps"])
            fig["ratio_from_bytes"] = common.ratio(fig["replay_from_bytes_tps"], fig["live_tps"])
            fig["ratios_per_run"] = [common.ratio(r["replay_tps"], r["live_tps"]) for r in runs]
            fig["bundle_bytes"] = runs[0]["bundle_bytes"]
            per_agent[name] = fig
            common.detail(
                opts,
                f"{name}: live {fig['live_tps']:.0f} ticks/s, replay {fig['replay_tps']:.0f} "
                f"ticks/s (from bundle bytes {fig['replay_from_bytes_tps']:.0f}, decode "
                f"{fig['bundle_decode_us_per_tick']:.0f}us/tick), ratio "
                f"{fig['ratio']:.2f} (runs {fig['ratios_per_run']}), bundle "
                f"{fig['bundle_bytes']} B for {n} ticks",
            )
    finally:
        engine.close()
    worst = min(fig["ratio"] for fig in per_agent.values())
    met = worst >= TARGET
    parts = [
        f"{name} ratio={fig['ratio']:.2f} (replay {fig['replay_tps']:.0f}/s, "
        f"live {fig['live_tps']:.0f}/s, from bytes {fig['ratio_from_bytes']:.2f})"
        for name, fig in per_agent.items()
    ]
    first = per_agent[AGENTS[0]]
    line = (
        f"{NAME}: ratio={first['ratio']:.2f} (replay {first['replay_tps']:.0f} ticks/s, "
        f"live {first['live_tps']:.0f} ticks/s) n={n}x{REPS} | "
        + " | ".join(parts)
        + f" | target>={TARGET:g}x {'met' if met else 'MISSED'}"
    )
    return Result(
        NAME,
        line,
        {
            "ratio": first["ratio"],
            "ratio_min": worst,
            "target_min_ratio": TARGET,
            "target_met": met,
            "n": n,
            "reps": REPS,
            "agents": per_agent,
        },
    )
