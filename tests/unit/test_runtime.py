"""The agent runtime on real wasmtime with the real example agents."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from igor import errors, manifest
from igor.host import Engine, Limits
from igor.runtime import AgentRuntime
from tests import agents


@pytest.fixture(scope="module")
def engine():
    eng = Engine()
    yield eng
    eng.close()


def start(engine, name, **kw) -> AgentRuntime:
    kw.setdefault("budget", 10_000_000)
    kw.setdefault("price", 1000)
    return AgentRuntime(
        engine,
        agents.wasm(name),
        manifest.parse(agents.manifest_bytes(name)),
        agent_id=f"test/{name}",
        **kw,
    )


def counter_value(state: bytes) -> int:
    return struct.unpack_from("<Q", state)[0]


def test_counter_resumes_in_a_fresh_instance_and_continues(engine):
    agent = start(engine, "counter")
    for _ in range(3):
        agent.tick()
    cp = agent.checkpoint()
    assert cp.tick == 3 and counter_value(cp.state) == 3
    assert cp.budget + cp.spent == 10_000_000 and cp.spent > 0

    resumed = start(engine, "counter", checkpoint=cp)
    assert resumed.budget == agent.budget and resumed.spent == agent.spent
    resumed.tick()
    assert resumed.tick_number == 4 and counter_value(resumed.state) == 4
    assert resumed.checkpoint().prev_hash == cp.hash


def test_resume_with_a_different_module_digest_is_refused(engine):
    agent = start(engine, "counter")
    agent.tick()
    cp = agent.checkpoint()
    with pytest.raises(errors.ResumeRefused, match="module digest mismatch"):
        AgentRuntime(
            engine,
            agents.wasm("counter-plus2"),
            manifest.parse(agents.manifest_bytes("counter")),
            agent_id="test/counter",
            budget=0,
            price=1000,
            checkpoint=cp,
        )


def test_expected_digest_mismatch_is_refused_before_running(engine):
    with pytest.raises(errors.DigestMismatch, match="module digest mismatch"):
        start(engine, "counter", expected_digest=b"\x00" * 32)


def test_every_tick_records_host_calls_and_charges_fuel(engine):
    agent = start(engine, "counter")
    record = agent.tick()
    assert [c.fn for c in record.calls] == [1, 2, 3]  # clock_now, rand_bytes, log_emit
    assert record.calls[2].request == b"tick"
    assert record.fuel > 0 and record.cost > 0
    assert agent.budget == 10_000_000 - record.cost


def test_budget_never_goes_negative_and_exhaustion_refuses_the_next_tick(engine):
    agent = start(engine, "counter", budget=1)
    agent.tick()
    assert agent.budget == 0 and agent.spent == 1
    with pytest.raises(errors.BudgetExhausted, match=r"raise spec\.budget\.limit"):
        agent.tick()
    assert agent.tick_number == 1


def test_undeclared_import_fails_instantiation_naming_it(engine):
    with pytest.raises(errors.LinkError, match=r"igor\.(clock_now|http_request).*capability"):
        start(engine, "hostile-undeclared")


def test_hostile_agents_fail_in_their_own_way_while_others_keep_ticking(engine):
    honest = start(engine, "counter")
    outcomes = {}
    limits = Limits(deadline_ms=200)
    for name, expected in (
        ("hostile-loop", errors.TickDeadlineExceeded),
        ("hostile-membomb", errors.MemoryLimitExceeded),
        ("hostile-bigckpt", errors.CheckpointTooLarge),
    ):
        began = time.monotonic()
        with pytest.raises(expected) as info:
            bad = start(engine, name, limits=limits)
            for _ in range(3):
                bad.tick()
        outcomes[name] = (info.value, time.monotonic() - began)
        honest.tick()
    assert honest.tick_number == 3 and counter_value(honest.state) == 3
    loop_error, loop_seconds = outcomes["hostile-loop"]
    assert "deadline of 200 ms" in str(loop_error)
    assert loop_seconds < 5
    assert "16777216" in str(outcomes["hostile-membomb"][0])
    assert "agent_checkpoint returned" in str(outcomes["hostile-bigckpt"][0])


def test_a_looping_agent_in_another_thread_does_not_stop_others(engine):
    bad = start(engine, "hostile-loop", limits=Limits(deadline_ms=1000))
    failure: list[BaseException] = []

    def run_bad():
        try:
            bad.tick()
        except errors.AgentError as exc:
            failure.append(exc)

    t = threading.Thread(target=run_bad)
    t.start()
    honest = start(engine, "heartbeat")
    for _ in range(20):
        honest.tick()
    t.join(timeout=10)
    assert honest.tick_number == 20
    # Whichever limit trips first (1e9 fuel or the 1 s deadline) cuts the loop.
    assert failure and isinstance(failure[0], errors.TickDeadlineExceeded | errors.FuelExhausted)


def test_a_failed_instance_refuses_further_ticks(engine):
    bad = start(engine, "hostile-loop", limits=Limits(deadline_ms=50))
    with pytest.raises(errors.TickDeadlineExceeded):
        bad.tick()
    with pytest.raises(errors.InstanceFailed):
        bad.tick()
    assert bad.tick_number == 0


def test_manifest_errors_name_the_field():
    with pytest.raises(manifest.ManifestError, match="invalid JSON"):
        manifest.parse(b"{nope")
    with pytest.raises(manifest.ManifestError, match=r"capabilities\.clock\.version: must be >= 1"):
        manifest.parse(b'{"capabilities": {"clock": {}}}')
    unknown = manifest.parse(b'{"capabilities": {"kv": {"version": 1}}}')
    with pytest.raises(manifest.ManifestError, match=r"node cannot satisfy capabilities: \['kv'\]"):
        manifest.check_node_can_run(unknown)
    big = manifest.parse(b'{"resource_limits": {"max_memory_bytes": 134217728}}')
    with pytest.raises(manifest.ManifestError, match="requires 134217728 bytes memory"):
        manifest.check_node_can_run(big)
