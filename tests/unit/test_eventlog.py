"""Event log: chaining, the file form, strict decoding, tamper detection, call diffs."""

from __future__ import annotations

import itertools

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igor import cbor
from igor.abi import HostcallID
from igor.checkpoint import ZERO_HASH
from igor.eventlog import (
    CallDiff,
    EventLog,
    EventLogError,
    HostCall,
    TickRecord,
    decode,
    diff_calls,
    encode,
    verify,
)

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AGENT = "default/counter"
ANCHOR = cbor.sha256(b"checkpoint at tick 0")
OTHER = cbor.sha256(b"some other checkpoint")


def counter_calls(tick: int) -> tuple[HostCall, ...]:
    # What igor's reference counter agent does every tick: clock, 4 random bytes, a log line.
    return (
        HostCall(
            HostcallID.CLOCK_NOW, b"", (1_700_000_000_000_000_000 + tick).to_bytes(8, "little")
        ),
        HostCall(HostcallID.RAND_BYTES, (4).to_bytes(4, "little"), bytes([tick, 1, 2, 3])),
        HostCall(HostcallID.LOG_EMIT, b"tick %d" % tick, b""),
    )


def build_log(ticks: int = 20, anchor: bytes = ANCHOR) -> EventLog:
    log = EventLog(AGENT, anchor)
    for tick in range(1, ticks + 1):
        log.append(
            tick=tick,
            calls=counter_calls(tick),
            fuel=1000 + tick,
            cost=10,
            more=tick % 3 == 0,
            post_state_hash=cbor.sha256(tick.to_bytes(8, "little")),
        )
    return log


LOG = build_log()
DATA = LOG.encode()


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header item and the record items of a log file."""
    spans = list(cbor.iter_sequence(data, "log"))
    return data[: spans[0][1]], [data[start:end] for start, end in spans[1:]]


def join(header: bytes, items: list[bytes]) -> bytes:
    return header + b"".join(items)


def rehashed(item: bytes, **changes: object) -> bytes:
    """A record item with `changes` applied and its stored hash recomputed to match."""
    wire = cbor2.loads(item)
    wire.update(changes)
    del wire["h"]
    wire["h"] = cbor.sha256(cbor.encode_canonical(wire))
    return cbor.encode_canonical(wire)


def with_record_wire(index: int, **changes: object) -> bytes:
    """DATA with record `index`'s map changed (structure tests: hashes left as they are)."""
    header, items = split(DATA)
    wire = cbor2.loads(items[index])
    for key, value in changes.items():
        if value is ...:
            del wire[key]
        else:
            wire[key] = value
    items[index] = cbor.encode_canonical(wire)
    return join(header, items)


def full_check(data: bytes, **kw: object):
    return verify(data, anchor=ANCHOR, expected_head=LOG.head, expected_last_tick=20, **kw)


# --- building and chaining ----------------------------------------------------------------------


def test_records_chain_from_the_anchor() -> None:
    assert LOG[0].prev == ANCHOR
    for before, after in itertools.pairwise(LOG):
        assert after.prev == before.hash
    assert LOG.head == LOG[-1].hash
    assert [r.tick for r in LOG] == list(range(1, 21))
    assert LOG.last_tick == 20
    assert len(LOG.records) == 20


def test_an_empty_log_has_the_anchor_as_head() -> None:
    log = EventLog(AGENT, ANCHOR)
    assert log.head == ANCHOR
    assert log.last_tick is None
    assert verify(log.encode()).ok


def test_record_hash_covers_every_field_but_the_stored_hash() -> None:
    record = LOG[6]
    wire = {
        "t": record.tick,
        "c": [[c.fn, c.request, c.result] for c in record.calls],
        "f": record.fuel,
        "b": record.cost,
        "m": record.more,
        "s": record.post_state_hash,
        "p": record.prev,
    }
    assert record.hash == cbor.sha256(cbor.encode_canonical(wire))
    for change in (
        {"tick": 8},
        {"calls": ()},
        {"fuel": 0},
        {"cost": 11},
        {"more": not record.more},
        {"post_state_hash": ZERO_HASH},
        {"prev": ZERO_HASH},
    ):
        altered = TickRecord(**{**_fields(record), **change})
        assert altered.hash != record.hash, change


