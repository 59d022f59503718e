"""The replay engine: re-execute recorded ticks and compare them with the record.

Shaped like Temporal's replayer: give it what was recorded (a starting
checkpoint and the tick records after it, usually in a ReplayBundle) and it
returns a result; it never touches the world. Host calls are answered from the
record, fuel and the deadline bound every call, and after every tick the state
hash, fuel, cost and "more work" hint are compared with the record. The first
difference stops the replay and is reported with the host-call difference.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from igor import errors, metering
from igor import manifest as manifest_mod
from igor.bundle import ReplayBundle
from igor.checkpoint import Checkpoint
from igor.eventlog import CallDiff, TickRecord
from igor.host import AgentInstance, Engine, Limits
from igor.hostcalls import HostState, RecordedSource, ReplayMismatch


class Verdict(enum.StrEnum):
    VERIFIED = "Verified"
    DIVERGED = "Diverged"
    ERROR = "Error"


@dataclass(frozen=True)
class Divergence:
    tick: int
    what: str  # state | calls | fuel | cost | hint | trap
    expected_hash: bytes
    actual_hash: bytes | None
    call_diff: CallDiff | None = None
    detail: str = ""

    def describe(self) -> str:
        parts = [f"tick {self.tick}: {self.what} diverged"]
        if self.call_diff is not None:
            parts.append(f"host calls: {self.call_diff}")
        if self.detail:
            parts.append(self.detail)
        parts.append(f"expected state sha256:{self.expected_hash.hex()}")
        actual = self.actual_hash.hex() if self.actual_hash else "(tick did not complete)"
        parts.append(f"actual sha256:{actual}")
        return "; ".join(parts)


@dataclass(frozen=True)
class ReplayResult:
    verdict: Verdict
    ticks_replayed: int
    first_tick: int
    last_tick: int
    divergence: Divergence | None = None
    error: str | None = None
    duration_s: float = 0.0
    final_state_hash: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VERIFIED

    def summary(self) -> str:
        span = f"ticks {self.first_tick}..{self.last_tick}"
        if self.verdict is Verdict.VERIFIED:
            return f"verified {self.ticks_replayed} ticks ({span}) in {self.duration_s:.3f}s"
        if self.verdict is Verdict.DIVERGED and self.divergence:
            return f"DIVERGED at {self.divergence.describe()}"
        return f"replay error: {self.error}"


ProgressFn = Callable[[int, int], None]


class Replayer:
    """Replays with zero live side effects; reusable across many replays."""

    def __init__(self, engine: Engine | None = None, limits: Limits = Limits()):
        self.engine = engine or Engine()
        self.limits = limits

    def replay_bundle(
        self, bundle: ReplayBundle, *, until: int | None = None, progress: ProgressFn | None = None
    ) -> ReplayResult:
        return self.replay(
            bundle.module,
            bundle.manifest,
            bundle.checkpoint,
            bundle.records,
            until=until,
            progress=progress,
        )

    def replay(
        self,
        wasm: bytes,
        manifest_json: bytes,
        start: Checkpoint,
        records: Sequence[TickRecord],
        *,
        until: int | None = None,
        progress: ProgressFn | None = None,
    ) -> ReplayResult:
        started = time.perf_counter()
        todo = [r for r in records if until is None or r.tick <= until]
        first = todo[0].tick if todo else start.tick
        last = todo[-1].tick if todo else start.tick

        def result(verdict: Verdict, n: int, **kw) -> ReplayResult:
            return ReplayResult(
                verdict, n, first, last, duration_s=time.perf_counter() - started, **kw
            )

        try:
            manifest = manifest_mod.parse(manifest_json)
            instance, source, budget = self._prepare(wasm, manifest, start)
        except (errors.AgentError, manifest_mod.ManifestError) as exc:
            return result(Verdict.ERROR, 0, error=str(exc))

        try:
            return self._replay_records(instance, source, budget, start, todo, progress, result)
        finally:
            # Release the store now: left to the garbage collector, many replay
            # stores are freed at once, and unmapping them stalls the event loop.
            instance.store.close()

    def _replay_records(self, instance, source, budget, start, todo, progress, result):
        state_hash = hashlib.sha256(start.state).digest()
        for n, record in enumerate(todo):
            if record.tick != start.tick + n + 1:
                return result(
                    Verdict.ERROR,
                    n,
                    error=f"record {n} is for tick {record.tick}, expected {start.tick + n + 1}",
                )
            outcome = self._replay_tick(instance, source, budget, start.price, record)
            if isinstance(outcome, Divergence):
                return result(Verdict.DIVERGED, n, divergence=outcome)
            budget[0] -= record.cost
            state_hash = record.post_state_hash
            if progress:
                progress(n + 1, len(todo))
        return result(Verdict.VERIFIED, len(todo), final_state_hash=state_hash)

    def _prepare(self, wasm: bytes, manifest, start: Checkpoint):
        compiled = self.engine.compile(wasm, start.module_digest)
        if manifest.digest != start.manifest_digest:
            raise errors.ResumeRefused("manifest does not match the checkpoint's manifest digest")
        source = RecordedSource()
        budget = [start.budget]
        host_state = HostState(
            source=source,
            budget=lambda: budget[0],
            price=lambda: start.price,
            options={name: cap.options for name, cap in manifest.capabilities.items()},
        )
        instance = AgentInstance(self.engine, compiled, manifest, host_state, self.limits)
        # No agent_init: the agent must rebuild everything from its checkpoint
        # bytes (igor's rule), which is exactly what replay checks.
        instance.resume(start.state)
        return instance, source, budget

    def _replay_tick(
        self,
        instance: AgentInstance,
        source: RecordedSource,
        budget: list[int],
        price: int,
        record: TickRecord,
    ) -> Divergence | None:
        def diverged(what: str, actual: bytes | None, **kw) -> Divergence:
            return Divergence(record.tick, what, record.post_state_hash, actual, **kw)

        source.begin_tick(record.calls)
        try:
            more, fuel_tick = instance.tick()
            missing = source.end_tick()
            if missing is not None:
                return diverged("calls", None, call_diff=missing)
            state, fuel_capture = instance.capture_state()
        except ReplayMismatch as mismatch:
            return diverged("calls", None, call_diff=mismatch.diff)
        except errors.AgentError as exc:
            return diverged("trap", None, detail=f"{exc.kind}: {exc}")
        actual = hashlib.sha256(state).digest()
        fuel = fuel_tick + fuel_capture
        if actual != record.post_state_hash:
            return diverged("state", actual)
        if fuel != record.fuel:
            return diverged("fuel", actual, detail=f"fuel {fuel}, recorded {record.fuel}")
        cost = metering.tick_cost(fuel, price, budget[0])
        if cost != record.cost:
            return diverged("cost", actual, detail=f"cost {cost}, recorded {record.cost}")
        if more != record.more:
            return diverged("hint", actual, detail=f"more={more}, recorded {record.more}")
        return None
