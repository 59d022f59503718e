"""A live agent: instance + metering + event log + checkpoint lineage + replay window.

This is what the node runs for each agent and what `igor run` runs locally.
One tick: refuse if the budget is spent; run agent_tick with host calls
recorded; capture the post-tick state (metered too: it is guest code); charge
the fuel at the agent's price; append a hash-chained record; keep the pre-tick
state in the replay window so that any recent tick can be re-executed.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from igor import errors, metering
from igor.bundle import ReplayBundle
from igor.checkpoint import Checkpoint, DeterminismProfile, Epoch
from igor.eventlog import EventLog, TickRecord
from igor.host import AgentInstance, Engine, Limits
from igor.hostcalls import HostState, LiveSource
from igor.manifest import Manifest

ZERO_HASH = bytes(32)


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to re-execute one tick: the state and budget before it."""

    pre_state: bytes
    budget_before: int
    spent_before: int
    record: TickRecord


def profile_of(engine: Engine) -> DeterminismProfile:
    name, version, settings = engine.profile
    return DeterminismProfile(engine=f"{name} {version}", settings=tuple(sorted(settings.items())))


def check_resumable(
    checkpoint: Checkpoint, agent_id: str, module_digest: bytes, manifest: Manifest
) -> None:
    """Refuse a checkpoint that belongs to another agent, module or manifest."""
    if checkpoint.agent_id != agent_id:
        raise errors.ResumeRefused(
            f"checkpoint belongs to agent {checkpoint.agent_id!r}, not {agent_id!r}"
        )
    if checkpoint.module_digest != module_digest:
        raise errors.ResumeRefused(
            "module digest mismatch: checkpoint was written by "
            f"sha256:{checkpoint.module_digest.hex()}, this module is sha256:{module_digest.hex()}"
        )
    if checkpoint.manifest_digest != manifest.digest:
        raise errors.ResumeRefused(
            "manifest digest mismatch: the capability manifest changed since the checkpoint "
            f"(sha256:{checkpoint.manifest_digest.hex()[:16]}... vs "
            f"sha256:{manifest.digest.hex()[:16]}...)"
        )


class AgentRuntime:
    def __init__(
        self,
        engine: Engine,
        wasm: bytes,
        manifest: Manifest,
        *,
        agent_id: str,
        budget: int,
        price: int,
        epoch: Epoch = Epoch(1, 0),
        limits: Limits = Limits(),
        checkpoint: Checkpoint | None = None,
        expected_digest: bytes | None = None,
        window_size: int = 16,
        log_sink: Callable[[bytes], None] | None = None,
    ):
        self.engine = engine
        self.manifest = manifest
        self.agent_id = agent_id
        self.limits = limits
        self.compiled = engine.compile(wasm, expected_digest)
        self.wasm = wasm
        self.price = price
        self.epoch = epoch
        self.profile = profile_of(engine)
        self.window: deque[Snapshot] = deque(maxlen=max(1, window_size))
        self.source = LiveSource()
        host_state = HostState(
            source=self.source,
            budget=lambda: self.budget,
            price=lambda: self.price,
            log=log_sink or (lambda msg: None),
            options={name: cap.options for name, cap in manifest.capabilities.items()},
        )
        if checkpoint is not None:
            check_resumable(checkpoint, agent_id, self.compiled.digest, manifest)
        self.instance = AgentInstance(engine, self.compiled, manifest, host_state, limits)
        self.instance.init()
        if checkpoint is None:
            self.tick_number, self.budget, self.spent = 0, budget, 0
            self.state, _ = self.instance.capture_state()
            self.last_checkpoint = self._make_checkpoint(prev_hash=ZERO_HASH, log_head=ZERO_HASH)
        else:
            self.tick_number, self.budget, self.spent = (
                checkpoint.tick,
                checkpoint.budget,
                checkpoint.spent,
            )
            self.instance.resume(checkpoint.state)
            self.state = checkpoint.state
            self.last_checkpoint = checkpoint
        self.log = EventLog(agent=agent_id, anchor=self.last_checkpoint.hash)

    @property
    def module_digest(self) -> bytes:
        return self.compiled.digest

    def tick(self) -> TickRecord:
        """Execute one tick; raises an AgentError (state unchanged) if it fails."""
        if self.budget <= 0:
            raise errors.BudgetExhausted(
                f"budget exhausted ({metering.format_microcents(self.spent)} spent); "
                "raise spec.budget.limit to resume"
            )
        pre_state, budget_before, spent_before = self.state, self.budget, self.spent
        self.source.begin_tick()
        more, fuel_tick = self.instance.tick()
        calls = self.source.end_tick()
        post_state, fuel_capture = self.instance.capture_state()
        fuel = fuel_tick + fuel_capture
        cost = metering.tick_cost(fuel, self.price, self.budget)
        self.budget -= cost
        self.spent += cost
        self.tick_number += 1
        self.state = post_state
        record = self.log.append(
            tick=self.tick_number,
            calls=calls,
            fuel=fuel,
            cost=cost,
            more=more,
            post_state_hash=hashlib.sha256(post_state).digest(),
        )
        self.window.append(Snapshot(pre_state, budget_before, spent_before, record))
        return record

    def _make_checkpoint(self, *, prev_hash: bytes, log_head: bytes) -> Checkpoint:
        return Checkpoint(
            agent_id=self.agent_id,
            module_digest=self.compiled.digest,
            manifest_digest=self.manifest.digest,
            tick=self.tick_number,
            epoch=self.epoch,
            budget=self.budget,
            spent=self.spent,
            price=self.price,
            state=self.state,
            prev_hash=prev_hash,
            log_head=log_head,
            profile=self.profile,
        )

    def checkpoint(self) -> Checkpoint:
        """A new checkpoint of the current state, chained to the previous one."""
        if (
            self.last_checkpoint.tick == self.tick_number
            and self.last_checkpoint.epoch == self.epoch
        ):
            return self.last_checkpoint
        self.last_checkpoint = self._make_checkpoint(
            prev_hash=self.last_checkpoint.hash, log_head=self.log.head
        )
        return self.last_checkpoint

    def window_start(self, from_tick: int | None = None) -> tuple[Checkpoint, list[TickRecord]]:
        """A replay starting point inside the window and the records after it.

        The start is a checkpoint document built from the snapshot's pre-state;
        it is not part of the durable lineage (its prev_hash is the anchor the
        first record chains to), but it carries everything replay needs.
        """
        snaps = [s for s in self.window if from_tick is None or s.record.tick >= from_tick]
        if not snaps:
            raise ValueError("replay window is empty: no tick has run since the last restore")
        first = snaps[0]
        start = Checkpoint(
            agent_id=self.agent_id,
            module_digest=self.compiled.digest,
            manifest_digest=self.manifest.digest,
            tick=first.record.tick - 1,
            epoch=self.epoch,
            budget=first.budget_before,
            spent=first.spent_before,
            price=self.price,
            state=first.pre_state,
            prev_hash=first.record.prev,
            log_head=first.record.prev,
            profile=self.profile,
        )
        return start, [s.record for s in snaps]

    def replay_bundle(self, from_tick: int | None = None, note: str = "") -> ReplayBundle:
        """The replay window (from `from_tick`) as a bundle that replays anywhere."""
        start, records = self.window_start(from_tick)
        return ReplayBundle(
            agent_id=self.agent_id,
            module_digest=self.compiled.digest,
            manifest=self.manifest.canonical,
            checkpoint=start,
            records=tuple(records),
            module=self.wasm,
            note=note,
            anchor=records[0].prev,
        )