def _fields(record: TickRecord) -> dict:
    return {
        "tick": record.tick,
        "calls": record.calls,
        "fuel": record.fuel,
        "cost": record.cost,
        "more": record.more,
        "post_state_hash": record.post_state_hash,
        "prev": record.prev,
    }


def test_append_requires_consecutive_ticks() -> None:
    log = build_log(3)
    with pytest.raises(EventLogError, match='"tick": must be 4 \\(the last is 3\\)') as caught:
        log.append(5, (), 1, 1, False, ZERO_HASH)
    assert caught.value.field == "tick"
    assert len(log) == 3


def test_append_validates_the_record() -> None:
    log = EventLog(AGENT, ANCHOR)
    with pytest.raises(EventLogError, match='tick record field "cost": must be >= 0, got -1'):
        log.append(1, (), 5, -1, False, ZERO_HASH)
    with pytest.raises(EventLogError, match='"tick": must be >= 1'):
        log.append(0, (), 5, 1, False, ZERO_HASH)
    assert len(log) == 0


def test_extend_keeps_records_as_they_are() -> None:
    records = build_log(5, anchor=OTHER).records
    log = EventLog(AGENT, ANCHOR, records)
    assert log.records == records
    assert log.head == records[-1].hash
    with pytest.raises(TypeError):
        log.extend(["not a record"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("agent", "anchor", "field"),
    [("counter", ANCHOR, "agent"), (AGENT, b"short", "anchor"), (AGENT, "00" * 32, "anchor")],
)
def test_log_rejects_bad_agent_or_anchor(agent: str, anchor: bytes, field: str) -> None:
    with pytest.raises(EventLogError, match=f'event log field "{field}"') as caught:
        EventLog(agent, anchor)
    assert caught.value.field == field


def test_host_call_validation() -> None:
    call = HostCall(HostcallID.HTTP_REQUEST, b"GET https://example.com", b"200")
    assert type(call.fn) is int and call.fn == 8
    assert call.name == "http_request"
    assert HostCall(4242, b"", b"").name == "hostcall#4242"
    with pytest.raises(EventLogError, match='host call field "fn": must be <= 65535'):
        HostCall(65536, b"", b"")
    with pytest.raises(EventLogError, match='"fn": must be an integer, got boolean'):
        HostCall(True, b"", b"")
    with pytest.raises(EventLogError, match='"result": must be bytes, got text'):
        HostCall(1, b"", "x")  # type: ignore[arg-type]


def test_tick_record_validation() -> None:
    fields = _fields(LOG[0])
    assert TickRecord(**{**fields, "calls": list(fields["calls"])}).calls == fields["calls"]
    for change, message in (
        ({"more": 1}, '"more": must be a boolean, got integer'),
        ({"calls": ("x",)}, '"calls[0]": must be a HostCall, got str'),
        ({"calls": None}, '"calls": must be a tuple, got null'),
        ({"prev": b"\x00" * 31}, '"prev": must be 32 bytes, got 31'),
        ({"fuel": 2**63}, '"fuel": must be <= 9223372036854775807'),
    ):
        with pytest.raises(EventLogError, match=message.replace("[", "\\[").replace("]", "\\]")):
            TickRecord(**{**fields, **change})


# --- the file form ------------------------------------------------------------------------------


def test_round_trip_is_byte_identical() -> None:
    decoded = decode(DATA)
    assert decoded == LOG
    assert decoded.agent == AGENT and decoded.anchor == ANCHOR
    assert encode(decoded) == DATA
    assert EventLog.decode(bytearray(DATA)) == LOG


def test_file_form_is_pinned() -> None:
    # One small log, byte for byte: a change to the encoding must show here.
    log = EventLog(AGENT, ZERO_HASH)
    log.append(1, [HostCall(1, b"", bytes(8))], 7, 3, True, ZERO_HASH)
    header, items = split(log.encode())
    assert header.hex() == (
        "a3617601656167656e746f64656661756c742f636f756e74657266616e63686f725820" + "00" * 32
    )
    # Keys in canonical order: b c f h m p s t (all one character, so bytewise).
    assert items[0].hex() == (
        "a8"
        + "6162"
        + "03"
        + "6163"
        + "8183014048"
        + "00" * 8
        + "6166"
        + "07"
        + "6168"
        + "5820"
        + log[0].hash.hex()
        + "616d"
        + "f5"
        + "6170"
        + "5820"
        + "00" * 32
        + "6173"
        + "5820"
        + "00" * 32
        + "6174"
        + "01"
    )
    assert log[0].hash.hex() == "a0792fc19702d7457107dc3ab9f1bfc455ba8696f3fbdcd3958bbc6b03642459"


def test_decode_accepts_hash_inconsistencies_for_verify_to_report() -> None:
    header, items = split(DATA)
    items[7] = rehashed(items[7], c=[[1, b"", b"forged!!"]])
    forged = join(header, items)
    log = decode(forged)
    assert log[7].calls[0].result == b"forged!!"
    assert encode(log) == forged
    flipped = bytearray(DATA)
    at = DATA.index(bytes([8, 1, 2, 3]))  # record 7's random bytes
    flipped[at + 1] ^= 0x40
    log = decode(bytes(flipped))
    assert log.stored_hash(7) != log[7].hash
    assert encode(log) == bytes(flipped)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"f": -1}, "fuel", 'event log record 3 field "fuel": must be >= 0, got -1'),
        ({"b": True}, "cost", 'event log record 3 field "cost": must be an integer, got boolean'),
        ({"t": 0}, "tick", 'event log record 3 field "tick": must be >= 1'),
        ({"m": 1}, "more", 'event log record 3 field "more": must be a boolean, got integer'),
        ({"s": b"x"}, "post_state_hash", 'record 3 field "post_state_hash": must be 32 bytes'),
        ({"p": None}, "prev", 'event log record 3 field "prev": must be bytes, got null'),
        ({"h": b""}, "hash", 'event log record 3 field "hash": must be 32 bytes, got 0'),
        ({"c": {}}, "calls", 'event log record 3 field "calls": must be an array, got map'),
        ({"c": [[1, b""]]}, "calls[0]", 'record 3 field "calls[0]": must be an array [fn, req'),
        ({"c": [[1, b"", "x"]]}, "calls[0].result", '"calls[0].result": must be bytes, got text'),
        ({"c": [[2**16, b"", b""]]}, "calls[0].fn", '"calls[0].fn": must be <= 65535'),
        ({"f": ...}, "fuel", 'event log record 3 field "fuel": missing (key "f")'),
        ({"zz": 1}, "zz", "event log record 3: unknown key 'zz'"),
    ],
)
def test_decode_names_record_index_and_field(changes: dict, field: str, message: str) -> None:
    with pytest.raises(EventLogError) as caught:
        decode(with_record_wire(3, **changes))
    assert message in str(caught.value)
    assert (caught.value.index, caught.value.field) == (3, field)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "event log: empty"),
        (b"\x01", "event log header: must be a CBOR map, got integer"),
        (cbor.encode_canonical({"v": 2, "x": 1}), "unsupported event log version 2 (this build"),
        (cbor.encode_canonical({"v": 1, "agent": AGENT}), 'header field "anchor": missing'),
        (cbor.encode_canonical({"v": 1, "agent": "x", "anchor": ANCHOR}), '"agent": must be'),
        (DATA + b"\x01", "event log record 20: must be a CBOR map, got integer"),
        (DATA + b"\xa1", "event log record 20: truncated"),
        (DATA[:-1], "event log record 19: truncated"),
        (DATA + cbor2.dumps({"t": 1.5}), "event log record 20: floating-point value"),
        (DATA + b"\xa2\x61t\x01\x61t\x01", "event log record 20: not canonical"),
        ("text", "event log: expected bytes, got str"),
    ],
)
def test_decode_rejects_bad_structure(data: bytes, message: str) -> None:
    with pytest.raises(EventLogError, match=message.replace("(", "\\(").replace("[", "\\[")):
        decode(data)


