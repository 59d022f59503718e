"""The replay gate: verify a migrating agent's recent ticks before its authority moves.

The replay runs in a child process (sandbox.py) under resource limits: address space, writable
data, CPU seconds and open files via setrlimit, and a wall-clock timeout enforced here. Fuel and
the tick deadline are bounded by the replay engine itself, and replay answers every host call
from the record, so nothing the agent does reaches the world.

`judge` then holds the replay against the final checkpoint the source wrote when it froze:
the replay must end exactly there, with the same state hash, budget and spend, and the same
event-log head. Only then may the migration cut over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igor.api import MigrationVerdict
from igor.checkpoint import Checkpoint

log = logging.getLogger(__name__)

GiB = 1024**3


@dataclass(frozen=True)
class SandboxLimits:
    # wasmtime reserves (but does not commit) several GiB of address space per linear memory,
    # so the address-space limit is loose; writable memory is what RLIMIT_DATA bounds.
    address_space: int = 16 * GiB
    data: int = 1 * GiB
    cpu_seconds: int = 120
    open_files: int = 256
    timeout: float = 120.0


class GateError(Exception):
    """The sandbox did not produce a result (crash, timeout, limit hit)."""


def _preexec(limits: SandboxLimits) -> Callable[[], None]:
    def apply() -> None:
        os.setsid()
        for which, value in (
            (resource.RLIMIT_AS, limits.address_space),
            (resource.RLIMIT_DATA, limits.data),
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(which, (value, value))

    return apply


class Sandbox:
    """Runs replays in fresh child processes, keeping one started ahead of time."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), python: str = sys.executable):
        self.limits = limits
        self.python = python
        self._spare: asyncio.subprocess.Process | None = None
        self._spare_ready: asyncio.Task[asyncio.subprocess.Process] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="igor-gate-"))

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "IGOR_NODE"))}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "igor_operator.sandbox",
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_preexec(self.limits),
            cwd=str(self._workdir),
            env=env,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.limits.timeout)
        except TimeoutError:
            _kill(proc)
            raise GateError("the replay sandbox did not start in time") from None
        if not line or not json.loads(line).get("ready"):
            stderr = await _stderr(proc)
            _kill(proc)
            raise GateError(f"the replay sandbox failed to start: {stderr}")
        return proc

    def prewarm(self) -> None:
        if self._spare_ready is None:
            self._spare_ready = asyncio.ensure_future(self._spawn())

    async def _take(self) -> asyncio.subprocess.Process:
        task, self._spare_ready = self._spare_ready, None
        proc = None
        if task is not None:
            with contextlib.suppress(GateError, OSError):
                proc = await task
        if proc is None or proc.returncode is not None:
            proc = await self._spawn()
        self.prewarm()
        return proc

    async def replay(self, bundle: bytes, module: bytes | None = None) -> dict[str, Any]:
        job_dir = Path(tempfile.mkdtemp(dir=self._workdir))
        try:
            bundle_path = job_dir / "replay.bundle"
            bundle_path.write_bytes(bundle)
            job: dict[str, Any] = {"bundle": str(bundle_path), "module": None}
            if module is not None:
                module_path = job_dir / "module.wasm"
                module_path.write_bytes(module)
                job["module"] = str(module_path)
            proc = await self._take()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write((json.dumps(job) + "\n").encode())
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), self.limits.timeout)
            except TimeoutError:
                _kill(proc)
                raise GateError(
                    f"the replay did not finish within {self.limits.timeout:.0f}s"
                ) from None
            except (BrokenPipeError, ConnectionResetError):
                line = b""
            if not line:
                code = await proc.wait()
                stderr = await _stderr(proc)
                raise GateError(f"the replay sandbox exited with {code}: {stderr}")
            await proc.wait()
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                raise GateError(f"the replay sandbox answered garbage: {line[:200]!r}") from None
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    async def close(self) -> None:
        task, self._spare_ready = self._spare_ready, None
        if task is not None:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                proc = await task
                _kill(proc)
                await proc.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def _stderr(proc: asyncio.subprocess.Process) -> str:
    if proc.stderr is None:
        return ""
    try:
        data = await asyncio.wait_for(proc.stderr.read(), 2)
    except TimeoutError:
        return ""
    text = data.decode(errors="replace").strip()
    return text.splitlines()[-1] if text else "(no output)"


# --------------------------------------------------------------------------- judgement


@dataclass
class Judgement:
    verdict: MigrationVerdict
    reason: str
    message: str
    # For Error: retrying cannot help (the bundle is malformed, for another agent or module).
    fatal: bool = False
    replay: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict in (MigrationVerdict.VERIFIED, MigrationVerdict.SKIPPED)


