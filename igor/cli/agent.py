"""Local agent commands: run, inspect, verify, replay, diff, bisect, bundle.

Exit codes (documented in docs/cli.md):
  0  success: the run finished, or everything verified
  1  verification failed: invalid lineage, tampered log, or replay divergence
  2  bad input: unreadable or malformed file, bad manifest, bad arguments
  3  the agent failed while running (trap, deadline, budget exhausted)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from igor import bundle as bundle_mod
from igor import checkpoint as ckpt
from igor import errors, eventlog, forensics, manifest
from igor.checkpoint import Epoch
from igor.cli.progress import Progress
from igor.host import Engine, Limits
from igor.replay import Replayer
from igor.rundir import RunDir, RunDirError, RunInfo
from igor.runtime import AgentRuntime
from igor.verify import VerificationReport, verify_bundle, verify_run

EXIT_OK, EXIT_INVALID, EXIT_INPUT, EXIT_AGENT = 0, 1, 2, 3
INPUT_ERRORS = (
    OSError,
    RunDirError,
    ckpt.CheckpointError,
    eventlog.EventLogError,
    bundle_mod.BundleError,
    manifest.ManifestError,
)


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run an agent locally with checkpoints and an event log")
    run.add_argument("module", type=Path)
    run.add_argument("--manifest", type=Path, help="agent.manifest.json (default: beside MODULE)")
    run.add_argument("--ticks", type=int, default=10)
    run.add_argument("--out", type=Path, required=True, help="run folder to create")
    run.add_argument("--agent-id", default="local/agent")
    run.add_argument("--budget", type=int, default=1_000_000_000, help="micro-cents")
    run.add_argument("--price", type=int, default=1000, help="micro-cents per million fuel")
    run.add_argument("--checkpoint-every", type=int, default=10, metavar="TICKS")
    run.add_argument("--deadline-ms", type=int, default=15_000)
    run.add_argument("--fuel-per-tick", type=int, default=1_000_000_000)
    run.add_argument("--quiet", action="store_true", help="do not print the agent's log lines")
    run.set_defaults(handler=cmd_run)

    inspect = sub.add_parser("inspect", help="show a checkpoint's fields")
    inspect.add_argument("checkpoint", type=Path)
    inspect.add_argument("--format", choices=("text", "json"), default="text")
    inspect.set_defaults(handler=cmd_inspect)

    verify = sub.add_parser("verify", help="verify a run folder or a replay bundle")
    verify.add_argument("target", type=Path, help="run folder or .bundle file")
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.set_defaults(handler=cmd_verify)

    replay = sub.add_parser("replay", help="replay a bundle and compare every tick")
    replay.add_argument("bundle", type=Path)
    replay.add_argument("--until", type=int, metavar="TICK", help="stop after this tick")
    replay.add_argument("--module", type=Path, help="the module, if the bundle leaves it out")
    replay.add_argument("--format", choices=("text", "json"), default="text")
    replay.set_defaults(handler=cmd_replay)

    diff = sub.add_parser("diff", help="first difference between two runs, logs or bundles")
    diff.add_argument("a", type=Path)
    diff.add_argument("b", type=Path)
    diff.add_argument("--all", action="store_true", help="every differing tick, not just the first")
    diff.set_defaults(handler=cmd_diff)

    bisect = sub.add_parser(
        "bisect", help="find the first divergent tick of a run using its checkpoints"
    )
    bisect.add_argument("run", type=Path)
    bisect.set_defaults(handler=cmd_bisect)

    mk = sub.add_parser("bundle", help="make a replay bundle from a run folder")
    mk.add_argument("run", type=Path)
    mk.add_argument(
        "--from-tick", type=int, help="start after this checkpoint tick (default: first)"
    )
    mk.add_argument("-o", "--output", type=Path, required=True)
    mk.add_argument("--without-module", action="store_true")
    mk.set_defaults(handler=cmd_bundle)


def _fail(code: int, message: str) -> int:
    print(f"igor: {message}", file=sys.stderr)
    return code


def _load_manifest(module: Path, path: Path | None) -> tuple[bytes, manifest.Manifest]:
    if path is None:
        sibling = module.with_suffix(".manifest.json")
        path = sibling if sibling.exists() else module.parent / "agent.manifest.json"
    raw = path.read_bytes()
    return raw, manifest.parse(raw, source=str(path))


def cmd_run(args: argparse.Namespace) -> int:
    try:
        wasm = args.module.read_bytes()
        raw_manifest, parsed = _load_manifest(args.module, args.manifest)
        manifest.check_node_can_run(parsed, source=str(args.manifest or "manifest"))
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    limits = Limits(deadline_ms=args.deadline_ms, fuel_per_call=args.fuel_per_tick)
    sink = None if args.quiet else (lambda msg: print(msg.decode("utf-8", "replace")))
    try:
        agent = AgentRuntime(
            Engine(),
            wasm,
            parsed,
            agent_id=args.agent_id,
            budget=args.budget,
            price=args.price,
            epoch=Epoch(1, 0),
            limits=limits,
            log_sink=sink,
        )
    except errors.AgentError as exc:
        return _fail(EXIT_AGENT, f"{args.module}: {exc}")
    run = RunDir(args.out).create(
        wasm,
        raw_manifest,
        RunInfo(
            args.agent_id,
            "sha256:" + agent.module_digest.hex(),
            args.price,
            args.deadline_ms,
            args.fuel_per_tick,
        ),
    )
    run.write_checkpoint(agent.last_checkpoint)
    progress = Progress("ticks")
    status = EXIT_OK
    try:
        for n in range(1, args.ticks + 1):
            agent.tick()
            if n % args.checkpoint_every == 0:
                run.write_checkpoint(agent.checkpoint())
                run.write_log(agent.log)
            progress(n, args.ticks)
    except errors.AgentError as exc:
        status = _fail(EXIT_AGENT, f"tick {agent.tick_number + 1}: {exc.kind}: {exc}")
    final = agent.checkpoint()
    run.write_checkpoint(final)
    run.write_log(agent.log)
    print(
        f"{args.agent_id}: {agent.tick_number} ticks, budget {agent.budget} "
        f"(spent {agent.spent}), checkpoint sha256:{final.hash.hex()[:16]}... in {args.out}",
        file=sys.stderr,
    )
    return status


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        cp = ckpt.decode(args.checkpoint.read_bytes())
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, f"{args.checkpoint}: {exc}")
    rows = ckpt.describe(cp)
    if args.format == "json":
        print(json.dumps(dict(rows), indent=2))
    else:
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key + ':':<{width + 1}} {value}")
    return EXIT_OK


def _print_report(report, fmt: str) -> int:
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.headline())
        for finding in report.findings[1:]:
            print(f"  - {finding}")
    return EXIT_OK if report.ok else EXIT_INVALID


def cmd_verify(args: argparse.Namespace) -> int:
    replayer = Replayer()
    progress = Progress("replayed", enabled=args.format == "text")
    try:
        if args.target.is_dir():
            report = verify_run(RunDir(args.target), replayer, progress=progress)
        else:
            report = verify_bundle(bundle_mod.load(args.target), replayer, progress=progress)
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    return _print_report(report, args.format)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        bundle = bundle_mod.load(args.bundle)
        if args.module:
            bundle = bundle.with_module(args.module.read_bytes())
        elif not bundle.module:
            return _fail(
                EXIT_INPUT, f"{args.bundle}: the bundle leaves the module out: pass --module"
            )
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    progress = Progress("replayed", enabled=args.format == "text")
    result = Replayer().replay_bundle(bundle, until=args.until, progress=progress)
    if args.format == "json":
        print(json.dumps(VerificationReport(str(args.bundle), replay=result).to_json(), indent=2))
    else:
        print(result.summary())
    return EXIT_OK if result.ok else EXIT_INVALID


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        a, b = forensics.load_records(args.a), forensics.load_records(args.b)
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    common = forensics.common_ticks(a, b)
    if not common:
        return _fail(EXIT_INPUT, f"{args.a} and {args.b} have no tick in common")
    differences = forensics.diff_records(a, b, first_only=not args.all)
    if not differences:
        print(f"no difference over {len(common)} common ticks ({common[0]}..{common[-1]})")
        return EXIT_OK
    for d in differences:
        print(d)
    return EXIT_INVALID


def cmd_bisect(args: argparse.Namespace) -> int:
    progress = Progress("bisect")
    try:
        result = forensics.bisect_run(RunDir(args.run), Replayer(), progress=progress)
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    print(result.summary())
    return EXIT_OK if result.ok else EXIT_INVALID


def cmd_bundle(args: argparse.Namespace) -> int:
    try:
        made = forensics.bundle_from_run(RunDir(args.run), from_tick=args.from_tick)
    except INPUT_ERRORS as exc:
        return _fail(EXIT_INPUT, str(exc))
    if args.without_module:
        made = bundle_mod.ReplayBundle(
            made.agent_id,
            made.module_digest,
            made.manifest,
            made.checkpoint,
            made.records,
            b"",
            made.note,
            made.anchor,
        )
    made.save(args.output)
    first = made.checkpoint.tick
    print(f"wrote {args.output}: ticks {first + 1}..{first + len(made.records)}")
    return EXIT_OK
