"""The event log: per tick, every host-call result, hash-chained from a checkpoint.

Replay feeds these results back to the agent instead of asking the world, so a tick can be
re-executed anywhere. Each record's identity (`TickRecord.hash`) is SHA-256 of the canonical
CBOR encoding of its fields; each record names the previous record's identity in `prev`, and the
first names the log's anchor (the identity of the checkpoint the log continues from). A
checkpoint's `log_head` names the record of its tick, which pins the end of the log.

File form (`EventLog.encode`): a CBOR sequence (RFC 8742) of canonical items, a header and then
one item per record in tick order. Every key is required and no other key is allowed; integers
are unsigned and at most 2**63 - 1.

Header:

| key    | CBOR type          | meaning                                            |
|--------|--------------------|----------------------------------------------------|
| v      | uint               | format version: 1                                  |
| agent  | text               | agent id, "namespace/name"                         |
| anchor | bytes, 32          | what the first record's `prev` must be             |

Record:

| key | field           | CBOR type                              | meaning                      |
|-----|-----------------|----------------------------------------|------------------------------|
| t   | tick            | uint >= 1                              | the tick this record covers  |
| c   | calls           | array of [fn uint, request bytes,      | every host call, in order    |
|     |                 | result bytes]                          | (fn is an abi.HostcallID)    |
| f   | fuel            | uint                                   | fuel the tick consumed       |
| b   | cost            | uint                                   | budget charged (micro-cents) |
| m   | more            | bool                                   | the agent's "more work" hint |
| s   | post_state_hash | bytes, 32                              | SHA-256 of the state after   |
| p   | prev            | bytes, 32                              | previous record's hash, or   |
|     |                 |                                        | the anchor for the first     |
| h   | (stored hash)   | bytes, 32                              | the record's hash as written |

A record's hash covers every key but "h". Keeping the written hash next to the contents is
what lets `verify` tell a flipped byte ("stored hash does not match contents") from a record
that was changed and re-hashed (its successor's `prev` no longer matches). `EventLog.decode`
is strict about structure but accepts hash inconsistencies, so that `verify` can report them.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from igor import cbor
from igor.abi import RAND_MAX_BYTES, HostcallID
from igor.cbor import INT64_MAX, CBORError, bytes_problem, type_name, uint_problem
from igor.checkpoint import ZERO_HASH, agent_id_problem

__all__ = [
    "MAX_LOG_BYTES",
    "MAX_RECORD_BYTES",
    "VERSION",
    "CallDiff",
    "EventLog",
    "EventLogError",
    "HostCall",
    "Problem",
    "TickRecord",
    "VerifyReport",
    "decode",
    "diff_calls",
    "encode",
    "verify",
]

VERSION = 1
# A call's request or result is bounded by the largest thing a host call moves (rand_bytes).
MAX_CALL_BYTES = RAND_MAX_BYTES
MAX_RECORD_BYTES = 2 * RAND_MAX_BYTES + 1024 * 1024
MAX_LOG_BYTES = 1024 * 1024 * 1024
MAX_HEADER_BYTES = 4096
MAX_FN = 0xFFFF  # igor's HostcallID is a u16

_HEADER_KEYS = {"v": "version", "agent": "agent", "anchor": "anchor"}
_RECORD_KEYS = {
    "t": "tick",
    "c": "calls",
    "f": "fuel",
    "b": "cost",
    "m": "more",
    "s": "post_state_hash",
    "p": "prev",
    "h": "hash",
}


class EventLogError(ValueError):
    """An event log (or a value meant for one) is invalid.

    `field` names the field, `index` the record (None for the header or a lone record), and
    `problem` is the message without its location.
    """

    kind = "bad-event-log"

    def __init__(
        self, message: str, *, field: str | None = None, index: int | None = None, problem: str = ""
    ) -> None:
        super().__init__(message)
        self.field = field
        self.index = index
        self.problem = problem or message

    def at_record(self, index: int) -> EventLogError:
        """The same error, located in record `index` of a log being decoded."""
        return _field_error(f"event log record {index}", self.field, self.problem, index)


def _field_error(
    where: str, name: str | None, problem: str, index: int | None = None
) -> EventLogError:
    message = f'{where} field "{name}": {problem}' if name else f"{where}: {problem}"
    return EventLogError(message, field=name, index=index, problem=problem)


def _require(problem: str | None, where: str, name: str) -> None:
    if problem is not None:
        raise _field_error(where, name, problem)


def _short(digest: bytes) -> str:
    return f"sha256:{digest.hex()[:16]}..."


@dataclass(frozen=True, slots=True)
class HostCall:
    """One host call as the guest made it (fn, request) and what the host answered (result)."""

    fn: int
    request: bytes
    result: bytes

    def __post_init__(self) -> None:
        # The runtime builds one of these per host call: accept the plain valid case without
        # the generic checks (which accept it too) and leave the rest to them.
        fn, request, result = self.fn, self.request, self.result
        if (
            type(fn) is int
            and 0 <= fn <= MAX_FN
            and type(request) is bytes
            and len(request) <= MAX_CALL_BYTES
            and type(result) is bytes
            and len(result) <= MAX_CALL_BYTES
        ):
            return
        _require(uint_problem(self.fn, maximum=MAX_FN), "host call", "fn")
        # An IntEnum would compare equal but encode differently in some CBOR libraries.
        object.__setattr__(self, "fn", int(self.fn))
        _require(bytes_problem(self.request, max_length=MAX_CALL_BYTES), "host call", "request")
        _require(bytes_problem(self.result, max_length=MAX_CALL_BYTES), "host call", "result")

    @property
    def name(self) -> str:
        try:
            return HostcallID(self.fn).name.lower()
        except ValueError:
            return f"hostcall#{self.fn}"

    def describe(self) -> str:
        return f"{self.name}(request {_preview(self.request)})"


def _preview(data: bytes, limit: int = 16) -> str:
    # Log messages and URLs are text: show them as text so a person can read the diff.
    if data and all(32 <= b < 127 for b in data[:64]):
        shown = data[:64].decode("ascii")
        return repr(shown) + (f"... ({len(data)} bytes)" if len(data) > 64 else "")
    text = data[:limit].hex() or "empty"
    return f"{text}... ({len(data)} bytes)" if len(data) > limit else text


@dataclass(frozen=True, slots=True)
class TickRecord:
    """Everything one tick saw and did; `hash` is its identity."""

    tick: int
    calls: tuple[HostCall, ...]
    fuel: int
    cost: int
    more: bool
    post_state_hash: bytes
    prev: bytes
    _identity: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # As in HostCall: the plain valid case the runtime appends every tick, accepted
        # without the generic checks below (which accept it too).
        tick, fuel, cost = self.tick, self.fuel, self.cost
        post_state_hash, prev = self.post_state_hash, self.prev
        if (
            type(self.calls) is tuple
            and type(tick) is int
            and 1 <= tick <= INT64_MAX
            and type(fuel) is int
            and 0 <= fuel <= INT64_MAX
            and type(cost) is int
            and 0 <= cost <= INT64_MAX
            and type(self.more) is bool
            and type(post_state_hash) is bytes
            and len(post_state_hash) == 32
            and type(prev) is bytes
            and len(prev) == 32
        ):
            for call in self.calls:
                if type(call) is not HostCall:
                    break
            else:
                return
        where = "tick record"
        _require(uint_problem(self.tick), where, "tick")
        if self.tick < 1:
            raise _field_error(where, "tick", "must be >= 1 (ticks are numbered from 1), got 0")
        if isinstance(self.calls, list):
            object.__setattr__(self, "calls", tuple(self.calls))
        if not isinstance(self.calls, tuple):
            raise _field_error(where, "calls", f"must be a tuple, got {type_name(self.calls)}")
        for position, call in enumerate(self.calls):
            if not isinstance(call, HostCall):
                problem = f"must be a HostCall, got {type(call).__name__}"
                raise _field_error(where, f"calls[{position}]", problem)
        _require(uint_problem(self.fuel), where, "fuel")
        _require(uint_problem(self.cost), where, "cost")
        if not isinstance(self.more, bool):
            raise _field_error(where, "more", f"must be a boolean, got {type_name(self.more)}")
        _require(bytes_problem(self.post_state_hash, length=32), where, "post_state_hash")
        _require(bytes_problem(self.prev, length=32), where, "prev")

    @property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding of every field (the stored hash excluded)."""
        if self._identity is None:
            object.__setattr__(self, "_identity", cbor.sha256(_record_bytes(self)))
        assert self._identity is not None
        return self._identity


