"""Agents per node process: N counter agents at 1 tick/s on one real node daemon.

Starts the real local control plane, uploads the counter module, creates N
IgorAgents bound to one node (status written the way the operator binds them),
starts one `igor_node` process, waits until all N run, lets start-up commits
settle, then measures for MEASURE_S seconds: tick lag p50/p99/max (from the
node's /v1/stats, exact over its recent ticks), achieved tick rate, the node's
RSS and its CPU use (utime + stime from /proc over the window, in cores).
Self-verification stays on (every 5 ticks, the default), so its cost is
included. Checkpoints are every 300 s so the measurement is the tick path, not
API-server writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench import common
from bench.cluster import cluster
from bench.common import Options, Result

NAME = "node_scale"
AGENTS = 1000
MEASURE_S = 30
SETTLE_S = int(os.environ.get("IGOR_BENCH_SETTLE_S", "30"))


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(opts: Options) -> Result:
    n = int(os.environ.get("IGOR_BENCH_AGENTS", "0")) or opts.scaled(AGENTS, minimum=50)
    measure = 10 if opts.quick else MEASURE_S
    with cluster(1, operator=False, capacity=n + 10) as c:
        started = time.monotonic()
        for i in range(n):
            c.create_agent(f"a{i:05d}", checkpointIntervalSeconds=300)
            c.bind(f"a{i:05d}", "n0")
        common.detail(
            opts, f"created and bound {n} IgorAgents in {time.monotonic() - started:.1f}s"
        )
        started = time.monotonic()
        while (stats := c.stats("n0"))["agents"] < n:
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {stats['agents']}/{n} agents started in 600 s")
            time.sleep(1)
        ramp = time.monotonic() - started
        common.detail(opts, f"node runs all {n} agents after {ramp:.1f}s")
        time.sleep(SETTLE_S)  # start-up commits (one per agent) must not count
        pid = c.stack.nodes["n0"].pid
        before, cpu0, t0 = c.stats("n0"), _proc_cpu_seconds(pid), time.monotonic()
        time.sleep(measure)
        after, cpu1, t1 = c.stats("n0"), _proc_cpu_seconds(pid), time.monotonic()
    rate = (after["ticks"] - before["ticks"]) / (t1 - t0)
    cores = (cpu1 - cpu0) / (t1 - t0)
    figures = {
        "agents": n,
        "measure_s": round(t1 - t0, 1),
        "ramp_s": round(ramp, 1),
        "ticks_per_s": round(rate, 1),
        "expected_ticks_per_s": n,
        "tick_lag_p50_ms": after["tickLagP50Ms"],
        "tick_lag_p99_ms": after["tickLagP99Ms"],
        "tick_lag_max_ms": after["tickLagMaxMs"],
        "rss_mb": round(after["rssBytes"] / 2**20, 1),
        "cpu_cores": round(cores, 3),
    }
    line = (
        f"{NAME}: agents={n} tick_lag p50={figures['tick_lag_p50_ms']}ms "
        f"p99={figures['tick_lag_p99_ms']}ms rate={rate:.0f}/s (want {n}/s) "
        f"rss={figures['rss_mb']}MB cpu={cores:.2f} cores"
    )
    return Result(NAME, line, figures)
