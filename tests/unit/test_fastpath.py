"""The tick fast path behaves exactly like the generic code it replaces.

Export calls go straight to libwasmtime (igor.host._fast_call); each scenario here runs once
that way and once through wasmtime-py's generic `Func.__call__`, and the outcomes (results,
fuel, exception types and messages, the instance's failure) must be identical. Guest memory
access is compared with the wasmtime.Memory-based implementation it replaced, event-log
record encoding with cbor2's canonical encoding, and record validation with the checks that
ran before the fast paths.
"""

from __future__ import annotations

import ctypes

import cbor2
import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from igor import abi, cbor, errors, eventlog, host, manifest
from igor.abi import HostcallID
from igor.bundle import ReplayBundle
from igor.cbor import INT64_MAX, bytes_problem, type_name, uint_problem
from igor.checkpoint import ZERO_HASH
from igor.eventlog import MAX_CALL_BYTES, MAX_FN, EventLog, EventLogError, HostCall, TickRecord
from igor.hostcalls import HostState, LiveSource, ReplayMismatch
from igor.replay import Replayer
from igor.runtime import AgentRuntime
from tests import agents

MANIFEST = manifest.parse(
    b'{"capabilities": {"clock": {"version": 1}, "rand": {"version": 1}, "log": {"version": 1}}}'
)


@pytest.fixture(scope="module")
def engine():
    eng = host.Engine()
    yield eng
    eng.close()


def generic_exports(monkeypatch) -> None:
    """Make new instances call exports through wasmtime-py, as igor did before the fast path."""

    def generic(store, extern, trap):
        return lambda *args: extern(store, *args)

    monkeypatch.setattr(host, "_export_caller", generic)


def module(
    tick: str = "(i32.const 1)",
    malloc: str = "(param i32) (result i32) (i32.const 64)",
    checkpoint: str = "(result i32) (i32.const 8)",
    resume: str = "(param i32 i32)",
) -> bytes:
    # A minimal agent; each scenario swaps in the bodies it needs.
    wat = f"""
    (module
      (import "igor" "clock_now" (func $clock (result i64)))
      (import "igor" "rand_bytes" (func $rand (param i32 i32) (result i32)))
      (import "igor" "log_emit" (func $log (param i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "tick")
      (func (export "agent_init"))
      (func (export "agent_tick") (result i32) {tick})
      (func (export "agent_checkpoint") {checkpoint})
      (func (export "agent_checkpoint_ptr") (result i32) (i32.const 16))
      (func (export "agent_resume") {resume})
      (func (export "malloc") {malloc}))
    """
    return bytes(wasmtime.wat2wasm(wat))


# rand_bytes writes past the 8 state bytes at 16, so that the state is deterministic.
CALLS = "(drop (call $clock)) (drop (call $rand (i32.const 32) (i32.const 4))) "
CALLS += "(call $log (i32.const 0) (i32.const 4))"
TICKS = {
    "ok": CALLS + " (i32.const 1)",
    "unreachable": CALLS + " unreachable",
    "loop": "(loop $l (br $l)) (i32.const 0)",
    "out-of-bounds": "(i32.load (i32.const 0x7ffffff0))",
    "divide-by-zero": "(i32.div_s (i32.const 1) (i32.const 0))",
    "memory-bomb": "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) "
    "unreachable",
    "big-checkpoint-pointer": "(i32.const 0)",
}


class Raising:
    """A call source whose every answer is an exception."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def observe(self, fn, request, live):
        raise self.exc


def run(
    engine,
    wasm: bytes,
    source,
    limits=host.Limits(),
    steps=("init", "tick", "capture"),
    grants=MANIFEST,
):
    """What each step returned or raised, and the instance's failure afterwards."""
    out: list[tuple] = []
    try:
        compiled = engine.compile(wasm)
        instance = host.AgentInstance(engine, compiled, grants, HostState(source=source), limits)
    except BaseException as exc:
        return [("construct", type(exc).__name__, str(exc))]
    actions = {
        "init": instance.init,
        "tick": instance.tick,
        "capture": instance.capture_state,
        "resume": lambda: instance.resume(b"state"),
        "resume-empty": lambda: instance.resume(b""),
    }
    for step in steps:
        try:
            out.append((step, "ok", actions[step]()))
        except BaseException as exc:
            out.append((step, type(exc).__name__, str(exc)))
    failed = instance.failed
    out.append(("failed", type(failed).__name__, str(failed)))
    out.append(("calls", [(c.fn, c.request) for c in getattr(source, "calls", [])]))
    return out