def _record_wire(record: TickRecord) -> dict[str, object]:
    return {
        "t": record.tick,
        "c": [[call.fn, call.request, call.result] for call in record.calls],
        "f": record.fuel,
        "b": record.cost,
        "m": record.more,
        "s": record.post_state_hash,
        "p": record.prev,
    }


def _record_bytes(record: TickRecord, stored: bytes | None = None) -> bytes:
    """The canonical CBOR of a record (with its stored hash under "h" if given)."""
    encoded = _encode_record(record, stored)
    if encoded is not None:
        return encoded
    wire = _record_wire(record)
    if stored is not None:
        wire["h"] = stored
    return cbor.encode_canonical(wire)


_TINY = tuple(bytes((i,)) for i in range(256))
_HEAD_1 = struct.Struct(">BB").pack
_HEAD_2 = struct.Struct(">BH").pack
_HEAD_4 = struct.Struct(">BI").pack
_HEAD_8 = struct.Struct(">BQ").pack
_UINT, _BYTES, _ARRAY = 0x00, 0x40, 0x80


def _head(major: int, n: int) -> bytes:
    """A CBOR head in its shortest form (what canonical encoding requires); 0 <= n < 2**64."""
    if n < 24:
        return _TINY[major | n]
    if n < 0x100:
        return _HEAD_1(major | 24, n)
    if n < 0x10000:
        return _HEAD_2(major | 25, n)
    if n < 0x100000000:
        return _HEAD_4(major | 26, n)
    return _HEAD_8(major | 27, n)


