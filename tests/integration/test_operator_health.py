"""The operator's /healthz and /readyz (--health-port), on a real operator process."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

from . import test_operator_fixtures as fx
from .test_operator_fixtures import eventually

ns, label, operator = fx.ns, fx.label, fx.operator


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(port: int, path: str) -> tuple[int, str] | None:
    try:
        return get(port, path)
    except OSError:
        return None  # not listening yet


def test_the_leader_and_a_standby_are_live_and_ready(k8s, ns, operator):
    leader_port, standby_port = fx.free_port(), fx.free_port()
    leader = operator("--health-port", str(leader_port))
    assert get(leader_port, "/healthz") == (200, "ok\n")
    assert get(leader_port, "/readyz") == (200, "ok: leading\n")
    standby = operator("--health-port", str(standby_port), wait_ready=False, lease=leader.lease)
    standby.wait_for("waiting to become leader", timeout=30)
    assert get(standby_port, "/healthz") == (200, "ok\n")
    eventually(lambda: get(standby_port, "/readyz") == (200, "ok: standby\n"), what="standby ready")
    assert get(leader_port, "/readyz")[0] == 200
    standby.terminate()
    leader.terminate()


def test_not_ready_until_the_api_server_answers(kubeconfig, tmp_path, ns, operator):
    # The same cluster credentials, but an address where nothing listens.
    dead = tmp_path / "unreachable.kubeconfig"
    text = Path(kubeconfig).read_text()
    dead.write_text(re.sub(r"server: \S+", f"server: https://127.0.0.1:{fx.free_port()}", text))
    port = fx.free_port()
    proc = fx.OperatorProcess(str(dead), tmp_path, ns, "--health-port", str(port))
    proc.start(wait_ready=False)
    try:
        got = eventually(lambda: answers(port, "/healthz"), what="health server up")
        assert got == (200, "ok\n")
        proc.wait_for("leader election", timeout=30)
        status, text = get(port, "/readyz")
        assert status == 503, text
        assert "not connected to the API server" in text
    finally:
        proc.terminate()
