"""Verification of a local run folder or a replay bundle.

A run is valid when its checkpoints form one unbroken lineage, its event log
is intact and anchored where the checkpoints say, every checkpoint agrees with
the log at its tick, and replaying the log from the first checkpoint
reproduces every recorded state hash.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from igor import eventlog
from igor.bundle import ReplayBundle
from igor.checkpoint import Checkpoint
from igor.replay import ProgressFn, Replayer, ReplayResult, Verdict
from igor.rundir import RunDir


@dataclass
class VerificationReport:
    subject: str
    findings: list[str] = field(default_factory=list)
    replay: ReplayResult | None = None
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings and (self.replay is None or self.replay.ok)

    def headline(self) -> str:
        if self.ok:
            ticks = self.replay.ticks_replayed if self.replay else 0
            return (
                f"VALID: {self.subject}: {self.checkpoints} checkpoints, lineage unbroken, "
                f"{ticks} ticks replayed and reproduced"
            )
        first = self.findings[0] if self.findings else self.replay.summary()  # type: ignore[union-attr]
        return f"INVALID: {self.subject}: {first}"

    def to_json(self) -> dict[str, Any]:
        replay = None
        if self.replay:
            d = self.replay.divergence
            replay = {
                "verdict": str(self.replay.verdict),
                "ticksReplayed": self.replay.ticks_replayed,
                "firstTick": self.replay.first_tick,
                "lastTick": self.replay.last_tick,
                "durationSeconds": round(self.replay.duration_s, 6),
                "error": self.replay.error,
                "divergence": None
                if d is None
                else {
                    "tick": d.tick,
                    "what": d.what,
                    "expectedHash": "sha256:" + d.expected_hash.hex(),
                    "actualHash": "sha256:" + d.actual_hash.hex() if d.actual_hash else None,
                    "callDifference": str(d.call_diff) if d.call_diff else None,
                    "detail": d.detail,
                },
            }
        return {
            "subject": self.subject,
            "valid": self.ok,
            "checkpoints": self.checkpoints,
            "findings": self.findings,
            "replay": replay,
        }


def lineage_findings(checkpoints: list[Checkpoint]) -> list[str]:
    findings = []
    for prev, cur in itertools.pairwise(checkpoints):
        where = f"checkpoint at tick {cur.tick}"
        if cur.tick <= prev.tick:
            findings.append(f"{where}: non-monotonic (previous was tick {prev.tick})")
        if cur.prev_hash != prev.hash:
            findings.append(
                f"{where}: prev_hash {cur.prev_hash.hex()[:16]}... does not match the previous "
                f"checkpoint's hash {prev.hash.hex()[:16]}..."
            )
        if cur.agent_id != prev.agent_id:
            findings.append(f"{where}: agent changed from {prev.agent_id!r} to {cur.agent_id!r}")
        if cur.module_digest != prev.module_digest:
            findings.append(f"{where}: module digest changed")
        if cur.epoch < prev.epoch:
            findings.append(f"{where}: epoch went back from {prev.epoch} to {cur.epoch}")
    return findings


def log_findings(log_bytes: bytes, checkpoints: list[Checkpoint]) -> list[str]:
    first, last = checkpoints[0], checkpoints[-1]
    report = eventlog.verify(
        log_bytes, anchor=first.hash, expected_head=last.log_head, expected_last_tick=last.tick
    )
    findings = [f"event log entry {p.index}: {p.kind}: {p.message}" for p in report.problems]
    if findings:
        return findings
    records = {r.tick: r for r in eventlog.EventLog.decode(log_bytes).records}
    for cp in checkpoints[1:]:
        record = records.get(cp.tick)
        if record is None:
            continue
        if cp.log_head != record.hash:
            findings.append(f"checkpoint at tick {cp.tick}: log_head does not match the log")
        if hashlib.sha256(cp.state).digest() != record.post_state_hash:
            findings.append(f"checkpoint at tick {cp.tick}: state does not match the log's hash")
    return findings


def verify_run(
    run: RunDir, replayer: Replayer, *, progress: ProgressFn | None = None
) -> VerificationReport:
    checkpoints = run.checkpoints()
    report = VerificationReport(subject=str(run.path), checkpoints=len(checkpoints))
    report.findings += lineage_findings(checkpoints)
    log_bytes = run.log_bytes()
    report.findings += log_findings(log_bytes, checkpoints)
    if report.findings:
        return report
    log = eventlog.EventLog.decode(log_bytes)
    report.replay = replayer.replay(
        run.module(), run.manifest(), checkpoints[0], log.records, progress=progress
    )
    return report


def verify_bundle(
    bundle: ReplayBundle, replayer: Replayer, *, progress: ProgressFn | None = None
) -> VerificationReport:
    report = VerificationReport(subject=f"bundle for {bundle.agent_id}", checkpoints=1)
    log = eventlog.EventLog(agent=bundle.agent_id, anchor=bundle.anchor)
    log.extend(bundle.records)
    problems = eventlog.verify(log.encode(), anchor=bundle.anchor).problems
    report.findings += [f"event log entry {p.index}: {p.kind}: {p.message}" for p in problems]
    if not report.findings:
        report.replay = replayer.replay_bundle(bundle, progress=progress)
    return report


__all__ = ["Verdict", "VerificationReport", "verify_bundle", "verify_run"]