# --- verify: tampering with the encoded bytes ---------------------------------------------------


def test_an_intact_log_verifies() -> None:
    for subject in (DATA, LOG, list(LOG)):
        report = verify(subject, anchor=ANCHOR, expected_head=LOG.head, expected_last_tick=20)
        assert report.ok, report.problems
        assert report.first_bad_index is None
        assert report.records == 20


def test_flipped_byte_in_a_payload_is_corrupt_at_its_index() -> None:
    flipped = bytearray(DATA)
    at = DATA.index(bytes([8, 1, 2, 3]))  # the random bytes tick 8 (record 7) received
    flipped[at + 2] ^= 0x01
    report = full_check(bytes(flipped))
    assert (report.first_bad_index, report.first.kind) == (7, "corrupt")
    assert "stored hash" in report.first.message
    assert "does not match contents" in report.first.message
    assert len(report.problems) == 1


def test_any_flipped_byte_in_a_record_is_caught_at_that_record() -> None:
    header, items = split(DATA)
    start = len(header) + sum(len(item) for item in items[:7])
    for offset in range(len(items[7])):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(DATA)
            flipped[start + offset] ^= mask
            report = full_check(bytes(flipped))
            assert report.first_bad_index == 7, (offset, mask, report.problems)
            assert report.first.kind == "corrupt", (offset, mask, report.problems)


