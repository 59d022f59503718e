"""Replay: honest agents reproduce exactly, the dishonest one is caught at its
first divergent tick, and HTTP is replayed from the record with the server gone."""

from __future__ import annotations

import dataclasses
import http.server
import threading

import pytest

from igor import bundle as bundle_mod
from igor import manifest
from igor.bundle import ReplayBundle
from igor.host import Engine
from igor.replay import Replayer, Verdict
from igor.runtime import AgentRuntime
from tests import agents


@pytest.fixture(scope="module")
def engine():
    eng = Engine()
    yield eng
    eng.close()


def run(engine, name: str, ticks: int, window: int | None = None) -> AgentRuntime:
    agent = AgentRuntime(
        engine,
        agents.wasm(name),
        manifest.parse(agents.manifest_bytes(name)),
        agent_id=f"test/{name}",
        budget=10**12,
        price=1000,
        window_size=window or ticks,
    )
    for _ in range(ticks):
        agent.tick()
    return agent


def bundle_of(agent: AgentRuntime, from_tick: int | None = None) -> ReplayBundle:
    return agent.replay_bundle(from_tick)


@pytest.mark.parametrize("name", ["counter", "heartbeat"])
def test_honest_agents_verify_over_100_ticks(engine, name):
    agent = run(engine, name, 100)
    result = Replayer(engine).replay_bundle(bundle_of(agent))
    assert result.verdict is Verdict.VERIFIED, result.summary()
    assert result.ticks_replayed == 100 and (result.first_tick, result.last_tick) == (1, 100)


def test_a_window_in_the_middle_verifies(engine):
    agent = run(engine, "heartbeat", 40, window=16)
    result = Replayer(engine).replay_bundle(bundle_of(agent))
    assert result.ok and (result.first_tick, result.last_tick) == (25, 40)


def test_nondeterministic_agent_is_caught_at_its_first_divergent_tick(engine):
    agent = run(engine, "nondeterministic", 20, window=8)
    result = Replayer(engine).replay_bundle(bundle_of(agent))
    assert result.verdict is Verdict.DIVERGED
    # Its hidden counter is not in its checkpoint, so the first replayed tick differs:
    # it logs a different value before its state is even compared.
    divergence = result.divergence
    assert divergence.tick == 13 and result.ticks_replayed == 0
    assert divergence.what == "calls" and divergence.call_diff.kind == "wrong-call"
    assert b"[nondeterministic] value" in divergence.call_diff.actual.request
    assert divergence.expected_hash == agent.log.records[12].post_state_hash


def test_hidden_state_from_genesis_in_one_instance_is_indistinguishable(engine):
    # Replayed from genesis in one instance, the hidden counter evolves exactly as
    # it did live, so there is nothing to catch: the agent was deterministic then.
    agent = run(engine, "nondeterministic", 10)
    assert Replayer(engine).replay_bundle(bundle_of(agent)).ok


def tamper_call(bundle: ReplayBundle, index: int, call: int, **changes) -> ReplayBundle:
    records = list(bundle.records)
    calls = list(records[index].calls)
    calls[call] = dataclasses.replace(calls[call], **changes)
    records[index] = dataclasses.replace(records[index], calls=tuple(calls))
    return dataclasses.replace(bundle, records=tuple(records))


def test_a_different_recorded_answer_changes_the_state_and_is_reported(engine):
    agent = run(engine, "heartbeat", 10)
    bundle = bundle_of(agent)
    rand = next(i for i, c in enumerate(bundle.records[4].calls) if c.fn == 2)
    bad = tamper_call(bundle, 4, rand, result=b"\x00\x00\x00\x00" + b"\xff" * 4)
    result = Replayer(engine).replay_bundle(bad)
    # The heartbeat logs its luck, so the changed answer shows up in its next host call.
    assert result.divergence.tick == 5 and result.divergence.what == "calls"
    assert b"luck" in result.divergence.call_diff.actual.request


def test_a_different_call_is_reported_as_a_host_call_difference(engine):
    agent = run(engine, "counter", 10)
    bundle = bundle_of(agent)
    bad = tamper_call(bundle, 6, 2, request=b"tock")  # the recorded log message
    result = Replayer(engine).replay_bundle(bad)
    assert result.divergence.tick == 7 and result.divergence.what == "calls"
    assert result.divergence.call_diff.kind == "wrong-call"


def test_missing_and_extra_calls_are_named(engine):
    agent = run(engine, "counter", 5)
    bundle = bundle_of(agent)
    records = list(bundle.records)
    records[2] = dataclasses.replace(records[2], calls=records[2].calls[:2])
    result = Replayer(engine).replay_bundle(dataclasses.replace(bundle, records=tuple(records)))
    assert result.divergence.tick == 3 and result.divergence.call_diff.kind == "extra"
    records = list(bundle.records)
    records[2] = dataclasses.replace(records[2], calls=records[2].calls + records[2].calls[-1:])
    result = Replayer(engine).replay_bundle(dataclasses.replace(bundle, records=tuple(records)))
    assert result.divergence.tick == 3 and result.divergence.call_diff.kind == "missing"


def test_budget_is_part_of_what_replay_verifies(engine):
    agent = run(engine, "counter", 5)
    bundle = bundle_of(agent)
    records = list(bundle.records)
    records[3] = dataclasses.replace(records[3], cost=records[3].cost - 1)
    result = Replayer(engine).replay_bundle(dataclasses.replace(bundle, records=tuple(records)))
    assert result.divergence.tick == 4 and result.divergence.what == "cost"


def test_bundle_round_trips_through_one_cbor_file(engine, tmp_path):
    agent = run(engine, "heartbeat", 12)
    path = bundle_of(agent).save(tmp_path / "agent.bundle")
    loaded = bundle_mod.load(path)
    assert loaded.records == bundle_of(agent).records
    assert Replayer(Engine()).replay_bundle(loaded).ok


class _Quote(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"price": 4242}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_is_recorded_live_and_replayed_without_the_server(engine):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 18475), _Quote)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        agent = run(engine, "httpget", 5)
    finally:
        server.shutdown()
        server.server_close()
    http_calls = [c for r in agent.log.records for c in r.calls if c.fn == 8]
    assert len(http_calls) == 5
    assert all(c.result.endswith(b'{"price": 4242}') for c in http_calls)
    # The server is gone: replay must answer from the record alone.
    result = Replayer(engine).replay_bundle(bundle_of(agent))
    assert result.ok, result.summary()