def skipped(final: Checkpoint, message: str) -> Judgement:
    """Nothing ran since the checkpoint the source restored from: it is the final one."""
    return Judgement(
        MigrationVerdict.SKIPPED,
        "NothingToReplay",
        message,
        replay={
            "verdict": "Skipped",
            "ticksReplayed": 0,
            "fromTick": final.tick,
            "toTick": final.tick,
        },
    )


def state_hash(cp: Checkpoint) -> str:
    return "sha256:" + hashlib.sha256(cp.state).hexdigest()


def judge(
    result: dict[str, Any], final: Checkpoint, *, agent_id: str, module_digest: str
) -> Judgement:
    """Compare a sandbox result with the final checkpoint of the frozen source."""
    info = result.get("bundle") or {}
    replay = {
        "ticksReplayed": int(result.get("ticksReplayed") or 0),
        "fromTick": int(result.get("firstTick") or 0),
        "toTick": int(result.get("lastTick") or final.tick),
    }

    def error(reason: str, message: str, fatal: bool) -> Judgement:
        return Judgement(
            MigrationVerdict.ERROR, reason, message, fatal, {**replay, "verdict": "Error"}
        )

    def diverged(tick: int, expected: str | None, actual: str | None, what: str, diff=None):
        fields = {**replay, "verdict": "Diverged", "firstDivergentTick": tick}
        if expected:
            fields["expectedHash"] = expected
        if actual:
            fields["actualHash"] = actual
        if diff:
            fields["callDifference"] = diff
        return Judgement(MigrationVerdict.DIVERGED, "ReplayDiverged", what, True, fields)

    if result.get("verdict") == "Error" and result.get("input"):
        return error("BadBundle", f"replay bundle unusable: {result.get('error')}", True)
    if info.get("agent") and info["agent"] != agent_id:
        return error("BadBundle", f"the bundle is for agent {info['agent']}, not {agent_id}", True)
    if info.get("moduleDigest") and info["moduleDigest"] != module_digest:
        return error(
            "DigestMismatch",
            f"the bundle's module is {info['moduleDigest']}, the agent's spec.module.digest is "
            f"{module_digest}",
            True,
        )
    if result.get("verdict") == "Error":
        # A trap or limit during replay is the agent's behaviour, not the sandbox's: fatal.
        return error("ReplayError", f"replay could not run: {result.get('error')}", True)
    if result.get("verdict") == "Diverged":
        d = result.get("divergence") or {}
        detail = "; ".join(
            p for p in (f"{d.get('what')} diverged", d.get("detail"), d.get("callDifference")) if p
        )
        return diverged(
            int(d.get("tick") or 0),
            d.get("expectedHash"),
            d.get("actualHash"),
            f"replay diverged at tick {d.get('tick')}: {detail}",
            d.get("callDifference"),
        )
    if result.get("verdict") != "Verified":
        return error("ReplayError", f"unexpected replay verdict {result.get('verdict')!r}", False)

    final_hash = "sha256:" + final.hash.hex()
    if int(info.get("records") or 0) == 0:
        if info.get("startCheckpointHash") == final_hash:
            return skipped(final, f"no tick since the checkpoint at tick {final.tick}")
        return error(
            "BadBundle",
            f"the bundle holds no ticks and does not start at the final checkpoint (tick "
            f"{final.tick})",
            True,
        )
    expected_state = state_hash(final)
    checks = [
        ("tick", final.tick, int(result.get("lastTick") or -1)),
        ("state hash", expected_state, result.get("finalStateHash")),
        ("budget", final.budget, int(info.get("startBudget", 0)) - int(info.get("cost", 0))),
        ("spent", final.spent, int(info.get("startSpent", 0)) + int(info.get("cost", 0))),
        ("event-log head", "sha256:" + final.log_head.hex(), info.get("lastRecordHash")),
    ]
    for what, expected, actual in checks:
        if expected != actual:
            return diverged(
                final.tick,
                expected_state,
                result.get("finalStateHash"),
                f"the replay does not end at the final checkpoint: {what} is {actual}, the "
                f"checkpoint says {expected}",
            )
    return Judgement(
        MigrationVerdict.VERIFIED,
        "ReplayVerified",
        f"replayed ticks {replay['fromTick']}..{replay['toTick']} ({replay['ticksReplayed']}): "
        "every state hash reproduced, ending at the final checkpoint",
        replay={**replay, "verdict": "Verified"},
    )