def test_deleted_record_is_missing_at_its_index() -> None:
    header, items = split(DATA)
    report = full_check(join(header, items[:7] + items[8:]))
    assert (report.first_bad_index, report.first.kind, report.first.tick) == (7, "missing", 9)
    assert "tick 8 missing" in report.first.message
    assert len(report.problems) == 1


def test_swapped_records_are_reordered_at_the_first() -> None:
    header, items = split(DATA)
    items[7], items[8] = items[8], items[7]
    report = full_check(join(header, items))
    assert (report.first_bad_index, report.first.kind) == (7, "reordered")
    assert {p.kind for p in report.problems} == {"reordered"}
    assert [p.index for p in report.problems] == [7, 8]


def test_record_moved_far_is_reordered_without_cascading() -> None:
    header, items = split(DATA)
    moved = items.pop(7)
    items.insert(14, moved)
    report = full_check(join(header, items))
    assert [(p.index, p.kind) for p in report.problems] == [(7, "reordered"), (14, "reordered")]


def test_rehashed_record_is_found_through_its_successor() -> None:
    header, items = split(DATA)
    items[7] = rehashed(items[7], c=[[1, b"", b"\xff" * 8], [2, b"\x04\x00\x00\x00", b"evil"]])
    report = full_check(join(header, items))
    assert (report.first_bad_index, report.first.kind, report.first.tick) == (7, "rehashed", 8)
    assert "record 8 (tick 9) links to" in report.first.message
    assert len(report.problems) == 1


@pytest.mark.parametrize("with_tick", [True, False])
def test_rehashed_last_record_is_found_through_the_expected_head(with_tick: bool) -> None:
    header, items = split(DATA)
    items[19] = rehashed(items[19], f=1)
    report = verify(
        join(header, items),
        anchor=ANCHOR,
        expected_head=LOG.head,
        expected_last_tick=20 if with_tick else None,
    )
    assert (report.first_bad_index, report.first.kind) == (19, "rehashed")
    assert verify(join(header, items), anchor=ANCHOR).ok  # nothing else can tell


@pytest.mark.parametrize(
    "expectations",
    [
        {"expected_last_tick": 20},
        {"expected_last_tick": 20, "expected_head": LOG.head},
    ],
)
def test_cut_tail_is_truncated_after_the_last_record(expectations: dict) -> None:
    header, items = split(DATA)
    report = verify(join(header, items[:13]), anchor=ANCHOR, **expectations)
    assert (report.first_bad_index, report.first.kind) == (13, "truncated")
    assert "ends at tick 13 but should reach tick 20" in report.first.message


def test_cut_tail_with_only_the_head_is_flagged_at_the_last_record() -> None:
    # Without the expected tick, a cut tail and a re-hashed last record look the same.
    header, items = split(DATA)
    report = verify(join(header, items[:13]), anchor=ANCHOR, expected_head=LOG.head)
    assert (report.first_bad_index, report.first.kind) == (12, "rehashed")
    assert "or records after it were cut" in report.first.message


