"""Canonical CBOR: the one encoding igor hashes, and a strict decoder for it.

Identities (checkpoint hashes, event-log record hashes) are SHA-256 over the canonical
encoding, so a document must have exactly one encoding. `encode_canonical` uses cbor2's
``canonical=True``: definite lengths, shortest integer and length heads, floats in the shortest
form that keeps their value, and map keys sorted by the RFC 7049 section 3.9 rule ("length-first":
the shorter encoded key first, equal lengths compared bytewise). Note that this is not RFC 8949's
plain bytewise order: the integer key 1000 (3 bytes) sorts after the text key "a" (2 bytes).

`decode_strict` accepts only what `encode_canonical` produces from igor's own documents: one
item, no trailing bytes, no indefinite lengths, no tags (so no bignums, dates or shared
references), no simple values other than false/true/null, floats only when asked for, map keys
that are text or integers, at most `MAX_DEPTH` nested containers, and bytes that re-encode to
themselves. Every failure, whatever the decoder raised, becomes one `CBORError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import cbor2

__all__ = [
    "INT64_MAX",
    "MAX_DEPTH",
    "CBORError",
    "bytes_problem",
    "decode_strict",
    "encode_canonical",
    "hexdigest",
    "iter_sequence",
    "scan_item",
    "sha256",
    "text_problem",
    "type_name",
    "uint_problem",
]

# igor's documents nest three deep at most; a low cap keeps hostile input from recursing.
MAX_DEPTH = 16
# Counters and amounts stay within int64 so that Kubernetes status fields (int64) and other
# languages can hold them.
INT64_MAX = 2**63 - 1

_SIMPLE_FALSE, _SIMPLE_TRUE, _SIMPLE_NULL = 20, 21, 22
_FLOAT_INFOS = (25, 26, 27)
_INDEFINITE = 31


class CBORError(ValueError):
    """The bytes are not a strict canonical CBOR item of the kind igor writes."""


def encode_canonical(obj: object) -> bytes:
    try:
        return cbor2.dumps(obj, canonical=True)
    except Exception as exc:  # cbor2 raises several unrelated types for unencodable values
        raise CBORError(f"cannot encode {type(obj).__name__} as CBOR: {exc}") from exc


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hexdigest(digest: bytes) -> str:
    """Format a SHA-256 digest the way igor prints identities: ``sha256:<64 hex digits>``."""
    return "sha256:" + digest.hex()


def decode_strict(data: bytes, what: str, max_size: int, *, allow_floats: bool = False) -> object:
    """Decode exactly one canonical CBOR item; `what` names the document in error messages."""
    data = _as_bytes(data, what)
    if not data:
        raise CBORError(f"{what}: empty")
    if len(data) > max_size:
        raise CBORError(f"{what}: {len(data)} bytes is over the limit of {max_size} bytes")
    end = scan_item(data, 0, what, allow_floats=allow_floats)
    if end != len(data):
        raise CBORError(f"{what}: {len(data) - end} trailing bytes after the CBOR item")
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # e.g. invalid UTF-8 in a text string
        raise CBORError(f"{what}: invalid CBOR: {exc}") from exc
    _check_map_keys(value, what)
    canonical = encode_canonical(value)
    if canonical != data:
        at = next(
            (i for i, (a, b) in enumerate(zip(canonical, data, strict=False)) if a != b),
            min(len(canonical), len(data)),
        )
        raise CBORError(
            f"{what}: not canonical CBOR (differs from the canonical encoding at byte {at}; "
            "unsorted or duplicate map keys, or over-long integer or length)"
        )
    return value


def iter_sequence(
    data: bytes, what: str, *, start: int = 0, allow_floats: bool = False
) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each item of a CBOR sequence (RFC 8742), from offset `start`.

    Raises CBORError at the first item whose framing is broken; items before it have already
    been yielded, which lets a verifier report everything up to the damage.
    """
    data = _as_bytes(data, what)
    pos = start
    while pos < len(data):
        end = scan_item(data, pos, what, allow_floats=allow_floats)
        yield pos, end
        pos = end