def _encode_record(record: TickRecord, stored: bytes | None) -> bytes | None:
    """The bytes cbor2's canonical encoder makes of the record's wire map, built directly.

    cbor2 costs more than the rest of an append. The shape is fixed: a map of one-letter
    text keys, which canonical (length-first, then bytewise) order sorts alphabetically,
    holding unsigned integers, a boolean, 32-byte strings and the array of calls. None for
    anything not of exactly the validated types, which then goes through cbor2.
    """
    tick, fuel, cost, prev, post = (
        record.tick,
        record.fuel,
        record.cost,
        record.prev,
        record.post_state_hash,
    )
    if not (
        type(tick) is int
        and type(fuel) is int
        and type(cost) is int
        and min(tick, fuel, cost) >= 0
        and max(tick, fuel, cost) <= INT64_MAX
        and type(record.more) is bool
        and type(prev) is bytes
        and len(prev) == 32
        and type(post) is bytes
        and len(post) == 32
        and (stored is None or (type(stored) is bytes and len(stored) == 32))
    ):
        return None
    parts = [b"\xa7\x61b" if stored is None else b"\xa8\x61b", _head(_UINT, cost), b"\x61c"]
    parts.append(_head(_ARRAY, len(record.calls)))
    for call in record.calls:
        fn, request, result = call.fn, call.request, call.result
        if not (
            type(fn) is int
            and 0 <= fn <= MAX_FN
            and type(request) is bytes
            and type(result) is bytes
        ):
            return None
        parts += (
            b"\x83",
            _head(_UINT, fn),
            _head(_BYTES, len(request)),
            request,
            _head(_BYTES, len(result)),
            result,
        )
    parts += (b"\x61f", _head(_UINT, fuel))
    if stored is not None:
        parts += (b"\x61h\x58\x20", stored)
    parts += (
        b"\x61m\xf5" if record.more is True else b"\x61m\xf4",
        b"\x61p\x58\x20",
        prev,
        b"\x61s\x58\x20",
        post,
        b"\x61t",
        _head(_UINT, tick),
    )
    return b"".join(parts)


