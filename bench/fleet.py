"""1,000 IgorAgents applied at once: time until all are Running, and operator RSS.

Creates AGENTS agents as fast as the client can (the same as a `kubectl apply` of
one big file) against three real node daemons and the operator (real processes),
then waits until every agent's status says Running and reports the time from the
first create, the operator's RSS (target: under 250 MB) and the nodes' RSS.
Checkpoints every 60 s, so the figure is scheduling and start-up, not steady
checkpoint traffic.
"""

from __future__ import annotations

import time

from bench import common
from bench.cluster import cluster, rss_bytes
from bench.common import Options, Result

NAME = "fleet"
AGENTS = 1000


def run(opts: Options) -> Result:
    n = opts.scaled(AGENTS, minimum=50)
    with cluster(3, capacity=n) as c:
        t0 = time.monotonic()
        for i in range(n):
            c.create_agent(f"f{i:05d}", checkpointIntervalSeconds=60)
        created = time.monotonic() - t0
        common.detail(opts, f"created {n} IgorAgents in {created:.1f}s")
        last_report = 0.0
        while True:
            items = c.custom.list_namespaced_custom_object(
                "igor.dev", "v1alpha1", c.namespace, "igoragents"
            )["items"]
            running = sum(1 for a in items if (a.get("status") or {}).get("phase") == "Running")
            elapsed = time.monotonic() - t0
            if running == n:
                break
            if elapsed - last_report > 5:
                common.detail(opts, f"{running}/{n} Running after {elapsed:.0f}s")
                last_report = elapsed
            if elapsed > 600:
                raise RuntimeError(f"only {running}/{n} Running after 600 s")
            time.sleep(0.5)
        all_running = time.monotonic() - t0
        operator_rss = rss_bytes(c.stack.operator.pid)
        node_rss = [rss_bytes(p.pid) for p in c.stack.nodes.values()]
        per_node = {}
        for a in items:
            node = a["status"]["node"]
            per_node[node] = per_node.get(node, 0) + 1
    figures = {
        "agents": n,
        "create_s": round(created, 1),
        "all_running_s": round(all_running, 1),
        "operator_rss_mb": round(operator_rss / 2**20, 1),
        "node_rss_mb": [round(r / 2**20, 1) for r in node_rss],
        "spread": per_node,
    }
    line = (
        f"{NAME}: {n} agents all Running in {all_running:.1f}s (target 60 s; creating them "
        f"took {created:.1f}s) operator_rss={figures['operator_rss_mb']}MB (target 250) "
        f"spread={sorted(per_node.values())}"
    )
    return Result(NAME, line, figures)