def scan_item(data: bytes, pos: int, what: str, *, allow_floats: bool = False) -> int:
    """Return the offset just past the CBOR item at `pos`, rejecting what igor never writes.

    Walks the heads only (byte and text strings are skipped, not copied), with an explicit
    stack instead of recursion so that deep nesting fails with a message, not RecursionError.
    """
    remaining = [1]  # items still to read at each open nesting level
    while remaining:
        item_at = pos
        pos, major, info, argument = _read_head(data, pos, what)
        if major in (2, 3):
            if argument > len(data) - pos:
                raise CBORError(
                    f"{what}: truncated CBOR item: string at byte {item_at} needs "
                    f"{argument} bytes, {len(data) - pos} left"
                )
            pos += argument
        elif major in (4, 5):
            count = argument * 2 if major == 5 else argument
            if count > len(data) - pos:  # every item takes at least one byte
                raise CBORError(
                    f"{what}: truncated CBOR item: container at byte {item_at} holds "
                    f"{count} items, only {len(data) - pos} bytes left"
                )
            if count:
                if len(remaining) > MAX_DEPTH:
                    raise CBORError(f"{what}: containers nested deeper than {MAX_DEPTH}")
                remaining.append(count)
                continue
        elif major == 6:
            raise CBORError(f"{what}: CBOR tag {argument} at byte {item_at} is not allowed")
        elif major == 7:
            _check_simple(info, item_at, what, allow_floats)
        # One item is complete; close every container it completes.
        while remaining:
            remaining[-1] -= 1
            if remaining[-1]:
                break
            remaining.pop()
    return pos


def _read_head(data: bytes, pos: int, what: str) -> tuple[int, int, int, int]:
    if pos >= len(data):
        raise CBORError(f"{what}: truncated CBOR item: data ends at byte {pos}")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return pos + 1, major, info, info
    if info == _INDEFINITE:
        if major == 7:
            raise CBORError(f"{what}: unexpected break code at byte {pos}")
        raise CBORError(f"{what}: indefinite-length item at byte {pos} is not allowed")
    if info > 27:
        raise CBORError(f"{what}: malformed CBOR head 0x{initial:02x} at byte {pos}")
    size = 1 << (info - 24)
    if pos + 1 + size > len(data):
        raise CBORError(f"{what}: truncated CBOR item: head at byte {pos} is cut short")
    return pos + 1 + size, major, info, int.from_bytes(data[pos + 1 : pos + 1 + size], "big")


def _check_simple(info: int, pos: int, what: str, allow_floats: bool) -> None:
    if info in (_SIMPLE_FALSE, _SIMPLE_TRUE, _SIMPLE_NULL):
        return
    if info in _FLOAT_INFOS:
        if not allow_floats:
            raise CBORError(f"{what}: floating-point value at byte {pos} is not allowed")
        return
    raise CBORError(f"{what}: CBOR simple value at byte {pos} is not allowed")


def _check_map_keys(value: object, what: str) -> None:
    # cbor2 turns array keys into tuples and map keys into frozendicts; igor never writes
    # either, and bool keys would collide with 0 and 1 in a Python dict.
    if isinstance(value, list):
        for item in value:
            _check_map_keys(item, what)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise CBORError(f"{what}: map key of type {type_name(key)} is not allowed")
            _check_map_keys(item, what)


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise CBORError(f"{what}: expected bytes, got {type(data).__name__}")


# Checks for decoded values. Each returns a problem text (without the field name) or None, so
# that every document module raises its own error type naming its own field.


def type_name(value: object) -> str:
    """The CBOR-level name of a decoded value's type, for messages."""
    names = {
        bool: "boolean",
        int: "integer",
        str: "text",
        bytes: "bytes",
        list: "array",
        tuple: "array",
        dict: "map",
        float: "float",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def uint_problem(value: object, *, maximum: int = INT64_MAX) -> str | None:
    # bool is an int in Python; a CBOR true must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, got {type_name(value)}"
    if value < 0:
        return f"must be >= 0, got {value}"
    if value > maximum:
        return f"must be <= {maximum}, got {value}"
    return None


def bytes_problem(
    value: object, *, length: int | None = None, max_length: int | None = None
) -> str | None:
    if not isinstance(value, bytes):
        return f"must be bytes, got {type_name(value)}"
    if length is not None and len(value) != length:
        return f"must be {length} bytes, got {len(value)}"
    if max_length is not None and len(value) > max_length:
        return f"must be at most {max_length} bytes, got {len(value)}"
    return None


def text_problem(value: object, *, min_length: int = 0, max_length: int) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {type_name(value)}"
    if not min_length <= len(value) <= max_length:
        return f"must be {min_length}..{max_length} characters, got {len(value)}"
    return None
