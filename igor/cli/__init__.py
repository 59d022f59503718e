"""The `igor` command line."""

from __future__ import annotations

import argparse
import sys

from . import agent, dev


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igor",
        description="Run, inspect and replay-verify igor WebAssembly agents; manage a local "
        "Kubernetes control plane for development.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agent.register(sub)
    dev.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
