"""The agents this node holds: which to run, ticking them, committing them.

Level-triggered: every IgorAgent event (and a full re-list after any doubt)
goes through `observe`, which compares what the status says with what this
node runs and starts, freezes or drops instances. Ticks run from one timer
heap on the event loop (each tick is a short, bounded wasmtime call); agents
that may block on HTTP tick in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from igor import agentspec, api, errors
from igor.bundle import ReplayBundle
from igor.checkpoint import Checkpoint, Epoch
from igor.eventlog import EventLog
from igor.host import Engine, Limits
from igor.lease import AgentLease, LeaseState
from igor.replay import Replayer
from igor.runtime import AgentRuntime
from igor.store import AgentKey, CheckpointStore, StaleEpoch, StoreError

from .config import MERGE_PATCH, NodeConfig
from .metrics import NodeMetrics
from .modules import ModuleFetchError, ModuleLoader

log = logging.getLogger("igor.node.agents")
TICK_SLICE_S = 0.01  # run due ticks for at most this long before yielding to I/O


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Held:
    """One agent this node holds, at the epoch it holds it."""

    key: AgentKey
    uid: str
    obj: dict[str, Any]
    spec: agentspec.AgentSpec
    lease: AgentLease
    runtime: AgentRuntime | None = None
    wasm: bytes = b""
    handoff: bool = False  # HandoffInitiated/Pending: no ticks, final checkpoint
    suspended: bool = False
    paused: str | None = None  # why ticking stopped (budget, divergence policy, failures)
    due: float | None = None
    next_checkpoint: float = 0.0
    committed: Checkpoint | None = None
    committed_location: str = ""
    committed_time: str = ""
    failures: int = 0
    last_error: str | None = None
    last_verified_tick: int = 0
    verify_interval: int = 5
    replay_status: dict[str, Any] = field(default_factory=dict)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    writing: bool = False
    threaded: bool = False
    spread: bool = True
    final: asyncio.Future | None = None  # resolves to the final checkpoint of a handoff

    @property
    def ticking(self) -> bool:
        return (
            self.runtime is not None
            and not self.handoff
            and not self.suspended
            and self.paused is None
            and self.lease.may_tick
        )


class Supervisor:
    def __init__(
        self,
        api_client: client.ApiClient,
        cfg: NodeConfig,
        engine: Engine,
        store: CheckpointStore,
        metrics: NodeMetrics,
        lease_valid: Callable[[], bool],
    ):
        self.custom = client.CustomObjectsApi(api_client)
        self.api_client = api_client
        self.cfg = cfg
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.lease_valid = lease_valid
        self.loader = ModuleLoader(api_client)
        self.replayer = Replayer(engine)
        self.agents: dict[AgentKey, Held] = {}
        self._heap: list[tuple[float, int, AgentKey]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._starting: set[AgentKey] = set()
        self._latest: dict[AgentKey, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task] = set()
        # Set after a full re-list; cleared when the view may be stale (after
        # self-fencing), and ticking waits for it.
        self.synced = asyncio.Event()
        self._resync = asyncio.Event()

    # ----- helpers -------------------------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def key_of(obj: dict[str, Any]) -> AgentKey:
        md = obj["metadata"]
        return AgentKey(md["namespace"], md["name"])

    def owner_ref(self, held: Held) -> dict[str, Any]:
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.Kind.IGOR_AGENT,
            "name": held.key.name,
            "uid": held.uid,
        }

    def request_resync(self) -> None:
        """After self-fencing: forget the watch view; tick again only after a re-list."""
        self.synced.clear()
        self._resync.set()

    # ----- watching ------------------------------------------------------------------------

    async def run_watch(self) -> None:
        while True:
            try:
                await self._list_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep watching whatever the API server did
                log.warning("agent watch failed (%s); re-listing", exc)
                await asyncio.sleep(1)

    async def _list_and_watch(self) -> None:
        listing = await self.custom.list_cluster_custom_object(
            api.GROUP, api.VERSION, api.IGOR_AGENT.plural
        )
        seen = set()
        for obj in listing.get("items", []):
            seen.add(self.key_of(obj))
            self.observe(obj)
        for key in list(self.agents):
            if key not in seen:
                self.drop(key, "the IgorAgent was deleted")
        self._resync.clear()
        self.synced.set()
        self._wake.set()
        rv = listing["metadata"]["resourceVersion"]
        w = watch.Watch()
        async with w:
            async for event in w.stream(
                self.custom.list_cluster_custom_object,
                api.GROUP,
                api.VERSION,
                api.IGOR_AGENT.plural,
                resource_version=rv,
                timeout_seconds=60,
            ):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    return
                if kind == "DELETED":
                    self.drop(self.key_of(obj), "the IgorAgent was deleted")
                else:
                    self.observe(obj)
                if self._resync.is_set():
                    return

    # ----- decisions -----------------------------------------------------------------------

    def observe(self, obj: dict[str, Any]) -> None:
        key = self.key_of(obj)
        if key in self._starting:
            # Decided when the start finishes, on the newest view of the agent.
            self._latest[key] = obj
            return
        lease = AgentLease.from_status(obj.get("status"))
        held = self.agents.get(key)
        if lease is None or lease.holder != self.cfg.name:
            if held is not None:
                holder = lease.holder if lease else "nobody"
                self.drop(
                    key, f"superseded: holder is now {holder} at epoch {lease and lease.epoch}"
                )
            return
        if held is None:
            if lease.state is LeaseState.ACTIVE:
                self._starting.add(key)
                self._spawn(self._start(obj, lease))
            return
        if obj["metadata"].get("resourceVersion"):
            held.obj = obj
        if lease.epoch.major != held.lease.epoch.major:
            # Authority was transferred away and back: this instance is not the lineage's.
            self.drop(key, f"new authority epoch {lease.epoch}")
            self.observe(obj)
            return
        self._apply_spec(held, obj)
        if lease.state is LeaseState.ACTIVE:
            reverted = held.handoff
            held.handoff = False
            held.final = None
            self._set_epoch(held, lease)
            if reverted:
                log.info("%s: handoff reverted at %s, ticking again", key, lease.epoch)
                self._spawn(self.report(held))  # Ready again, without waiting for a commit
            if held.due is None:  # not scheduled: it was frozen or paused until now
                self._schedule(held, time.monotonic())
        elif lease.state in (LeaseState.HANDOFF_INITIATED, LeaseState.HANDOFF_PENDING):
            held.handoff = True
            if held.lease.epoch != lease.epoch or held.final is None:
                self._set_epoch(held, lease)
                held.final = asyncio.get_running_loop().create_future()
                self._spawn(self._final_checkpoint(held, held.final))
        else:
            self.drop(key, f"lease is {lease.state}")

    def _set_epoch(self, held: Held, lease: AgentLease) -> None:
        held.lease = lease
        if held.runtime is not None:
            held.runtime.epoch = lease.epoch

    def _apply_spec(self, held: Held, obj: dict[str, Any]) -> None:
        try:
            spec = agentspec.parse(obj.get("spec") or {})
        except agentspec.SpecError as exc:
            log.warning("%s: %s", held.key, exc)
            return
        runtime = held.runtime
        if runtime is not None and spec.budget_limit != held.spec.budget_limit:
            runtime.budget = max(0, spec.budget_limit - runtime.spent)
            # Replay starts from a window snapshot's budget: a change of limit
            # inside the window could change a clamped cost, so start afresh.
            runtime.window.clear()
            held.last_verified_tick = runtime.tick_number
            if held.paused == "BudgetExhausted" and runtime.budget > 0:
                held.paused = None
        if spec.suspend and not held.suspended:
            held.suspended = True
            self._spawn(self.commit(held, "suspend"))
        elif not spec.suspend and held.suspended:
            held.suspended = False
        held.verify_interval = spec.verify_interval if held.verify_interval != 1 else 1
        held.spec = spec

    def drop(self, key: AgentKey, why: str) -> None:
        held = self.agents.pop(key, None)
        if held is None:
            return
        log.info("%s: dropped without committing: %s", key, why)
        self.metrics.fencing.labels(kind="superseded").inc()
        held.due = None
        if held.runtime is not None and not held.lock.locked():
            held.runtime.instance.store.close()  # free its memory now, not at the next GC
        if held.final is not None and not held.final.done():
            held.final.set_exception(RuntimeError(f"agent dropped: {why}"))
        self.metrics.agents.set(len(self.agents))

    # ----- starting ------------------------------------------------------------------------

    async def _start(self, obj: dict[str, Any], lease: AgentLease) -> None:
        key = self.key_of(obj)
        try:
            await self._start_inner(obj, lease, key)
        finally:
            self._starting.discard(key)
            latest = self._latest.pop(key, None)
        if latest is not None:
            self.observe(latest)

    async def _start_inner(self, obj: dict[str, Any], lease: AgentLease, key: AgentKey) -> None:
        try:
            spec = agentspec.parse(obj.get("spec") or {})
        except agentspec.SpecError as exc:
            await self._report_failure(obj, "InvalidSpec", str(exc))
            return
        try:
            wasm = await self.loader.load(key.namespace, spec.module)
        except ModuleFetchError as exc:
            await self._report_failure(obj, "ModuleUnavailable", str(exc))
            if not exc.fatal:
                await asyncio.sleep(2)
                self._resync.set()
            return
        try:
            stored = await self.store.get(key)
        except (StoreError, ValueError) as exc:
            await self._report_failure(obj, "CheckpointUnreadable", str(exc))
            return
        if stored is not None and stored.epoch > lease.epoch:
            await self._report_failure(
                obj,
                "StaleAuthority",
                f"the checkpoint store holds epoch {stored.epoch}, newer than the lease's "
                f"{lease.epoch}: refusing to run",
            )
            return
        agent_id = str(key)
        try:
            runtime = AgentRuntime(
                self.engine,
                wasm,
                spec.manifest,
                agent_id=agent_id,
                budget=spec.budget_limit,
                price=self.cfg.price,
                epoch=lease.epoch,
                limits=Limits(deadline_ms=spec.deadline_ms, fuel_per_call=spec.fuel_per_tick),
                checkpoint=stored,
                expected_digest=spec.module.digest,
                window_size=spec.window_size,
            )
        except errors.AgentError as exc:
            await self._report_failure(obj, exc.kind.title().replace("-", ""), str(exc))
            return
        if stored is not None:
            runtime.price = self.cfg.price
            runtime.budget = max(0, spec.budget_limit - runtime.spent)
        current = self.agents.get(key)
        latest = AgentLease.from_status(self._latest.get(key, obj).get("status"))
        if (
            current is not None
            or latest is None
            or latest.holder != self.cfg.name
            or latest.epoch.major != lease.epoch.major
        ):
            # Superseded while loading: never tick it (the newest view is observed next).
            runtime.instance.store.close()
            return
        held = Held(
            key=key,
            uid=obj["metadata"]["uid"],
            obj=obj,
            spec=spec,
            lease=lease,
            runtime=runtime,
            wasm=wasm,
            verify_interval=spec.verify_interval,
            last_verified_tick=runtime.tick_number,
            threaded="http" in spec.manifest.capabilities,
            committed=stored,
        )
        self.agents[key] = held
        self.metrics.agents.set(len(self.agents))
        log.info(
            "%s: running at epoch %s from %s",
            key,
            lease.epoch,
            f"checkpoint tick {stored.tick}" if stored else "genesis",
        )
        held.suspended = spec.suspend
        held.next_checkpoint = time.monotonic() + spec.checkpoint_interval_s
        # Tick at once (this is the migration's downtime), and commit at our epoch
        # alongside: that raises the store's fence above any write a superseded
        # holder may still have in flight, and reports us in the status.
        self._schedule(held, time.monotonic())
        self._spawn(self.commit(held, "takeover"))
        # Catch up with anything that changed while we were starting.
        self.observe(held.obj)

    async def _report_failure(self, obj: dict[str, Any], reason: str, message: str) -> None:
        log.warning("%s/%s: %s", obj["metadata"]["namespace"], obj["metadata"]["name"], message)
        cond = api.condition(api.AgentConditionType.READY, False, reason, message)
        conditions = api.set_condition((obj.get("status") or {}).get("conditions"), cond)
        await self._patch_status(obj, {"conditions": conditions})

    # ----- ticking -------------------------------------------------------------------------

    def _schedule(self, held: Held, due: float) -> None:
        if held.due is not None and held.due <= due:
            return
        held.due = due
        heapq.heappush(self._heap, (due, next(self._seq), held.key))
        self._wake.set()

    async def run_scheduler(self) -> None:
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            due = self._heap[0][0]
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=due - now)
                continue
            if not (self.lease_valid() and self.synced.is_set()):
                # Self-fenced (or not re-synced since): no agent ticks.
                await asyncio.sleep(0.05)
                continue
            self._run_due(time.monotonic() + TICK_SLICE_S)
            await asyncio.sleep(0)

    def _run_due(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= time.monotonic() < until:
            due, _, key = heapq.heappop(self._heap)
            held = self.agents.get(key)
            if held is None or held.due != due:
                continue
            held.due = None
            if not held.ticking:
                continue  # observe() schedules it again when it may tick
            if held.threaded and held.lock.locked():
                # A checkpoint of this agent is being written from its worker
                # thread's state: tick right after it.
                self._schedule(held, time.monotonic() + 0.005)
                continue
            self.metrics.observe_lag(max(0.0, time.monotonic() - due))
            if held.threaded:
                self._spawn(self._tick_in_thread(held))
            else:
                self._tick(held)

    async def _tick_in_thread(self, held: Held) -> None:
        async with held.lock:
            if held.ticking and self.lease_valid():
                await asyncio.to_thread(self._tick, held)

    def _tick(self, held: Held) -> None:
        runtime = held.runtime
        assert runtime is not None
        now = time.monotonic()
        try:
            record = runtime.tick()
        except errors.BudgetExhausted:
            held.paused = "BudgetExhausted"
            self._spawn(self.commit(held, "budget-exhausted"))
            return
        except errors.AgentError as exc:
            self._tick_failed(held, exc)
            return
        held.failures = 0
        held.last_error = None
        if len(runtime.log) > 64:
            # The node needs only the log's head (for the next checkpoint) and the
            # replay window, which keeps its own records: drop the rest.
            runtime.log = EventLog(agent=runtime.agent_id, anchor=runtime.log.head)
        self.metrics.ticks.inc()
        self.metrics.fuel.inc(record.fuel)
        if (
            held.verify_interval
            and runtime.tick_number - held.last_verified_tick >= held.verify_interval
        ):
            self._verify(held)
        if now >= held.next_checkpoint and not held.writing:
            held.next_checkpoint = now + held.spec.checkpoint_interval_s
            self._spawn(self.commit(held, "interval"))
        interval = held.spec.fast_interval_ms if record.more else held.spec.interval_ms
        if held.spread:
            # Agents started together would tick together forever: shift each one
            # once by a stable fraction of its interval so the load spreads evenly.
            held.spread = False
            interval += (hash(held.key) % 1000) * interval / 1000
        self._schedule(held, now + interval / 1000)

    def _tick_failed(self, held: Held, exc: errors.AgentError) -> None:
        held.failures += 1
        held.last_error = f"{exc.kind}: {exc}"
        self.metrics.tick_failures.labels(kind=exc.kind).inc()
        log.warning(
            "%s: tick %d failed (%d in a row): %s",
            held.key,
            held.runtime.tick_number + 1,
            held.failures,
            held.last_error,
        )
        runtime = held.runtime
        # The instance may be half-way through the tick: rebuild it from the
        # last good state, which the failed tick did not change.
        try:
            held.runtime = AgentRuntime(
                self.engine,
                held.wasm,
                held.spec.manifest,
                agent_id=runtime.agent_id,
                budget=runtime.budget,
                price=runtime.price,
                epoch=runtime.epoch,
                limits=runtime.limits,
                checkpoint=runtime.checkpoint(),
                window_size=held.spec.window_size,
            )
            held.runtime.last_checkpoint = runtime.last_checkpoint
            runtime.instance.store.close()
        except errors.AgentError as again:
            held.paused = "InstanceFailed"
            held.last_error = f"{again.kind}: {again}"
        backoff = min(60.0, 0.5 * 2 ** min(held.failures, 7))
        self._schedule(held, time.monotonic() + backoff)
        self._spawn(self.report(held))

    def _verify(self, held: Held) -> None:
        runtime = held.runtime
        assert runtime is not None
        try:
            start, records = runtime.window_start(held.last_verified_tick + 1)
        except ValueError:
            return
        result = self.replayer.replay(held.wasm, held.spec.manifest.canonical, start, records)
        held.last_verified_tick = runtime.tick_number
        self.metrics.verifications.labels(verdict=str(result.verdict)).inc()
        held.replay_status = {
            "lastVerifiedTick": result.last_tick,
            "verdict": str(result.verdict),
            "time": _now_iso(),
            "message": result.summary()[:1000],
        }
        if result.ok:
            return
        self.metrics.divergences.inc()
        action = held.spec.divergence_action
        log.error("%s: replay %s; action %s", held.key, result.summary(), action)
        if action in ("pause", "migrate"):
            # igor's rule: "migrate" without a migration trigger behaves as "pause". The
            # node stops and says why; moving it is a MigrationRequest's job.
            held.paused = "ReplayDiverged"
            self._spawn(self.commit(held, "divergence-pause"))
        elif action == "intensify":
            held.verify_interval = 1
        self._spawn(self.report(held))

    # ----- committing ----------------------------------------------------------------------

    async def commit(self, held: Held, reason: str) -> Checkpoint | None:
        """Write a checkpoint of the current state at the held epoch, then report status."""
        async with held.lock:
            if held.runtime is None or self.agents.get(held.key) is not held:
                return None
            if not self.lease_valid():
                self.metrics.checkpoints.labels(result="fenced").inc()
                return None
            held.writing = True
            cp = held.runtime.checkpoint()
            try:
                location = await self.store.put(held.key, cp, owner=self.owner_ref(held))
            except StaleEpoch as exc:
                self.metrics.checkpoints.labels(result="stale").inc()
                self.drop(held.key, str(exc))
                return None
            except (StoreError, ApiException, OSError) as exc:
                self.metrics.checkpoints.labels(result="error").inc()
                log.warning("%s: checkpoint (%s) failed: %s", held.key, reason, exc)
                return None
            finally:
                held.writing = False
            self.metrics.checkpoints.labels(result="ok").inc()
            held.committed, held.committed_location = cp, location
            held.committed_time = _now_iso()
        await self.report(held)
        return cp

    async def _final_checkpoint(self, held: Held, future: asyncio.Future) -> None:
        cp = await self.commit(held, "handoff")
        if future.done():
            return
        if cp is None:
            future.set_exception(RuntimeError("final checkpoint could not be written"))
        else:
            future.set_result(cp)

    async def freeze(self, key: AgentKey, epoch: Epoch, wait_s: float = 30) -> Checkpoint:
        """Migration source: stop ticking at `epoch` and return the final checkpoint."""
        obj = await self.custom.get_namespaced_custom_object(
            api.GROUP, api.VERSION, key.namespace, api.IGOR_AGENT.plural, key.name
        )
        self.observe(obj)
        held = self.agents.get(key)
        lease = AgentLease.from_status(obj.get("status"))
        if held is None or lease is None or lease.holder != self.cfg.name:
            raise LookupError(f"{key} is not held by {self.cfg.name}")
        if lease.state is not LeaseState.HANDOFF_INITIATED or lease.epoch != epoch:
            raise PermissionError(
                f"{key}: status shows lease {lease.state} at {lease.epoch}, not HandoffInitiated "
                f"at {epoch}"
            )
        assert held.final is not None
        return await asyncio.wait_for(asyncio.shield(held.final), wait_s)

    # ----- status --------------------------------------------------------------------------

    async def report(self, held: Held) -> None:
        runtime = held.runtime
        if runtime is None or self.agents.get(held.key) is not held:
            return
        status: dict[str, Any] = {
            "tick": runtime.tick_number,
            "budget": {"remaining": runtime.budget, "spent": runtime.spent},
        }
        if held.committed is not None:
            cp = held.committed
            status["checkpoint"] = {
                "tick": cp.tick,
                "hash": "sha256:" + cp.hash.hex(),
                "time": held.committed_time or _now_iso(),
                "location": held.committed_location,
                "epoch": {"major": cp.epoch.major, "minor": cp.epoch.minor},
            }
        if held.replay_status:
            status["replay"] = held.replay_status
        status["conditions"] = self._conditions(held)
        await self._patch_status(held.obj, status, held)

    def _conditions(self, held: Held) -> list[dict[str, Any]]:
        conditions = (held.obj.get("status") or {}).get("conditions") or []
        T = api.AgentConditionType
        if held.paused or held.last_error:
            reason = held.paused or "TickFailed"
            ready = api.condition(T.READY, False, reason, held.last_error or reason)
        elif held.handoff:
            ready = api.condition(T.READY, False, "HandoffInProgress", "frozen for migration")
        elif held.suspended:
            ready = api.condition(T.READY, False, "Suspended", "spec.suspend is true")
        else:
            ready = api.condition(T.READY, True, "Ticking", f"running on {self.cfg.name}")
        conditions = api.set_condition(conditions, ready)
        exhausted = held.paused == "BudgetExhausted"
        conditions = api.set_condition(
            conditions,
            api.condition(
                T.BUDGET_EXHAUSTED,
                exhausted,
                "BudgetSpent" if exhausted else "BudgetAvailable",
                "raise spec.budget.limit to resume" if exhausted else "",
            ),
        )
        if held.replay_status:
            ok = held.replay_status["verdict"] == "Verified"
            conditions = api.set_condition(
                conditions,
                api.condition(
                    T.REPLAY_VERIFIED,
                    ok,
                    "ReplayMatched" if ok else "ReplayDiverged",
                    held.replay_status["message"],
                ),
            )
        return conditions

    async def _patch_status(
        self, obj: dict[str, Any], status: dict[str, Any], held: Held | None = None
    ) -> None:
        """Merge-patch our status fields, guarded by resourceVersion and re-checked on conflict."""
        md = obj["metadata"]
        for _ in range(5):
            lease = AgentLease.from_status(obj.get("status"))
            if lease is None or lease.holder != self.cfg.name:
                return
            if held is not None and lease.epoch != held.lease.epoch:
                return
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": status,
            }
            try:
                updated = await self.custom.patch_namespaced_custom_object_status(
                    api.GROUP,
                    api.VERSION,
                    md["namespace"],
                    api.IGOR_AGENT.plural,
                    md["name"],
                    body,
                    _content_type=MERGE_PATCH,
                )
            except ApiException as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    log.warning(
                        "%s/%s: status update failed: %s %s",
                        md["namespace"],
                        md["name"],
                        exc.status,
                        exc.reason,
                    )
                    return
                obj = await self.custom.get_namespaced_custom_object(
                    api.GROUP, api.VERSION, md["namespace"], api.IGOR_AGENT.plural, md["name"]
                )
                if held is not None:
                    if "conditions" in status:
                        status = {**status, "conditions": self._merge_conditions(obj, status)}
                    held.obj = obj
                continue
            if held is not None and self.agents.get(held.key) is held:
                held.obj = updated
            return

    @staticmethod
    def _merge_conditions(obj: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
        merged = (obj.get("status") or {}).get("conditions") or []
        for cond in status["conditions"]:
            merged = api.set_condition(merged, cond)
        return merged

    # ----- inspection ----------------------------------------------------------------------

    def describe(self, held: Held) -> dict[str, Any]:
        rt = held.runtime
        window = [s.record.tick for s in rt.window] if rt else []
        return {
            "namespace": held.key.namespace,
            "name": held.key.name,
            "epoch": {"major": held.lease.epoch.major, "minor": held.lease.epoch.minor},
            "lease": str(held.lease.state),
            "tick": rt.tick_number if rt else None,
            "budget": {"remaining": rt.budget, "spent": rt.spent} if rt else None,
            "ticking": held.ticking,
            "handoff": held.handoff,
            "paused": held.paused,
            "lastError": held.last_error,
            "window": {"from": window[0], "to": window[-1]} if window else None,
            "checkpoint": {
                "tick": held.committed.tick,
                "hash": "sha256:" + held.committed.hash.hex(),
            }
            if held.committed
            else None,
            "replay": held.replay_status or None,
        }

    def bundle(self, held: Held, from_tick: int | None = None) -> ReplayBundle:
        rt = held.runtime
        assert rt is not None
        return rt.replay_bundle(from_tick, note=f"node {self.cfg.name}, epoch {held.lease.epoch}")

    # ----- shutdown ------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Graceful stop: a final checkpoint of every agent that may still commit."""
        self._heap.clear()
        for held in list(self.agents.values()):
            held.due = None
        await asyncio.gather(
            *(self.commit(h, "shutdown") for h in list(self.agents.values()) if not h.handoff),
            return_exceptions=True,
        )
        for task in list(self._tasks):
            task.cancel()
