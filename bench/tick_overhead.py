"""Tick path overhead: igor's tick versus a bare wasmtime call of the same export.

DESIGN.md section 8 target: at most 2x.

Variants, each timed per call, in interleaved chunks, same process, same module:

  bare          a plain wasmtime Engine/Store/Instance (default config) of the agent's
                module; host functions do the same live work as igor's (clock_now returns
                time.time_ns(), rand_bytes writes os.urandom into guest memory, log_emit
                reads the message) with no recording, no metering, no limits; the loop
                calls agent_tick.
  bare_capture  bare, plus what any state-capturing host must do after a tick:
                agent_checkpoint + agent_checkpoint_ptr + read the bytes + sha256.
  instance      igor's AgentInstance.tick(): fuel and deadline armed before the call and
                fuel read after it, host calls recorded by a LiveSource.
  capture       igor's AgentInstance.capture_state() alone (two metered export calls + read).
  igor          AgentRuntime.tick(): budget check, instance.tick(), capture_state(), sha256
                of the post-state, fuel charged at the price, a validated TickRecord
                appended to the hash-chained event log (canonical CBOR + sha256), and a
                replay-window snapshot.

ratio = igor p50 / bare p50 (median per-call time; the mean is reported too).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import wasmtime

from bench import common
from bench.common import Options, Result

NAME = "tick_overhead"
AGENTS = ("counter", "heartbeat")
TARGET = 2.0
N = 20_000


class BareAgent:
    """The same module on plain wasmtime: no recording, no fuel, no deadline, no limits."""

    def __init__(self, wasm: bytes):
        self.engine = wasmtime.Engine()
        self.store = store = wasmtime.Store(self.engine)
        module = wasmtime.Module(self.engine, wasm)
        memory: list[Any] = [None]
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()

        def clock_now() -> int:
            return time.time_ns()

        def rand_bytes(ptr: int, length: int) -> int:
            memory[0].write(store, os.urandom(length), ptr)
            return 0

        def log_emit(ptr: int, length: int) -> None:
            bytes(memory[0].read(store, ptr, ptr + length))

        funcs = {
            "clock_now": wasmtime.Func(store, wasmtime.FuncType([], [i64]), clock_now),
            "rand_bytes": wasmtime.Func(store, wasmtime.FuncType([i32, i32], [i32]), rand_bytes),
            "log_emit": wasmtime.Func(store, wasmtime.FuncType([i32, i32], []), log_emit),
        }
        imports = []
        for imp in module.imports:
            if imp.name not in funcs:
                raise common.Skip(f"bare host does not implement {imp.module}.{imp.name}")
            imports.append(funcs[imp.name])
        instance = wasmtime.Instance(store, module, imports)
        exports = instance.exports(store)
        memory[0] = self.memory = exports["memory"]
        exports["agent_init"](store)
        self._tick = exports["agent_tick"]
        self._checkpoint = exports["agent_checkpoint"]
        self._checkpoint_ptr = exports["agent_checkpoint_ptr"]

    def tick(self) -> object:
        return self._tick(self.store)

    def tick_and_capture(self) -> bytes:
        self._tick(self.store)
        size = self._checkpoint(self.store)
        ptr = self._checkpoint_ptr(self.store)
        state = bytes(self.memory.read(self.store, ptr, ptr + size))
        return hashlib.sha256(state).digest()


def measure_agent(engine, name: str, n: int, opts: Options) -> dict[str, Any]:
    from igor import manifest as manifest_mod
    from igor.host import AgentInstance
    from igor.hostcalls import HostState, LiveSource
    from igor.runtime import AgentRuntime

    wasm, manifest_json = common.agent(name)
    manifest = manifest_mod.parse(manifest_json)
    bare = BareAgent(wasm)
    runtime = AgentRuntime(
        engine,
        wasm,
        manifest,
        agent_id=f"bench/{name}",
        budget=10**15,
        price=1000,
    )
    source = LiveSource()
    host_state = HostState(
        source=source,
        budget=lambda: 10**15,
        price=lambda: 1000,
        options={cap: c.options for cap, c in manifest.capabilities.items()},
    )
    instance = AgentInstance(engine, engine.compile(wasm), manifest, host_state)
    instance.init()

    def reset(variant: str) -> None:
        # The instance-only variants record into a LiveSource no one drains: drain it
        # between chunks, outside the timed region.
        source.begin_tick()

    samples = common.interleaved(
        {
            "bare": bare.tick,
            "bare_capture": bare.tick_and_capture,
            "instance": instance.tick,
            "capture": instance.capture_state,
            "igor": runtime.tick,
        },
        n,
        between=reset,
    )
    # The igor loop really ticked: its log is hash-chained and as long as the loop.
    assert runtime.log.last_tick == runtime.tick_number == n + 200
    stats = {variant: common.stats_us(s) for variant, s in samples.items()}
    p50 = {variant: s["p50_us"] for variant, s in stats.items()}
    mean = {variant: s["mean_us"] for variant, s in stats.items()}
    return {
        "ratio": common.ratio(p50["igor"], p50["bare"]),
        "ratio_mean": common.ratio(mean["igor"], mean["bare"]),
        "instance_ratio": common.ratio(p50["instance"], p50["bare"]),
        "ratio_vs_bare_capture": common.ratio(p50["igor"], p50["bare_capture"]),
        "host_calls_per_tick": len(runtime.log.records[-1].calls),
        "fuel_per_tick": runtime.log.records[-1].fuel,
        "variants": stats,
    }


def run(opts: Options) -> Result:
    from igor.host import Engine

    n = opts.scaled(N, 500)
    engine = Engine()
    per_agent: dict[str, dict[str, Any]] = {}
    try:
        for name in AGENTS:
            fig = measure_agent(engine, name, n, opts)
            per_agent[name] = fig
            v = fig["variants"]
            common.detail(
                opts,
                f"{name}: p50 bare {common.fmt_us(v['bare']['p50_us'])}, "
                f"bare+capture {common.fmt_us(v['bare_capture']['p50_us'])}, "
                f"instance.tick {common.fmt_us(v['instance']['p50_us'])}, "
                f"capture_state {common.fmt_us(v['capture']['p50_us'])}, "
                f"runtime.tick {common.fmt_us(v['igor']['p50_us'])} "
                f"(p99 {common.fmt_us(v['igor']['p99_us'])}); ratio {fig['ratio']:.2f} "
                f"(mean-based {fig['ratio_mean']:.2f}), instance-only {fig['instance_ratio']:.2f}, "
                f"vs bare+capture {fig['ratio_vs_bare_capture']:.2f}",
            )
    finally:
        engine.close()
    worst = max(fig["ratio"] for fig in per_agent.values())
    met = worst <= TARGET
    parts = []
    for name, fig in per_agent.items():
        v = fig["variants"]
        parts.append(
            f"{name} ratio={fig['ratio']:.2f} (igor {common.fmt_us(v['igor']['p50_us'])}/tick, "
            f"bare {common.fmt_us(v['bare']['p50_us'])}/call) "
            f"instance_only={fig['instance_ratio']:.2f}"
        )
    first = per_agent[AGENTS[0]]
    v0 = first["variants"]
    line = (
        f"{NAME}: ratio={first['ratio']:.2f} (igor {common.fmt_us(v0['igor']['p50_us'])}/tick, "
        f"bare {common.fmt_us(v0['bare']['p50_us'])}/call) n={n} | "
        + " | ".join(parts)
        + f" | target<={TARGET:g}x {'met' if met else 'MISSED'}"
    )
    return Result(
        NAME,
        line,
        {
            "ratio": first["ratio"],
            "ratio_max": worst,
            "target_max_ratio": TARGET,
            "target_met": met,
            "n": n,
            "agents": per_agent,
        },
    )
