"""The `igor` host functions and where their non-deterministic answers come from.

Every host call goes through a CallSource: live, the answer comes from the
world (clock, randomness, HTTP) and is recorded; in replay, it comes from the
record and nothing touches the world. Each call also records its request, so
replay can tell a *different call* from a *different answer*.

Result encodings (the `result` bytes of an event-log HostCall):
  clock_now, wallet_balance, node_price   8-byte i64 LE
  wallet_receipt_count                    4-byte u32 LE
  rand_bytes, wallet_receipt, http_request  4-byte i32 LE return code + payload
  log_emit                                empty (the message is the request)
"""

from __future__ import annotations

import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from igor import abi
from igor.abi import HostcallID
from igor.eventlog import CallDiff, HostCall, diff_calls

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


class CallSource(Protocol):
    def observe(self, fn: HostcallID, request: bytes, live: Callable[[], bytes]) -> bytes: ...


class ReplayMismatch(Exception):
    """Raised inside a host call when the replayed agent departs from the record."""

    def __init__(self, diff: CallDiff):
        self.diff = diff
        super().__init__(str(diff))


class LiveSource:
    """Answers from the world and records every call of the current tick."""

    def __init__(self) -> None:
        self.calls: list[HostCall] = []

    def begin_tick(self) -> None:
        self.calls = []

    def observe(self, fn: HostcallID, request: bytes, live: Callable[[], bytes]) -> bytes:
        result = live()
        self.calls.append(HostCall(int(fn), request, result))
        return result

    def end_tick(self) -> tuple[HostCall, ...]:
        return tuple(self.calls)


class RecordedSource:
    """Answers from a tick's record; the world is never touched."""

    def __init__(self, expected: Sequence[HostCall] = ()) -> None:
        self.begin_tick(expected)

    def begin_tick(self, expected: Sequence[HostCall] = ()) -> None:
        self.expected = tuple(expected)
        self.actual: list[HostCall] = []

    def observe(self, fn: HostcallID, request: bytes, live: Callable[[], bytes]) -> bytes:
        position = len(self.actual)
        if position < len(self.expected):
            recorded = self.expected[position]
            if recorded.fn == fn and recorded.request == request:
                self.actual.append(recorded)
                return recorded.result
        # Not what was recorded: stop the guest here; the diff names the call.
        self.actual.append(HostCall(int(fn), request, b""))
        raise ReplayMismatch(diff_calls(self.expected, self.actual))

    def end_tick(self) -> CallDiff | None:
        """The difference if the replayed tick made fewer calls than recorded."""
        if len(self.actual) < len(self.expected):
            return diff_calls(self.expected, self.actual)
        return None


@dataclass
class HostState:
    """What the host functions of one instance can see besides guest memory."""

    source: CallSource
    budget: Callable[[], int] = lambda: 0
    price: Callable[[], int] = lambda: 0
    receipts: Sequence[bytes] = ()
    log: Callable[[bytes], None] = lambda msg: None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class GuestMemory(Protocol):
    def read(self, ptr: int, length: int) -> bytes | None: ...
    def write(self, ptr: int, data: bytes) -> bool: ...


