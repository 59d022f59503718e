"""`igor dev up|down|status`: a local control plane that outlives the command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from igor import kube
from igor.controlplane import (
    BinariesNotFound,
    ControlPlaneError,
    LocalControlPlane,
    load_state,
    stop_detached,
)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "igor" / "dev"


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("dev", help="local Kubernetes control plane for development")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")

    up = dev_sub.add_parser("up", help="start etcd, kube-apiserver, kube-controller-manager")
    up.add_argument("--dir", type=Path, default=default_dir(), help="state folder")
    up.add_argument("--no-crds", action="store_true", help="do not install igor's CRDs")
    up.set_defaults(handler=cmd_up)

    down = dev_sub.add_parser("down", help="stop the local control plane")
    down.add_argument("--dir", type=Path, default=default_dir(), help="state folder")
    down.set_defaults(handler=cmd_down)

    status = dev_sub.add_parser("status", help="show whether it runs and its kubeconfig")
    status.add_argument("--dir", type=Path, default=default_dir(), help="state folder")
    status.set_defaults(handler=cmd_status)


def _running(state) -> bool:
    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    return all(alive(pid) for pid in state.pids.values())


def cmd_up(args: argparse.Namespace) -> int:
    state = load_state(args.dir)
    if state and _running(state):
        print(f"already running at {state.api_url}", file=sys.stderr)
        _print_usage(state.kubeconfig)
        return 0
    if state:
        stop_detached(args.dir)
    print(f"starting local control plane in {args.dir} ...", file=sys.stderr)
    crds = None if args.no_crds else kube.crd_files()
    plane = LocalControlPlane(args.dir, detached=True, crd_files=crds)
    try:
        plane.start()
    except (BinariesNotFound, ControlPlaneError) as exc:
        print(f"igor dev up: {exc}", file=sys.stderr)
        return 1
    print(
        f"kube-apiserver ready at {plane.api_url} in {plane.timings['total']:.1f}s",
        file=sys.stderr,
    )
    if crds:
        print(f"installed CRDs from {', '.join(p.name for p in crds)}", file=sys.stderr)
    _print_usage(str(plane.kubeconfig))
    return 0


def _print_usage(kubeconfig: str) -> None:
    print(f"kubeconfig: {kubeconfig}", file=sys.stderr)
    print("use it with:", file=sys.stderr)
    print(f"  export KUBECONFIG={kubeconfig}", file=sys.stderr)
    print("  kubectl get igor", file=sys.stderr)
    # stdout carries only the path, so `export KUBECONFIG=$(igor dev up)` works.
    print(kubeconfig)


def cmd_down(args: argparse.Namespace) -> int:
    stopped = stop_detached(args.dir)
    if not stopped:
        print(f"nothing running in {args.dir}", file=sys.stderr)
        return 0
    print(f"stopped {', '.join(stopped)}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = load_state(args.dir)
    if not state:
        print(f"not running (no state in {args.dir})")
        return 1
    running = _running(state)
    print(f"{'running' if running else 'stopped'}: {state.api_url}")
    print(f"kubeconfig: {state.kubeconfig}")
    return 0 if running else 1