def both(monkeypatch, engine, wasm, make_source=LiveSource, **kw):
    fast = run(engine, wasm, make_source(), **kw)
    with monkeypatch.context() as patch:
        generic_exports(patch)
        generic = run(engine, wasm, make_source(), **kw)
    assert fast == generic
    return fast


@pytest.mark.parametrize("name", sorted(TICKS))
def test_guest_outcomes_and_fuel_match_the_generic_call(engine, monkeypatch, name):
    limits = host.Limits(deadline_ms=30)
    outcome = both(monkeypatch, engine, module(TICKS[name]), limits=limits)
    expected = {
        "ok": "ok",
        "unreachable": "AgentTrap",
        "loop": "TickDeadlineExceeded",
        "out-of-bounds": "AgentTrap",
        "divide-by-zero": "AgentTrap",
        "memory-bomb": "MemoryLimitExceeded",
        "big-checkpoint-pointer": "ok",
    }[name]
    assert outcome[1][1] == expected
    if name == "ok":
        assert outcome[1][2][0] is True and outcome[1][2][1] > 0  # (more, fuel)


def test_fuel_exhaustion_matches_the_generic_call(engine, monkeypatch):
    limits = host.Limits(fuel_per_call=10_000)
    outcome = both(monkeypatch, engine, module(TICKS["loop"]), limits=limits)
    assert outcome[1][1] == "FuelExhausted" and "10000 fuel" in outcome[1][2]
    assert outcome[2][1] == "InstanceFailed"


def test_memory_limit_matches_the_generic_call(engine, monkeypatch):
    small = manifest.parse(
        b'{"capabilities": {"clock": {"version": 1}, "rand": {"version": 1}, '
        b'"log": {"version": 1}}, "resource_limits": {"max_memory_bytes": 196608}}'
    )
    outcome = both(monkeypatch, engine, module(TICKS["memory-bomb"]), grants=small)
    assert outcome[1][1] == "MemoryLimitExceeded"


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("source broke"),
        wasmtime.WasmtimeError("host-side wasmtime error"),
        ReplayMismatch.__new__(ReplayMismatch),
        KeyboardInterrupt(),
    ],
    ids=["runtime-error", "wasmtime-error", "replay-mismatch", "keyboard-interrupt"],
)
def test_host_call_exceptions_surface_as_before(engine, monkeypatch, exc):
    if isinstance(exc, ReplayMismatch):
        Exception.__init__(exc, "replay departed")
    outcome = both(monkeypatch, engine, module(TICKS["ok"]), lambda: Raising(exc))
    assert outcome[1][0] == "tick" and outcome[1][1] != "ok"


@pytest.mark.parametrize(
    "exports",
    [
        {"malloc": "(result i32) (i32.const 64)"},  # takes no length
        {"malloc": "(param i32 i32) (result i32) (i32.const 64)"},
        {"malloc": "(param i64) (result i64) (i64.const 64)"},
        {"malloc": "(param i32) (result i32) (i32.const 65534)"},  # no room for the state
        {"resume": "(param i32)"},
        {"resume": "(param i64 i64)"},
        {"checkpoint": "(result i32) (i32.const 0)"},
        {"checkpoint": "(result i32) (i32.const -1)"},
        {"checkpoint": "(result i64) (i64.const 8)"},
        {"checkpoint": "(result f64) (f64.const 8)"},  # not a fast signature: generic call
        {"checkpoint": "(result i32) (i32.const 0x10000)"},  # state outside memory
    ],
)
def test_export_signatures_and_return_values_match_the_generic_call(engine, monkeypatch, exports):
    steps = ("init", "resume", "resume-empty", "tick", "capture")
    both(monkeypatch, engine, module(**exports), steps=steps)


def live_bundle(engine, name: str, ticks: int) -> ReplayBundle:
    agent = AgentRuntime(
        engine,
        agents.wasm(name),
        manifest.parse(agents.manifest_bytes(name)),
        agent_id=f"test/{name}",
        budget=10**12,
        price=1000,
        window_size=ticks,
    )
    for _ in range(ticks):
        agent.tick()
    return agent.replay_bundle()


@pytest.mark.parametrize("name", ["counter", "heartbeat"])
@pytest.mark.parametrize("live", ["fast", "generic"])
def test_fuel_recorded_on_one_path_is_the_fuel_replayed_on_the_other(
    engine, monkeypatch, name, live
):
    # Replay compares state hash, fuel, cost and hint of every tick with the record.
    with monkeypatch.context() as patch:
        if live == "generic":
            generic_exports(patch)
        bundle = live_bundle(engine, name, 25)
    with monkeypatch.context() as patch:
        if live == "fast":
            generic_exports(patch)
        result = Replayer(engine).replay_bundle(bundle)
    assert result.ok, result.summary()
    assert result.ticks_replayed == 25