def test_wrong_first_link_is_an_anchor_problem() -> None:
    foreign = EventLog(AGENT, ANCHOR, build_log(5, anchor=OTHER).records).encode()
    report = verify(foreign)
    assert [(p.index, p.kind) for p in report.problems] == [(0, "anchor")]
    report = verify(DATA, anchor=OTHER)
    assert (report.first_bad_index, report.first.kind) == (0, "anchor")
    assert "anchored at" in report.first.message


def test_deleted_first_record_is_an_anchor_problem() -> None:
    header, items = split(DATA)
    report = full_check(join(header, items[1:]))
    assert [(p.index, p.kind) for p in report.problems] == [(0, "anchor")]


def test_duplicated_record_is_found() -> None:
    header, items = split(DATA)
    report = full_check(join(header, [*items[:8], items[7], *items[8:]]))
    assert [(p.index, p.kind) for p in report.problems] == [(8, "duplicate")]


def test_a_gap_right_after_a_corrupt_record_is_still_found() -> None:
    header, items = split(DATA)
    flipped = bytearray(items[7])
    flipped[flipped.index(bytes([8, 1, 2, 3])) + 1] ^= 0x01
    items[7] = bytes(flipped)
    report = full_check(join(header, items[:8] + items[9:]))
    assert [(p.index, p.kind) for p in report.problems] == [(7, "corrupt"), (8, "missing")]


def test_partially_written_last_record_is_corrupt() -> None:
    report = full_check(DATA[:-10])
    assert (report.first_bad_index, report.first.kind) == (19, "corrupt")
    assert "truncated" in report.first.message


def test_records_past_the_expected_end_are_extra() -> None:
    report = verify(DATA, anchor=ANCHOR, expected_last_tick=15)
    assert (report.first_bad_index, report.first.kind) == (15, "extra")
    report = verify(DATA, anchor=ANCHOR, expected_head=LOG[14].hash)
    assert (report.first_bad_index, report.first.kind) == (15, "extra")


def test_zero_expected_head_means_no_records() -> None:
    empty = EventLog(AGENT, ANCHOR).encode()
    assert verify(empty, anchor=ANCHOR, expected_head=ZERO_HASH, expected_last_tick=0).ok
    report = verify(DATA, anchor=ANCHOR, expected_head=ZERO_HASH)
    assert (report.first_bad_index, report.first.kind) == (0, "extra")
    report = verify(empty, anchor=ANCHOR, expected_head=LOG.head)
    assert (report.first_bad_index, report.first.kind) == (0, "truncated")


def test_unreadable_header_is_reported_not_raised() -> None:
    report = verify(b"\xff" + DATA[1:])
    assert (report.first_bad_index, report.first.kind) == (0, "header")


def test_verify_uses_stored_hashes_of_a_decoded_log() -> None:
    flipped = bytearray(DATA)
    flipped[DATA.index(bytes([8, 1, 2, 3])) + 3] ^= 0x10
    report = verify(decode(bytes(flipped)), expected_head=LOG.head, expected_last_tick=20)
    assert (report.first_bad_index, report.first.kind) == (7, "corrupt")


def test_verify_rejects_bad_arguments() -> None:
    with pytest.raises(EventLogError, match='verify field "anchor": must be 32 bytes'):
        verify(DATA, anchor=b"x")


# --- diff_calls ---------------------------------------------------------------------------------


def test_diff_calls_reports_the_first_difference() -> None:
    recorded = counter_calls(5)
    assert diff_calls(recorded, recorded) is None
    assert diff_calls((), ()) is None

    wrong_fn = (recorded[0], HostCall(HostcallID.NODE_PRICE, b"", bytes(8)), recorded[2])
    diff = diff_calls(recorded, wrong_fn)
    assert (diff.kind, diff.position) == ("wrong-call", 1)
    assert str(diff).startswith(
        "wrong-call at call 1: recorded rand_bytes(request 04000000), got node_price"
    )

    wrong_request = (recorded[0], HostCall(HostcallID.RAND_BYTES, b"\x08\x00\x00\x00", b""))
    assert diff_calls(recorded, wrong_request).kind == "wrong-call"

    other_value = (recorded[0], HostCall(recorded[1].fn, recorded[1].request, b"\x00" * 4))
    diff = diff_calls(recorded, other_value + recorded[2:])
    assert diff == CallDiff("different-value", 1, recorded[1], other_value[1])
    assert "recorded result 05010203, got 00000000" in str(diff)

    diff = diff_calls(recorded, recorded[:1])
    assert (diff.kind, diff.position, diff.expected, diff.actual) == (
        "missing",
        1,
        recorded[1],
        None,
    )
    assert "the tick made no more calls" in str(diff)

    extra = HostCall(HostcallID.RAND_BYTES, b"\x00" * 40, b"")
    diff = diff_calls(recorded, (*recorded, extra))
    assert (diff.kind, diff.position, diff.actual) == ("extra", 3, extra)
    assert "(40 bytes)" in str(diff)
    text = HostCall(HostcallID.LOG_EMIT, b"hello", b"")
    assert "log_emit(request 'hello')" in str(diff_calls(recorded, (*recorded, text)))


