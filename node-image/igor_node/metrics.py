"""Prometheus metrics of one node (its own registry, so that tests can run several)."""

from __future__ import annotations

import collections
import resource

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.ticks = Counter("igor_node_ticks_total", "Ticks executed", registry=r)
        self.tick_failures = Counter(
            "igor_node_tick_failures_total", "Ticks that failed", ["kind"], registry=r
        )
        self.tick_lag = Histogram(
            "igor_node_tick_lag_seconds",
            "Delay between a tick's due time and its start",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.fuel = Counter("igor_node_fuel_total", "Fuel consumed by ticks", registry=r)
        self.checkpoints = Counter(
            "igor_node_checkpoints_total", "Checkpoint writes", ["result"], registry=r
        )
        self.verifications = Counter(
            "igor_node_verifications_total", "Replay self-verifications", ["verdict"], registry=r
        )
        self.divergences = Counter(
            "igor_node_divergences_total", "Replay divergences detected", registry=r
        )
        self.fencing = Counter(
            "igor_node_fencing_events_total",
            "Self-fencing and superseded-instance events",
            ["kind"],
            registry=r,
        )
        self.agents = Gauge("igor_node_agents_running", "Agents held by this node", registry=r)
        # Exact recent lags for /v1/stats (the histogram's buckets are too coarse for p99).
        self.recent_lags: collections.deque[float] = collections.deque(maxlen=20_000)

    def observe_lag(self, seconds: float) -> None:
        self.tick_lag.observe(seconds)
        self.recent_lags.append(seconds)

    def stats(self) -> dict[str, float | int]:
        lags = sorted(self.recent_lags)

        def pct(p: float) -> float:
            return round(lags[min(len(lags) - 1, int(p * len(lags)))] * 1000, 3) if lags else 0.0

        return {
            "samples": len(lags),
            "tickLagP50Ms": pct(0.50),
            "tickLagP99Ms": pct(0.99),
            "tickLagMaxMs": round(lags[-1] * 1000, 3) if lags else 0.0,
            "maxRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rssBytes": _current_rss(),
            "ticks": int(self.ticks._value.get()),
        }


def _current_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