class ReferenceMemory:
    """The wasmtime.Memory-based guest memory access that host._Memory replaced."""

    def __init__(self, store, memory):
        self._store = store
        self._memory = memory

    def size(self) -> int:
        return self._memory.data_len(self._store)

    def read(self, ptr: int, length: int) -> bytes | None:
        if ptr < 0 or length < 0 or ptr + length > self.size():
            return None
        return bytes(self._memory.read(self._store, ptr, ptr + length))

    def write(self, ptr: int, data: bytes) -> bool:
        if ptr < 0 or ptr + len(data) > self.size():
            return False
        self._memory.write(self._store, data, ptr)
        return True


@pytest.fixture(scope="module")
def memories():
    store = wasmtime.Store()
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    fast = host._Memory(store)
    fast.bind(mem)
    return store, mem, fast, ReferenceMemory(store, mem)


def attempt(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


NEAR_EDGES = st.one_of(st.integers(-3, 3), st.integers(65536 - 12, 65536 + 3), st.integers())


@settings(max_examples=400, deadline=None)
@given(ptr=NEAR_EDGES, length=st.one_of(st.integers(-2, 12), st.integers()))
def test_memory_reads_match_the_wasmtime_memory_api(memories, ptr, length):
    _, _, fast, reference = memories
    assert attempt(fast.read, ptr, length) == attempt(reference.read, ptr, length)
    assert fast.size() == reference.size() == 65536


@settings(max_examples=400, deadline=None)
@given(ptr=NEAR_EDGES, data=st.binary(max_size=12))
def test_memory_writes_match_the_wasmtime_memory_api(memories, ptr, data):
    store, mem, fast, reference = memories
    before = bytes(mem.read(store, 0, 65536))
    outcome = attempt(fast.write, ptr, data)
    after_fast = bytes(mem.read(store, 0, 65536))
    mem.write(store, before, 0)
    assert outcome == attempt(reference.write, ptr, data)
    assert bytes(mem.read(store, 0, 65536)) == after_fast


def test_unbound_memory_reads_and_writes_nothing():
    memory = host._Memory(wasmtime.Store())
    assert memory.size() == 0
    assert memory.read(0, 0) is None and memory.write(0, b"") is False


def test_the_recorded_host_calls_are_the_ones_made(engine):
    source = LiveSource()
    instance = host.AgentInstance(
        engine, engine.compile(module(TICKS["ok"])), MANIFEST, HostState(source=source)
    )
    instance.init()
    instance.tick()
    assert [(c.fn, c.request) for c in source.calls] == [
        (1, b""),
        (2, (4).to_bytes(4, "little")),
        (3, b"tick"),
    ]
    assert all(type(c) is HostCall for c in source.calls)
    with pytest.raises(errors.InstanceFailed):
        instance.failed = errors.AgentTrap("x")
        instance.tick()


# --- event-log records: hand-written canonical encoding, validation fast paths ----------------

EDGE_UINTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, INT64_MAX]
UINTS = st.one_of(st.sampled_from(EDGE_UINTS), st.integers(0, INT64_MAX))
EDGE_LENGTHS = [0, 1, 23, 24, 255, 256, 65535, 65536]
BLOBS = st.one_of(st.binary(max_size=40), st.sampled_from(EDGE_LENGTHS).map(bytes))
CALL_LISTS = st.lists(
    st.builds(
        HostCall,
        st.one_of(st.sampled_from([0, 23, 24, 255, 256, MAX_FN]), st.integers(0, MAX_FN)),
        BLOBS,
        BLOBS,
    ),
    max_size=5,
)
RECORDS = st.builds(
    TickRecord,
    tick=st.one_of(st.sampled_from(EDGE_UINTS[1:]), st.integers(1, INT64_MAX)),
    calls=CALL_LISTS.map(tuple),
    fuel=UINTS,
    cost=UINTS,
    more=st.booleans(),
    post_state_hash=st.binary(min_size=32, max_size=32),
    prev=st.binary(min_size=32, max_size=32),
)


