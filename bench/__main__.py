"""Run igor's benchmarks: `python -m bench [NAME ...] [--json FILE] [--json-lines] [--quick]`.

Prints the run conditions, then for each benchmark its detail lines (indented) and one
summary line `NAME: key=value ...`; with --json-lines also one JSON object per benchmark
(prefixed `JSON `), and with --json FILE every result and the run conditions as one JSON
document. Exit status: 0 when every selected benchmark ran or was skipped with a reason,
1 when one failed, 2 for bad arguments. A missed target is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from bench import common

BENCHMARKS = (
    "tick_overhead",
    "replay_speed",
    "checkpoint_codec",
    "controlplane",
    "node_scale",
    "migration",
    "fleet",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {BENCHMARKS})"
    )
    parser.add_argument("--json", metavar="FILE", type=Path, help="write all results as JSON")
    parser.add_argument(
        "--json-lines", action="store_true", help="also print one JSON line per benchmark"
    )
    parser.add_argument(
        "--quick", action="store_true", help="about a tenth of the work (smoke run, noisy figures)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="summary lines only")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in BENCHMARKS:
            doc = (importlib.import_module(f"bench.{name}").__doc__ or "").strip().splitlines()
            print(f"{name:18} {doc[0] if doc else ''}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    selected = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)
    opts = common.Options(quick=args.quick, verbose=not args.quiet)

    env = common.environment()
    env["quick"] = args.quick
    print(common.environment_line(env), flush=True)
    results: list[common.Result] = []
    for name in selected:
        result = run_one(name, opts)
        results.append(result)
        print(result.line, flush=True)
        if args.json_lines:
            print("JSON " + json.dumps(result.as_json(), sort_keys=True), flush=True)

    if args.json:
        doc = {"environment": env, "results": {r.name: r.as_json() for r in results}}
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        print(f"# wrote {args.json}")
    return 1 if any(r.error for r in results) else 0


def run_one(name: str, opts: common.Options) -> common.Result:
    load_before = common.loadavg()
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        result = module.run(opts)
    except common.Skip as skip:
        result = common.Result(name, f"{name}: skipped ({skip})", skipped=str(skip))
    except Exception as exc:
        traceback.print_exc()
        result = common.Result(name, f"{name}: ERROR {type(exc).__name__}: {exc}", error=str(exc))
    result.figures["seconds"] = round(time.perf_counter() - started, 2)
    result.figures["loadavg_before"] = load_before
    result.figures["loadavg_after"] = common.loadavg()
    return result


if __name__ == "__main__":
    sys.exit(main())
