"""Migration latency and downtime over repeated migrations on a local control plane.

One counter agent (tick interval 100 ms) moves back and forth between two real
node daemons, MIGRATIONS times, each through a MigrationRequest (operator as a
real process, replay gate included). Latency runs from the client's create call
to the moment the target node itself reports the agent ticking past the
checkpoint it restored (its API polled every 10 ms, so +-10 ms). Downtime is the
operator's own figure (freeze to the target's first tick). At the end the stored
checkpoint must show counter == tick: no tick lost or repeated over all moves.
"""

from __future__ import annotations

import base64
import struct
import time

from bench import common
from bench.cluster import cluster
from bench.common import Options, Result

NAME = "migration"
MIGRATIONS = 100


def run(opts: Options) -> Result:
    n = opts.scaled(MIGRATIONS, minimum=10)
    latencies_ms: list[float] = []
    downtime_ms: list[float] = []
    downtime_ticks: list[int] = []
    with cluster(2) as c:
        c.create_agent("mover", tick={"intervalMillis": 100}, checkpointIntervalSeconds=5)
        deadline = time.monotonic() + 60
        while c.agent_status("mover").get("phase") != "Running":
            if time.monotonic() > deadline:
                raise RuntimeError("agent never reached Running")
            time.sleep(0.1)
        for i in range(n):
            status = c.agent_status("mover")
            source = status["node"]
            target = "n1" if source == "n0" else "n0"
            t0 = time.monotonic()
            c.custom.create_namespaced_custom_object(
                "igor.dev",
                "v1alpha1",
                c.namespace,
                "migrationrequests",
                {
                    "apiVersion": "igor.dev/v1alpha1",
                    "kind": "MigrationRequest",
                    "metadata": {"name": f"m{i:04d}"},
                    "spec": {"agent": "mover", "targetNode": target},
                },
            )
            while True:
                # Ticking on the target: the node holds it and has ticked past the
                # checkpoint it restored.
                seen = c.on_node(target, "mover")
                if (
                    seen
                    and seen["ticking"]
                    and seen["checkpoint"]
                    and seen["tick"] > seen["checkpoint"]["tick"]
                ):
                    break
                if time.monotonic() - t0 > 60:
                    raise RuntimeError(f"migration {i} did not complete: {c.agent_status('mover')}")
                time.sleep(0.01)
            latencies_ms.append((time.monotonic() - t0) * 1000)
            while True:
                mr = (
                    c.custom.get_namespaced_custom_object(
                        "igor.dev", "v1alpha1", c.namespace, "migrationrequests", f"m{i:04d}"
                    ).get("status")
                    or {}
                )
                if mr.get("phase") in ("Succeeded", "Failed"):
                    break
                time.sleep(0.02)
            if mr["phase"] != "Succeeded":
                raise RuntimeError(f"migration {i} failed: {mr.get('message')}")
            down = mr.get("downtime") or {}
            downtime_ms.append(down.get("milliseconds", 0))
            downtime_ticks.append(down.get("ticks", 0))
            if (i + 1) % 10 == 0:
                common.detail(opts, f"{i + 1}/{n} migrations, last {latencies_ms[-1]:.0f} ms")
        time.sleep(6)  # one checkpoint interval: the latest state reaches the store
        cm = c.core.read_namespaced_config_map("igor-ckpt-mover", c.namespace)
        from igor import checkpoint as ckpt

        cp = ckpt.decode(base64.b64decode(cm.binary_data["checkpoint"]))
        counter = struct.unpack_from("<Q", cp.state)[0]
    figures = {
        "migrations": n,
        "latency_ms": {
            "p50": round(common.percentile(latencies_ms, 50), 1),
            "p99": round(common.percentile(latencies_ms, 99), 1),
            "max": round(max(latencies_ms), 1),
        },
        "downtime_ms": {
            "p50": common.percentile(downtime_ms, 50),
            "p99": common.percentile(downtime_ms, 99),
        },
        "downtime_ticks": {
            "p50": common.percentile(downtime_ticks, 50),
            "p99": common.percentile(downtime_ticks, 99),
            "max": max(downtime_ticks),
        },
        "final_epoch_major": cp.epoch.major,
        "counter_equals_tick": counter == cp.tick,
    }
    line = (
        f"{NAME}: n={n} latency p50={figures['latency_ms']['p50']}ms "
        f"p99={figures['latency_ms']['p99']}ms downtime p50={figures['downtime_ms']['p50']}ms "
        f"p99={figures['downtime_ms']['p99']}ms ({figures['downtime_ticks']['max']} tick slots "
        f"max) counter==tick={counter == cp.tick} epoch.major={cp.epoch.major}"
    )
    return Result(NAME, line, figures)