@settings(max_examples=300, deadline=None)
@given(record=RECORDS, stored=st.binary(min_size=32, max_size=32))
def test_record_encoding_is_cbor2_canonical_byte_for_byte(record, stored):
    wire = eventlog._record_wire(record)
    assert eventlog._record_bytes(record) == cbor2.dumps(wire, canonical=True)
    assert eventlog._record_bytes(record, stored) == cbor2.dumps(
        {**wire, "h": stored}, canonical=True
    )
    assert record.hash == cbor.sha256(cbor2.dumps(wire, canonical=True))


def test_record_encoding_falls_back_to_cbor2_for_other_types():
    record = TickRecord(7, (HostCall(1, Blob(b"req"), b"res"),), 5, 2, True, ZERO_HASH, ZERO_HASH)
    assert eventlog._encode_record(record, None) is None
    assert eventlog._record_bytes(record) == cbor.encode_canonical(eventlog._record_wire(record))


def test_log_file_form_is_unchanged():
    log = EventLog("default/counter", cbor.sha256(b"anchor"))
    for tick in range(1, 6):
        calls = (HostCall(HostcallID.CLOCK_NOW, b"", bytes(8)), HostCall(3, b"x" * tick * 10, b""))
        log.append(tick, calls, 1000 * tick, tick, tick % 2 == 0, cbor.sha256(bytes([tick])))
    header = cbor.encode_canonical({"v": 1, "agent": log.agent, "anchor": log.anchor})
    items = [
        cbor.encode_canonical({**eventlog._record_wire(r), "h": log.stored_hash(i)})
        for i, r in enumerate(log)
    ]
    assert log.encode() == header + b"".join(items)
    assert EventLog.decode(log.encode()) == log


def reference_host_call(fn, request, result):
    """HostCall's checks before the fast path: the error text, or the stored values."""
    for problem, name in (
        (uint_problem(fn, maximum=MAX_FN), "fn"),
        (bytes_problem(request, max_length=MAX_CALL_BYTES), "request"),
        (bytes_problem(result, max_length=MAX_CALL_BYTES), "result"),
    ):
        if problem is not None:
            return f'host call field "{name}": {problem}'
    return (int(fn), request, result)


def construct(make, *args):
    try:
        return make(*args)
    except EventLogError as exc:
        return str(exc)


class Blob(bytes):
    pass


ODD_VALUES = st.sampled_from(
    [
        True,
        False,
        -1,
        MAX_FN + 1,
        2**64,
        1.0,
        None,
        "x",
        bytearray(b"ab"),
        Blob(b"ab"),
        HostcallID.LOG_EMIT,
        [],
        (),
    ]
)
FNS = st.one_of(st.integers(-2, MAX_FN + 2), ODD_VALUES)
VALUES = st.one_of(st.binary(max_size=8), ODD_VALUES)


@settings(max_examples=400, deadline=None)
@given(fn=FNS, request=VALUES, result=VALUES)
def test_host_call_accepts_and_refuses_what_it_did(fn, request, result):
    made = construct(HostCall, fn, request, result)
    expected = reference_host_call(fn, request, result)
    if isinstance(made, HostCall):
        assert (made.fn, made.request, made.result) == expected
        assert type(made.fn) is int
    else:
        assert made == expected


def reference_tick_record(tick, calls, fuel, cost, more, post_state_hash, prev):
    where = "tick record"
    problem = uint_problem(tick)
    if problem is not None:
        return f'{where} field "tick": {problem}'
    if tick < 1:
        return f'{where} field "tick": must be >= 1 (ticks are numbered from 1), got 0'
    if isinstance(calls, list):
        calls = tuple(calls)
    if not isinstance(calls, tuple):
        return f'{where} field "calls": must be a tuple, got {type_name(calls)}'
    for position, call in enumerate(calls):
        if not isinstance(call, HostCall):
            problem = f"must be a HostCall, got {type(call).__name__}"
            return f'{where} field "calls[{position}]": {problem}'
    for value, name in ((fuel, "fuel"), (cost, "cost")):
        problem = uint_problem(value)
        if problem is not None:
            return f'{where} field "{name}": {problem}'
    if not isinstance(more, bool):
        return f'{where} field "more": must be a boolean, got {type_name(more)}'
    for value, name in ((post_state_hash, "post_state_hash"), (prev, "prev")):
        problem = bytes_problem(value, length=32)
        if problem is not None:
            return f'{where} field "{name}": {problem}'
    return (tick, calls, fuel, cost, more, post_state_hash, prev)