# --- properties ---------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
_agents = st.builds(lambda ns, name: f"{ns}/{name}", _label, _label)
_digest = st.binary(min_size=32, max_size=32)
_uint = st.integers(0, 2**63 - 1)
_calls = st.lists(
    st.builds(HostCall, st.integers(0, 0xFFFF), st.binary(max_size=24), st.binary(max_size=24)),
    max_size=4,
)
_ticks = st.tuples(_calls, _uint, _uint, st.booleans(), _digest)


@st.composite
def logs(draw: st.DrawFn) -> EventLog:
    log = EventLog(draw(_agents), draw(_digest))
    first = draw(st.integers(1, 2**40))
    for offset, (calls, fuel, cost, more, state) in enumerate(draw(st.lists(_ticks, max_size=6))):
        log.append(first + offset, calls, fuel, cost, more, state)
    return log


def decode_or_none(data: bytes) -> EventLog | None:
    """Decode, allowing only EventLogError: anything else fails the test."""
    try:
        return decode(data)
    except EventLogError:
        return None


@PROPERTY
@given(logs())
def test_round_trip(log: EventLog) -> None:
    data = log.encode()
    decoded = decode(data)
    assert decoded == log
    assert decoded.head == log.head
    assert decoded.encode() == data
    assert verify(data, expected_head=log.head, expected_last_tick=log.last_tick).ok


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_event_log_error(data: bytes) -> None:
    decode_or_none(data)
    verify(data)  # reports, never raises
    decode_or_none(DATA[: len(split(DATA)[0])] + data)  # a valid header, then noise
    verify(DATA[: len(split(DATA)[0])] + data)


@PROPERTY
@given(st.data())
def test_any_change_to_a_record_is_caught_at_that_record(data: st.DataObject) -> None:
    header, items = split(DATA)
    bounds = [len(header)]
    for item in items:
        bounds.append(bounds[-1] + len(item))
    at = data.draw(st.integers(len(header), len(DATA) - 1), label="at")
    blob = bytearray(DATA)
    op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]), label="op")
    if op == "flip":
        blob[at] ^= data.draw(st.integers(1, 255), label="mask")
    elif op == "delete":
        del blob[at : at + data.draw(st.integers(1, 8), label="count")]
    elif op == "insert":
        blob[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
    else:
        del blob[at:]
    index = max(i for i, start in enumerate(bounds[:-1]) if start <= at)
    decode_or_none(bytes(blob))
    report = full_check(bytes(blob))
    assert report.first_bad_index == index, (op, at, report.problems)


@PROPERTY
@given(logs(), st.data())
def test_mutated_encodings_raise_only_event_log_error(log: EventLog, data: st.DataObject) -> None:
    blob = bytearray(log.encode())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        at = data.draw(st.integers(0, len(blob)), label="at")
        op = data.draw(st.sampled_from(["flip", "delete", "insert"]), label="op")
        if op == "flip" and at < len(blob):
            blob[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "delete":
            del blob[at : at + data.draw(st.integers(1, 8), label="count")]
        else:
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
    decoded = decode_or_none(bytes(blob))
    if decoded is not None:
        assert decoded.encode() == bytes(blob)  # anything accepted is canonical
    verify(bytes(blob), expected_head=log.head, expected_last_tick=log.last_tick)
