"""Tools for a person chasing a divergence: diff two executions, bisect a run,
cut a replay bundle out of a run folder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from igor import bundle as bundle_mod
from igor import eventlog
from igor.bundle import ReplayBundle
from igor.checkpoint import Checkpoint
from igor.eventlog import TickRecord
from igor.replay import ProgressFn, Replayer
from igor.rundir import RunDir, RunDirError


def load_records(path: Path) -> list[TickRecord]:
    """Tick records from a run folder, a bundle, or a bare event log file."""
    path = Path(path)
    if path.is_dir():
        return list(RunDir(path).log().records)
    data = path.read_bytes()
    try:
        return list(bundle_mod.decode(data).records)
    except bundle_mod.BundleError:
        pass
    try:
        return list(eventlog.EventLog.decode(data).records)
    except eventlog.EventLogError as exc:
        raise RunDirError(f"{path}: neither a replay bundle nor an event log ({exc})") from None


def diff_records(a: list[TickRecord], b: list[TickRecord], *, first_only: bool) -> list[str]:
    by_tick = {r.tick: r for r in b}
    out = []
    for ra in a:
        rb = by_tick.get(ra.tick)
        if rb is None:
            continue
        problems = []
        call_diff = eventlog.diff_calls(ra.calls, rb.calls)
        if call_diff is not None:
            problems.append(f"host calls: {call_diff}")
        if ra.post_state_hash != rb.post_state_hash:
            problems.append(
                f"state sha256:{ra.post_state_hash.hex()[:16]}... vs "
                f"sha256:{rb.post_state_hash.hex()[:16]}..."
            )
        for name in ("fuel", "cost", "more"):
            if getattr(ra, name) != getattr(rb, name):
                problems.append(f"{name} {getattr(ra, name)} vs {getattr(rb, name)}")
        if problems:
            out.append(f"tick {ra.tick}: " + "; ".join(problems))
            if first_only:
                break
    return out


def common_ticks(a: list[TickRecord], b: list[TickRecord]) -> list[int]:
    return sorted({r.tick for r in a} & {r.tick for r in b})


def _segment(records: list[TickRecord], after: int, upto: int) -> list[TickRecord]:
    return [r for r in records if after < r.tick <= upto]


@dataclass(frozen=True)
class BisectResult:
    ok: bool
    probes: int
    good_tick: int
    bad_tick: int | None
    detail: str

    def summary(self) -> str:
        if self.ok:
            return f"no divergence: replay reproduces every checkpoint ({self.probes} probes)"
        return (
            f"first divergence in ticks {self.good_tick + 1}..{self.bad_tick} "
            f"after {self.probes} probes: {self.detail}"
        )


def bisect_run(
    run: RunDir, replayer: Replayer, *, progress: ProgressFn | None = None
) -> BisectResult:
    """Binary search over the run's checkpoints, trusting only what replay reproduces.

    Each probe replays one segment from the last checkpoint known good to a
    middle checkpoint and compares the state hash there, so per-tick hashes in
    the log are not trusted. The final segment is then replayed tick by tick to
    name the exact tick.
    """
    checkpoints = run.checkpoints()
    records = list(run.log().records)
    module, manifest = run.module(), run.manifest()
    good, lo, hi = checkpoints[0], 0, len(checkpoints) - 1
    probes = 0

    def reproduces(start: Checkpoint, target: Checkpoint) -> bool:
        result = replayer.replay(
            module, manifest, start, _segment(records, start.tick, target.tick)
        )
        return result.ok and result.final_state_hash == hashlib.sha256(target.state).digest()

    if reproduces(checkpoints[0], checkpoints[-1]):
        return BisectResult(True, 1, checkpoints[-1].tick, None, "")
    probes = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probes += 1
        if progress:
            progress(probes, 0)
        if reproduces(good, checkpoints[mid]):
            good, lo = checkpoints[mid], mid
        else:
            hi = mid
    bad = checkpoints[hi]
    final = replayer.replay(module, manifest, good, _segment(records, good.tick, bad.tick))
    detail = final.summary() if not final.ok else "state at the checkpoint differs from the log"
    return BisectResult(False, probes, good.tick, bad.tick, detail)


def bundle_from_run(run: RunDir, *, from_tick: int | None = None) -> ReplayBundle:
    checkpoints = run.checkpoints()
    starts = [c for c in checkpoints if from_tick is None or c.tick >= from_tick]
    if not starts:
        raise RunDirError(f"no checkpoint at or after tick {from_tick} in {run.path}")
    start = starts[0]
    log = run.log()
    records = tuple(r for r in log.records if r.tick > start.tick)
    anchor = records[0].prev if records else start.log_head
    return ReplayBundle(
        agent_id=start.agent_id,
        module_digest=start.module_digest,
        manifest=run.manifest(),
        checkpoint=start,
        records=records,
        module=run.module(),
        note=f"from run {run.path} at tick {start.tick}",
        anchor=anchor,
    )