ODD_INTS = st.sampled_from([True, False, -1, 0, INT64_MAX + 1, 1.0, None, HostcallID.CLOCK_NOW])
INTS = st.one_of(st.sampled_from(EDGE_UINTS), ODD_INTS)
HASHES = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=31, max_size=33),
    st.sampled_from([Blob(bytes(32)), bytearray(32), None]),
)
CALLS = st.one_of(
    CALL_LISTS,
    CALL_LISTS.map(tuple),
    st.sampled_from([(HostCall(1, b"", b""), "call"), None, "calls", ((1, b"", b""),)]),
)


@settings(max_examples=400, deadline=None)
@given(
    tick=INTS,
    calls=CALLS,
    fuel=INTS,
    cost=INTS,
    more=st.one_of(st.booleans(), ODD_INTS),
    post_state_hash=HASHES,
    prev=HASHES,
)
def test_tick_record_accepts_and_refuses_what_it_did(
    tick, calls, fuel, cost, more, post_state_hash, prev
):
    args = (tick, calls, fuel, cost, more, post_state_hash, prev)
    made = construct(TickRecord, *args)
    expected = reference_tick_record(*args)
    if isinstance(made, TickRecord):
        assert (
            made.tick,
            made.calls,
            made.fuel,
            made.cost,
            made.more,
            made.post_state_hash,
            made.prev,
        ) == expected
        assert type(made.calls) is tuple
    else:
        assert made == expected


VALID_RECORD = {
    "tick": 1,
    "calls": (HostCall(1, b"", bytes(8)),),
    "fuel": 0,
    "cost": 0,
    "more": False,
    "post_state_hash": bytes(32),
    "prev": bytes(32),
}
ODD_FIELD_VALUES = [
    True,
    False,
    -1,
    0,
    1,
    INT64_MAX,
    INT64_MAX + 1,
    1.0,
    None,
    HostcallID.CLOCK_NOW,
    bytes(31),
    bytes(32),
    bytes(33),
    Blob(bytes(32)),
    bytearray(32),
    [],
    (),
    "x",
    [HostCall(1, b"", b"")],
    (HostCall(1, b"", b""), 1),
]


@pytest.mark.parametrize("name", sorted(VALID_RECORD))
@pytest.mark.parametrize("value", ODD_FIELD_VALUES, ids=repr)
def test_tick_record_fields_one_at_a_time(name, value):
    args = tuple({**VALID_RECORD, name: value}.values())
    made = construct(TickRecord, *args)
    expected = reference_tick_record(*args)
    if isinstance(made, TickRecord):
        fields = (made.tick, made.calls, made.fuel, made.cost, made.more)
        assert (*fields, made.post_state_hash, made.prev) == expected
    else:
        assert made == expected


@pytest.mark.parametrize("size", [MAX_CALL_BYTES, MAX_CALL_BYTES + 1])
@pytest.mark.parametrize("field", ["request", "result"])
def test_host_call_size_limit(size, field):
    big = bytes(size)
    args = (1, big, b"") if field == "request" else (1, b"", big)
    made = construct(HostCall, *args)
    expected = reference_host_call(*args)
    assert (made if isinstance(made, str) else (made.fn, made.request, made.result)) == expected


def test_fuel_limits_are_converted_as_wasmtime_py_converts_them(engine):
    compiled = engine.compile(module(TICKS["ok"]))

    def instance(fuel):
        limits = host.Limits(fuel_per_call=fuel)
        return host.AgentInstance(engine, compiled, MANIFEST, HostState(LiveSource()), limits)

    with pytest.raises(ctypes.ArgumentError):
        instance(1.5)
    # Passed as a u64 (10**6) as wasmtime-py passed it; fuel used is reckoned from the limit.
    wrapped = instance(2**64 + 10**6)
    wrapped.init()
    default = instance(host.DEFAULT_FUEL_PER_CALL)
    default.init()
    assert wrapped.tick()[1] == default.tick()[1] + 2**64
    other_budget = default._call(abi.EXPORT_TICK, fuel=10**6)
    assert other_budget[1] == default.tick()[1]


def test_a_closed_store_is_refused_not_used(engine):
    # The node closes a dropped agent's store at once; a late call must fail cleanly.
    instance = host.AgentInstance(
        engine, engine.compile(module(TICKS["ok"])), MANIFEST, HostState(LiveSource())
    )
    instance.init()
    instance.store.close()
    memory = instance.memory
    for action in (
        instance.tick,
        instance.capture_state,
        lambda: instance.resume(b"state"),
        lambda: memory.read(0, 4),
        lambda: memory.write(0, b"x"),
        memory.size,
    ):
        with pytest.raises(ValueError, match="already closed"):
            action()
    assert instance.failed is None