class HostFunctions:
    """igor's host calls with igor's signatures, return codes and limits."""

    def __init__(self, state: HostState, memory: GuestMemory):
        self.state = state
        self.memory = memory

    def clock_now(self) -> int:
        result = self.state.source.observe(
            HostcallID.CLOCK_NOW, b"", lambda: _I64.pack(time.time_ns())
        )
        return _I64.unpack(result)[0]

    def rand_bytes(self, ptr: int, length: int) -> int:
        if length == 0:
            return abi.OK
        request = _U32.pack(length & 0xFFFFFFFF)

        def live() -> bytes:
            if length < 0 or length > abi.RAND_MAX_BYTES:
                return _I32.pack(abi.ERR_INPUT_TOO_LARGE)
            return _I32.pack(abi.OK) + os.urandom(length)

        result = self.state.source.observe(HostcallID.RAND_BYTES, request, live)
        code = _I32.unpack_from(result)[0]
        if code != abi.OK:
            return code
        if not self.memory.write(ptr, result[4:]):
            return abi.ERR_MEMORY_OOB
        return abi.OK

    def log_emit(self, ptr: int, length: int) -> None:
        if length <= 0 or length > abi.LOG_MAX_BYTES:
            return
        message = self.memory.read(ptr, length)
        if message is None:
            return
        self.state.source.observe(HostcallID.LOG_EMIT, message, lambda: b"")
        self.state.log(message)

    def wallet_balance(self) -> int:
        result = self.state.source.observe(
            HostcallID.WALLET_BALANCE, b"", lambda: _I64.pack(self.state.budget())
        )
        return _I64.unpack(result)[0]

    def wallet_receipt_count(self) -> int:
        result = self.state.source.observe(
            HostcallID.WALLET_RECEIPT_COUNT, b"", lambda: _U32.pack(len(self.state.receipts))
        )
        return _U32.unpack(result)[0]

    def wallet_receipt(self, index: int, buf_ptr: int, buf_len: int) -> int:
        def live() -> bytes:
            if not 0 <= index < len(self.state.receipts):
                return _I32.pack(abi.ERR_GENERIC)
            return _I32.pack(abi.OK) + self.state.receipts[index]

        request = _I32.pack(index)
        result = self.state.source.observe(HostcallID.WALLET_RECEIPT, request, live)
        code = _I32.unpack_from(result)[0]
        if code != abi.OK:
            return code
        receipt = result[4:]
        if len(receipt) > buf_len or not self.memory.write(buf_ptr, receipt):
            return abi.ERR_MEMORY_OOB
        return len(receipt)

    def node_price(self) -> int:
        result = self.state.source.observe(
            HostcallID.NODE_PRICE, b"", lambda: _I64.pack(self.state.price())
        )
        return _I64.unpack(result)[0]

    def http_request(
        self,
        method_ptr: int,
        method_len: int,
        url_ptr: int,
        url_len: int,
        headers_ptr: int,
        headers_len: int,
        body_ptr: int,
        body_len: int,
        resp_ptr: int,
        resp_cap: int,
    ) -> int:
        limits = (
            (method_len, abi.HTTP_MAX_METHOD),
            (url_len, abi.HTTP_MAX_URL),
            (headers_len, abi.HTTP_MAX_HEADERS),
            (body_len, abi.HTTP_MAX_BODY),
        )
        if any(n < 0 or n > cap for n, cap in limits):
            return abi.ERR_INPUT_TOO_LARGE
        parts = [
            self.memory.read(method_ptr, method_len),
            self.memory.read(url_ptr, url_len),
            self.memory.read(headers_ptr, headers_len),
            self.memory.read(body_ptr, body_len),
        ]
        if any(p is None for p in parts):
            return abi.ERR_GENERIC
        request = HttpRequest(*(bytes(p) for p in parts))  # type: ignore[arg-type]
        options = self.state.options.get("http", {})
        result = self.state.source.observe(
            HostcallID.HTTP_REQUEST, request.encode(), lambda: perform_http(request, options)
        )
        code = _I32.unpack_from(result)[0]
        payload = result[4:]
        if code == abi.ERR_BUFFER_TOO_SMALL or (code > 0 and 4 + len(payload) > resp_cap):
            hint = payload if code == abi.ERR_BUFFER_TOO_SMALL else _U32.pack(len(payload))
            if resp_cap >= 4:
                self.memory.write(resp_ptr, hint[:4])
            return abi.ERR_BUFFER_TOO_SMALL
        if code <= 0:
            return code
        if not self.memory.write(resp_ptr, _U32.pack(len(payload)) + payload):
            return abi.ERR_GENERIC
        return code


@dataclass(frozen=True)
class HttpRequest:
    method: bytes
    url: bytes
    headers: bytes
    body: bytes

    def encode(self) -> bytes:
        # Length-prefixed so that no two requests share an encoding.
        return b"".join(
            _U32.pack(len(p)) + p for p in (self.method, self.url, self.headers, self.body)
        )


def _host_allowed(url: str, allowed: Sequence[str]) -> bool:
    if not allowed:
        return True
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return host in {h.lower() for h in allowed}


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            headers[key.strip()] = value.strip()
    return headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could leave the allowed hosts; the agent sees the 3xx instead.
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def perform_http(request: HttpRequest, options: Mapping[str, Any]) -> bytes:
    """Do the live request; returns the encoded result (code + payload)."""
    url = request.url.decode("utf-8", "replace")
    if not _host_allowed(url, options.get("allowed_hosts") or []):
        return _I32.pack(abi.ERR_HOST_NOT_ALLOWED)
    timeout = int(options.get("timeout_ms", abi.HTTP_DEFAULT_TIMEOUT_MS)) / 1000
    max_response = int(options.get("max_response_bytes", abi.HTTP_DEFAULT_MAX_RESPONSE))
    try:
        req = urllib.request.Request(
            url,
            data=request.body or None,
            headers=_parse_headers(request.headers),
            method=request.method.decode("ascii", "replace").upper() or "GET",
        )
    except ValueError:
        return _I32.pack(abi.ERR_GENERIC)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read(max_response + 1)
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read(max_response + 1)
    except TimeoutError:
        return _I32.pack(abi.ERR_MEMORY_OOB)  # igor's -4: timeout
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(getattr(exc, "reason", None), TimeoutError):
            return _I32.pack(abi.ERR_MEMORY_OOB)
        return _I32.pack(abi.ERR_GENERIC)
    if len(body) > max_response:
        return _I32.pack(abi.ERR_BUFFER_TOO_SMALL) + _U32.pack(len(body))
    return _I32.pack(status) + body