class EventLog(Sequence[TickRecord]):
    """An append-only, hash-chained list of tick records for one agent."""

    __slots__ = ("_agent", "_anchor", "_records", "_stored")

    def __init__(self, agent: str, anchor: bytes, records: Iterable[TickRecord] = ()) -> None:
        _require(agent_id_problem(agent), "event log", "agent")
        _require(bytes_problem(anchor, length=32), "event log", "anchor")
        self._agent = agent
        self._anchor = anchor
        self._records: list[TickRecord] = []
        # The hash each record was written with; differs from record.hash only in a damaged
        # log that was decoded, and is kept so that verify() and encode() can show the damage.
        self._stored: list[bytes] = []
        self.extend(records)

    @property
    def agent(self) -> str:
        return self._agent

    @property
    def anchor(self) -> bytes:
        return self._anchor

    @property
    def records(self) -> tuple[TickRecord, ...]:
        return tuple(self._records)

    @property
    def head(self) -> bytes:
        """What the next record must link to: the last record's hash, or the anchor."""
        return self._stored[-1] if self._stored else self._anchor

    @property
    def last_tick(self) -> int | None:
        return self._records[-1].tick if self._records else None

    def stored_hash(self, index: int) -> bytes:
        return self._stored[index]

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> TickRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[TickRecord]: ...
    def __getitem__(self, index: int | slice) -> TickRecord | Sequence[TickRecord]:
        return self._records[index]

    def __iter__(self) -> Iterator[TickRecord]:
        return iter(self._records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventLog):
            return NotImplemented
        return (self._agent, self._anchor, self._records, self._stored) == (
            other._agent,
            other._anchor,
            other._records,
            other._stored,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        ticks = f"ticks {self._records[0].tick}..{self.last_tick}" if self._records else "empty"
        return f"EventLog(agent={self._agent!r}, {len(self)} records, {ticks})"

    def append(
        self,
        tick: int,
        calls: Sequence[HostCall],
        fuel: int,
        cost: int,
        more: bool,
        post_state_hash: bytes,
    ) -> TickRecord:
        """Record a tick, chained to the current head; ticks must be consecutive."""
        last = self._records[-1].tick if self._records else None
        if last is not None and tick != last + 1:
            raise _field_error("event log", "tick", f"must be {last + 1} (the last is {last})")
        record = TickRecord(
            tick=tick,
            calls=tuple(calls),
            fuel=fuel,
            cost=cost,
            more=more,
            post_state_hash=post_state_hash,
            prev=self._stored[-1] if self._stored else self._anchor,
        )
        self._add(record, record.hash)
        return record

    def extend(self, records: Iterable[TickRecord]) -> None:
        """Add records as they are, without checking their chain: `verify` judges that."""
        for record in records:
            if not isinstance(record, TickRecord):
                raise TypeError(f"EventLog holds TickRecords, not {type(record).__name__}")
            self._add(record, record.hash)

    def _add(self, record: TickRecord, stored: bytes) -> None:
        self._records.append(record)
        self._stored.append(stored)

    def encode(self) -> bytes:
        header = {"v": VERSION, "agent": self._agent, "anchor": self._anchor}
        parts = [cbor.encode_canonical(header)]
        for record, stored in zip(self._records, self._stored, strict=True):
            parts.append(_record_bytes(record, stored))
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> EventLog:
        """Decode strictly (structure only: hash inconsistencies are left for `verify`)."""
        data = _as_bytes(data)
        agent, anchor, start = _read_header(data)
        log = cls(agent, anchor)
        for entry in _read_records(data, start):
            if entry.error is not None:
                raise entry.error
            assert entry.record is not None and entry.stored is not None
            log._add(entry.record, entry.stored)
        return log

    def verify(
        self, *, expected_head: bytes | None = None, expected_last_tick: int | None = None
    ) -> VerifyReport:
        return verify(self, expected_head=expected_head, expected_last_tick=expected_last_tick)


def encode(log: EventLog) -> bytes:
    return log.encode()


def decode(data: bytes) -> EventLog:
    return EventLog.decode(data)


# --- reading the file form ---------------------------------------------------------------------


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        raw = data
    elif isinstance(data, bytearray | memoryview):
        raw = bytes(data)
    else:
        raise EventLogError(f"event log: expected bytes, got {type(data).__name__}")
    if len(raw) > MAX_LOG_BYTES:
        raise EventLogError(
            f"event log: {len(raw)} bytes is over the limit of {MAX_LOG_BYTES} bytes"
        )
    return raw


def _read_header(data: bytes) -> tuple[str, bytes, int]:
    """(agent, anchor, offset of the first record); raises EventLogError."""
    where = "event log header"
    if not data:
        raise EventLogError("event log: empty (not even a header)")
    try:
        end = cbor.scan_item(data, 0, where)
        wire = cbor.decode_strict(data[:end], where, MAX_HEADER_BYTES)
    except CBORError as exc:
        raise EventLogError(str(exc)) from None
    if not isinstance(wire, dict):
        raise EventLogError(f"{where}: must be a CBOR map, got {type_name(wire)}")
    if "v" not in wire:
        raise _field_error(where, "version", 'missing (key "v")')
    _require(uint_problem(wire["v"]), where, "version")
    if wire["v"] != VERSION:  # first, so a newer file gets the version message
        raise EventLogError(
            f"unsupported event log version {wire['v']} (this build reads {VERSION})",
            field="version",
        )
    _check_keys(wire, _HEADER_KEYS, where)
    _require(agent_id_problem(wire["agent"]), where, "agent")
    _require(bytes_problem(wire["anchor"], length=32), where, "anchor")
    return wire["agent"], wire["anchor"], end


def _check_keys(wire: dict, keys: dict[str, str], where: str, index: int | None = None) -> None:
    for key in wire:
        if key not in keys:
            raise EventLogError(f"{where}: unknown key {key!r}", field=str(key), index=index)
    for key, name in keys.items():
        if key not in wire:
            raise _field_error(where, name, f'missing (key "{key}")', index)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One record as read from a file: the record and its stored hash, or why it can't be."""

    record: TickRecord | None
    stored: bytes | None
    error: EventLogError | None = None
    unframed: bool = False  # its extent is unknown, so nothing after it can be read


def _read_records(data: bytes, start: int) -> Iterator[_Entry]:
    pos, index = start, 0
    while pos < len(data):
        where = f"event log record {index}"
        try:
            end = cbor.scan_item(data, pos, where)
        except CBORError as exc:
            yield _Entry(None, None, EventLogError(str(exc), index=index), unframed=True)
            return
        try:
            wire = cbor.decode_strict(data[pos:end], where, MAX_RECORD_BYTES)
            record, stored = _record_from_wire(wire, index)
        except CBORError as exc:
            yield _Entry(None, None, EventLogError(str(exc), index=index))
        except EventLogError as exc:
            yield _Entry(None, None, exc)
        else:
            yield _Entry(record, stored)
        pos, index = end, index + 1


def _record_from_wire(wire: object, index: int) -> tuple[TickRecord, bytes]:
    where = f"event log record {index}"
    if not isinstance(wire, dict):
        raise EventLogError(f"{where}: must be a CBOR map, got {type_name(wire)}", index=index)
    _check_keys(wire, _RECORD_KEYS, where, index)
    stored = wire["h"]
    problem = bytes_problem(stored, length=32)
    if problem is not None:
        raise _field_error(where, "hash", problem, index)
    try:
        record = TickRecord(
            tick=wire["t"],
            calls=_calls_from_wire(wire["c"]),
            fuel=wire["f"],
            cost=wire["b"],
            more=wire["m"],
            post_state_hash=wire["s"],
            prev=wire["p"],
        )
    except EventLogError as exc:
        raise exc.at_record(index) from None
    return record, stored


def _calls_from_wire(value: object) -> tuple[HostCall, ...]:
    if not isinstance(value, list):
        raise _field_error("tick record", "calls", f"must be an array, got {type_name(value)}")
    calls = []
    for position, item in enumerate(value):
        name = f"calls[{position}]"
        if not (isinstance(item, list) and len(item) == 3):
            problem = f"must be an array [fn, request, result], got {type_name(item)}"
            raise _field_error("tick record", name, problem)
        try:
            calls.append(HostCall(item[0], item[1], item[2]))
        except EventLogError as exc:
            raise _field_error("tick record", f"{name}.{exc.field}", exc.problem) from None
    return tuple(calls)


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of `verify`: where (record index, its tick if known), what kind, details.

    Kinds: corrupt (a record's contents do not match its stored hash, or it cannot be decoded),
    missing (ticks skipped), reordered (ticks out of order), duplicate (a tick repeated),
    rehashed (a record changed and re-hashed: its successor, or the expected head, no longer
    matches it), truncated (records cut from the end; index = where the next would be), extra
    (records past the expected end), anchor (the first record, or the header, does not link to
    the expected anchor), header (the log header cannot be read).
    """

    index: int
    tick: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        tick = f" (tick {self.tick})" if self.tick is not None else ""
        return f"record {self.index}{tick}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    problems: tuple[Problem, ...]
    records: int  # how many records the log holds (or could be read)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        """The first record that cannot be trusted (len(records) if only the tail is missing)."""
        return self.problems[0].index if self.problems else None

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True, slots=True)
class _Link:
    """What the next record should follow: record `index` (-1: the anchor)."""

    index: int
    tick: int | None
    hash: bytes | None


class _Findings:
    """Problems by record index; the first found at an index explains it best."""

    def __init__(self) -> None:
        self._by_index: dict[int, Problem] = {}

    def add(self, index: int, tick: int | None, kind: str, message: str) -> None:
        self._by_index.setdefault(index, Problem(index, tick, kind, message))

    def sorted(self) -> tuple[Problem, ...]:
        return tuple(self._by_index[index] for index in sorted(self._by_index))


def verify(
    log: bytes | bytearray | memoryview | EventLog | Sequence[TickRecord],
    *,
    anchor: bytes | None = None,
    expected_head: bytes | None = None,
    expected_last_tick: int | None = None,
) -> VerifyReport:
    """Check a log's hash chain and tick order, naming the first bad record of each problem.

    `log` is the file form, an EventLog, or plain records. `anchor` defaults to the log's own
    (none for plain records: then the first link is not checked). `expected_head` and
    `expected_last_tick` come from the checkpoint the log should lead to (its log_head and
    tick; a zero log_head means "no record"); with them a cut or re-hashed tail is found.
    With expected_head alone a changed head cannot tell a re-hashed last record from a cut
    tail: it is reported as "rehashed" at the last record, the earlier of the two.
    """
    for name, value in (("anchor", anchor), ("expected_head", expected_head)):
        if value is not None:
            _require(bytes_problem(value, length=32), "verify", name)
    findings = _Findings()
    if isinstance(log, bytes | bytearray | memoryview):
        try:
            data = _as_bytes(log)
            agent_anchor, start = _read_header(data)[1:]
        except EventLogError as exc:
            return VerifyReport((Problem(0, None, "header", str(exc)),), 0)
        entries = list(_read_records(data, start))
    elif isinstance(log, EventLog):
        agent_anchor = log.anchor
        entries = [_Entry(r, log.stored_hash(i)) for i, r in enumerate(log)]
    else:
        agent_anchor = None
        entries = [_Entry(r, r.hash) for r in log]
    if anchor is not None and agent_anchor is not None and agent_anchor != anchor:
        message = f"the log is anchored at {_short(agent_anchor)}, expected {_short(anchor)}"
        findings.add(0, None, "anchor", message)
    anchor = anchor if anchor is not None else agent_anchor
    _check_chain(entries, anchor, findings)
    if not any(entry.unframed for entry in entries):
        _check_end(entries, anchor, expected_head, expected_last_tick, findings)
    return VerifyReport(findings.sorted(), len(entries))


def _check_chain(entries: list[_Entry], anchor: bytes | None, findings: _Findings) -> None:
    ticks = _TickIndex(entries)
    base = _Link(-1, None, anchor)
    for index, entry in enumerate(entries):
        record = entry.record
        if record is None:
            assert entry.error is not None
            rest = "; the rest of the log cannot be read" if entry.unframed else ""
            findings.add(index, None, "corrupt", f"cannot be decoded: {entry.error}{rest}")
            base = _Link(index, _next_tick(base), None)
            continue
        if entry.stored != record.hash:
            assert entry.stored is not None
            message = (
                f"stored hash {_short(entry.stored)} does not match contents "
                f"({_short(record.hash)})"
            )
            findings.add(index, record.tick, "corrupt", message)
            # Its contents (tick included) are untrusted: assume it holds the tick it should,
            # so that a gap or a swap right after it is still found.
            base = _Link(index, _next_tick(base), entry.stored)
            continue
        order = _order_problem(index, record, base, ticks)
        if order is not None:
            kind, message, moves_on = order
            findings.add(index, record.tick, kind, message)
            if moves_on:
                base = _Link(index, record.tick, entry.stored)
            continue
        if base.hash is not None and record.prev != base.hash:
            _report_broken_link(index, record, base, findings)
        base = _Link(index, record.tick, entry.stored)


def _next_tick(base: _Link) -> int | None:
    return None if base.tick is None else base.tick + 1


def _report_broken_link(index: int, record: TickRecord, base: _Link, findings: _Findings) -> None:
    if base.index < 0:
        message = f"links to {_short(record.prev)}, not to the anchor {_short(base.hash or b'')}"
        findings.add(index, record.tick, "anchor", message)
        return
    assert base.hash is not None
    message = (
        f"its hash is {_short(base.hash)} but record {index} (tick {record.tick}) links to "
        f"{_short(record.prev)}: the record was changed and re-hashed"
    )
    findings.add(base.index, base.tick, "rehashed", message)


class _TickIndex:
    """Answers "does any record after index i cover a tick in [low, high)?" quickly."""

    def __init__(self, entries: list[_Entry]) -> None:
        last: dict[int, int] = {}
        for index, entry in enumerate(entries):
            if entry.record is not None:
                last[entry.record.tick] = index
        self._ticks = sorted(last)
        self._last_index = [last[tick] for tick in self._ticks]

    def any_later(self, index: int, low: int, high: int) -> bool:
        lo = bisect.bisect_left(self._ticks, low)
        hi = bisect.bisect_left(self._ticks, high)
        return any(i > index for i in self._last_index[lo:hi])


def _order_problem(
    index: int, record: TickRecord, base: _Link, ticks: _TickIndex
) -> tuple[str, str, bool] | None:
    """(kind, message, whether later records follow this one) if the tick is out of place."""
    if base.tick is None:
        return None
    expected = base.tick + 1
    if record.tick == expected:
        return None
    if record.tick == base.tick:
        return "duplicate", f"tick {record.tick} appears twice", False
    if record.tick < expected:
        return "reordered", f"tick {record.tick} comes after tick {base.tick}", False
    if ticks.any_later(index, expected, record.tick):
        message = f"tick {record.tick} comes where tick {expected} should; tick {expected} is later"
        return "reordered", message, True
    gap = (
        f"tick {expected}"
        if record.tick == expected + 1
        else f"ticks {expected}..{record.tick - 1}"
    )
    return "missing", f"{gap} missing before tick {record.tick}", True


def _check_end(
    entries: list[_Entry],
    anchor: bytes | None,
    expected_head: bytes | None,
    expected_last_tick: int | None,
    findings: _Findings,
) -> None:
    count = len(entries)
    last = entries[-1] if entries else None
    last_tick = last.record.tick if last is not None and last.record is not None else None
    if expected_last_tick is not None and last_tick is not None:
        if last_tick < expected_last_tick:
            message = (
                f"the log ends at tick {last_tick} but should reach tick {expected_last_tick}: "
                f"{expected_last_tick - last_tick} records cut from the end"
            )
            findings.add(count, None, "truncated", message)
            return
        if last_tick > expected_last_tick:
            index, tick = next(
                (i, e.record.tick)
                for i, e in enumerate(entries)
                if e.record is not None and e.record.tick > expected_last_tick
            )
            message = f"the log goes on past tick {expected_last_tick}, where it should end"
            findings.add(index, tick, "extra", message)
            return
    if expected_head is None:
        return
    if expected_head == ZERO_HASH:  # the checkpoint names no record
        if count:
            findings.add(0, last_tick, "extra", "the log should have no records")
        return
    head = last.stored if last is not None else anchor
    if head is None or head == expected_head:
        return
    stored = [entry.stored for entry in entries]
    if expected_head in stored[:-1]:
        index = stored.index(expected_head) + 1
        message = f"the log goes on past record {index - 1}, whose hash is the expected head"
        findings.add(index, None, "extra", message)
    elif count == 0:
        message = f"the log has no records, expected head {_short(expected_head)}"
        findings.add(0, None, "truncated", message)
    else:
        message = (
            f"the log's head {_short(head)} is not the expected {_short(expected_head)}: "
            "the last record was changed and re-hashed"
        )
        if expected_last_tick is None:
            message += ", or records after it were cut (expected_last_tick tells which)"
        findings.add(count - 1, last_tick, "rehashed", message)


# --- comparing host calls ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallDiff:
    """The first difference between recorded and replayed host calls of a tick.

    kind: wrong-call (fn or request differs), missing (fewer calls than recorded), extra (more
    calls than recorded), different-value (same call, different result).
    """

    kind: str
    position: int
    expected: HostCall | None
    actual: HostCall | None

    def __str__(self) -> str:
        at = f"{self.kind} at call {self.position}"
        if self.kind == "wrong-call":
            assert self.expected is not None and self.actual is not None
            return f"{at}: recorded {self.expected.describe()}, got {self.actual.describe()}"
        if self.kind == "missing":
            assert self.expected is not None
            return f"{at}: recorded {self.expected.describe()}, but the tick made no more calls"
        if self.kind == "extra":
            assert self.actual is not None
            return f"{at}: {self.actual.describe()} was not recorded (the record ends before it)"
        assert self.expected is not None and self.actual is not None
        return (
            f"{at} ({self.expected.name}): recorded result {_preview(self.expected.result)}, "
            f"got {_preview(self.actual.result)}"
        )


def diff_calls(expected: Sequence[HostCall], actual: Sequence[HostCall]) -> CallDiff | None:
    """The first difference between two tick's host calls, or None if they are the same."""
    for position, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if (want.fn, want.request) != (got.fn, got.request):
            return CallDiff("wrong-call", position, want, got)
        if want.result != got.result:
            return CallDiff("different-value", position, want, got)
    if len(expected) > len(actual):
        return CallDiff("missing", len(actual), expected[len(actual)], None)
    if len(actual) > len(expected):
        return CallDiff("extra", len(expected), None, actual[len(expected)])
    return None
