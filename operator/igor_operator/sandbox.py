"""The replay gate's sandbox process: replay one bundle and print the result as JSON.

Run by gate.py in a child process with resource limits; never imported by the operator itself.
Two ways to run it:

    python -m igor_operator.sandbox BUNDLE [--module MODULE]
    python -m igor_operator.sandbox --serve

``--serve`` imports everything, prints ``{"ready": true}``, then reads one job as a JSON line
(``{"bundle": PATH, "module": PATH or null}``) from stdin, answers it and exits: the operator
keeps one such process warm so a migration does not pay for interpreter start-up, and still gets
a fresh process (fresh limits, no state) per replay.

Beyond `igor replay --format json`, the answer carries what the gate compares with the final
checkpoint: the replay's final state hash and the bundle's start budget and total cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _hex(value: bytes | None) -> str | None:
    return "sha256:" + value.hex() if value is not None else None


def replay(bundle_path: str, module_path: str | None = None) -> dict[str, Any]:
    from igor import bundle as bundle_mod
    from igor.replay import Replayer

    try:
        bundle = bundle_mod.load(Path(bundle_path))
        if module_path:
            bundle = bundle.with_module(Path(module_path).read_bytes())
    except (bundle_mod.BundleError, OSError) as exc:
        return {"verdict": "Error", "input": True, "error": str(exc)}
    if not bundle.module:
        return {"verdict": "Error", "input": True, "error": "the bundle leaves the module out"}
    start = bundle.checkpoint
    info = {
        "agent": bundle.agent_id,
        "moduleDigest": _hex(bundle.module_digest),
        "startTick": start.tick,
        "startCheckpointHash": _hex(start.hash),
        "startBudget": start.budget,
        "startSpent": start.spent,
        "records": len(bundle.records),
        "lastRecordHash": _hex(bundle.records[-1].hash) if bundle.records else None,
        "cost": sum(r.cost for r in bundle.records),
    }
    result = Replayer().replay_bundle(bundle)
    d = result.divergence
    return {
        "verdict": str(result.verdict),
        "ticksReplayed": result.ticks_replayed,
        "firstTick": result.first_tick,
        "lastTick": result.last_tick,
        "durationSeconds": round(result.duration_s, 6),
        "error": result.error,
        "finalStateHash": _hex(result.final_state_hash),
        "bundle": info,
        "divergence": None
        if d is None
        else {
            "tick": d.tick,
            "what": d.what,
            "expectedHash": _hex(d.expected_hash),
            "actualHash": _hex(d.actual_hash),
            "callDifference": str(d.call_diff) if d.call_diff else None,
            "detail": d.detail,
        },
    }


def serve() -> int:
    # Import the heavy parts (wasmtime, the replay engine) before saying ready.
    import igor.bundle
    import igor.replay  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    line = sys.stdin.readline()
    if not line:
        return 0
    job = json.loads(line)
    print(json.dumps(replay(job["bundle"], job.get("module"))), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m igor_operator.sandbox")
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--module")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    if not args.bundle:
        parser.error("BUNDLE or --serve is required")
    print(json.dumps(replay(args.bundle, args.module)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
