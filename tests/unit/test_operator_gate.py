"""The replay gate: a real replay in the sandbox process, judged against the final checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from igor import checkpoint as ckpt
from igor.api import MigrationVerdict
from igor.rundir import RunDir
from igor_operator import gate
from tests import agents


def make_bundle(tmp: Path, agent: str, ticks: int, from_tick: int) -> tuple[bytes, ckpt.Checkpoint]:
    run = tmp / agent
    py = [sys.executable, "-m", "igor"]
    subprocess.run(
        [
            *py,
            "run",
            str(agents.path(agent)),
            "--ticks",
            str(ticks),
            "--out",
            str(run),
            "--quiet",
            "--checkpoint-every",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    out = tmp / f"{agent}.bundle"
    subprocess.run(
        [*py, "bundle", str(run), "--from-tick", str(from_tick), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes(), RunDir(run).checkpoints()[-1]


@pytest.fixture
async def sandbox():
    box = gate.Sandbox(gate.SandboxLimits(timeout=60))
    box.prewarm()
    yield box
    await box.close()


async def test_counter_verifies_and_ends_at_the_final_checkpoint(tmp_path, sandbox):
    bundle, final = make_bundle(tmp_path, "counter", 8, 4)
    result = await sandbox.replay(bundle)
    digest = result["bundle"]["moduleDigest"]
    verdict = gate.judge(result, final, agent_id="local/agent", module_digest=digest)
    assert verdict.verdict is MigrationVerdict.VERIFIED, verdict.message
    assert verdict.replay == {"ticksReplayed": 4, "fromTick": 5, "toTick": 8, "verdict": "Verified"}


async def test_a_final_checkpoint_the_replay_does_not_reach_is_a_divergence(tmp_path, sandbox):
    bundle, final = make_bundle(tmp_path, "counter", 8, 4)
    result = await sandbox.replay(bundle)
    forged = dict(result, finalStateHash="sha256:" + "0" * 64)
    digest = result["bundle"]["moduleDigest"]
    verdict = gate.judge(forged, final, agent_id="local/agent", module_digest=digest)
    assert verdict.verdict is MigrationVerdict.DIVERGED
    assert verdict.replay["firstDivergentTick"] == 8
    assert "state hash" in verdict.message


async def test_nondeterministic_agent_diverges_with_tick_hashes_and_call_difference(
    tmp_path, sandbox
):
    bundle, final = make_bundle(tmp_path, "nondeterministic", 8, 4)
    result = await sandbox.replay(bundle)
    verdict = gate.judge(
        result, final, agent_id="local/agent", module_digest=result["bundle"]["moduleDigest"]
    )
    assert verdict.verdict is MigrationVerdict.DIVERGED and verdict.fatal
    assert verdict.replay["firstDivergentTick"] == 5
    assert verdict.replay["expectedHash"].startswith("sha256:")
    assert "log_emit" in verdict.replay["callDifference"]


async def test_wrong_agent_or_module_is_fatal(tmp_path, sandbox):
    bundle, final = make_bundle(tmp_path, "counter", 4, 2)
    result = await sandbox.replay(bundle)
    wrong_agent = gate.judge(
        result, final, agent_id="ns/other", module_digest=result["bundle"]["moduleDigest"]
    )
    assert wrong_agent.verdict is MigrationVerdict.ERROR and wrong_agent.fatal
    wrong_module = gate.judge(
        result, final, agent_id="local/agent", module_digest="sha256:" + "1" * 64
    )
    assert wrong_module.reason == "DigestMismatch" and wrong_module.fatal


async def test_garbage_bundle_is_an_input_error(sandbox):
    result = await sandbox.replay(b"not cbor")
    assert result["verdict"] == "Error" and result["input"]


async def test_a_sandbox_that_never_answers_is_killed(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho '{\"ready\": true}'\nexec sleep 30\n")
    fake.chmod(0o755)
    box = gate.Sandbox(gate.SandboxLimits(timeout=0.5), python=str(fake))
    try:
        with pytest.raises(gate.GateError, match="did not finish"):
            await box.replay(b"bundle")
    finally:
        await box.close()


async def test_memory_limit_applies_to_the_sandbox(tmp_path):
    box = gate.Sandbox(gate.SandboxLimits(data=8 * 1024 * 1024, timeout=30))
    try:
        with pytest.raises(gate.GateError):
            await box.replay(b"bundle")
    finally:
        await box.close()
