"""Checkpoint codec: golden vectors, validation messages, strict decoding, and properties."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igor import cbor
from igor.checkpoint import (
    MAX_DOCUMENT_BYTES,
    MAX_STATE_BYTES,
    ZERO_HASH,
    Checkpoint,
    CheckpointError,
    DeterminismProfile,
    Epoch,
    checkpoint_hash,
    decode,
    describe,
    encode,
    successor,
)

GOLDEN = Path(__file__).parent / "golden"
PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def golden_vectors() -> list[dict]:
    return json.loads((GOLDEN / "checkpoints.json").read_text())["vectors"]


def checkpoint_from_json(fields: dict) -> Checkpoint:
    return Checkpoint(
        agent_id=fields["agent_id"],
        module_digest=bytes.fromhex(fields["module_digest"]),
        manifest_digest=bytes.fromhex(fields["manifest_digest"]),
        tick=fields["tick"],
        epoch=Epoch(*fields["epoch"]),
        budget=fields["budget"],
        spent=fields["spent"],
        price=fields["price"],
        state=bytes.fromhex(fields["state"]),
        prev_hash=bytes.fromhex(fields["prev_hash"]),
        log_head=bytes.fromhex(fields["log_head"]),
        profile=DeterminismProfile.from_dict(
            fields["profile"]["engine"], fields["profile"]["settings"]
        ),
        version=fields["version"],
    )


def sample(**changes: object) -> Checkpoint:
    base = Checkpoint(
        agent_id="default/counter",
        module_digest=cbor.sha256(b"module"),
        manifest_digest=cbor.sha256(b"manifest"),
        tick=3,
        epoch=Epoch(2, 1),
        budget=999_700,
        spent=300,
        price=1000,
        state=(3).to_bytes(8, "little"),
        prev_hash=cbor.sha256(b"previous"),
        log_head=cbor.sha256(b"record 3"),
        profile=DeterminismProfile.from_dict("wasmtime 50.0.1", {"nan_canonicalization": "on"}),
    )
    return dataclasses.replace(base, **changes)


def sample_wire(changes: dict | None = None) -> dict:
    """The decoded map of sample(), with keys replaced (or removed, for a value of ...)."""
    wire = cbor2.loads(encode(sample()))
    for key, value in (changes or {}).items():
        if value is ...:
            del wire[key]
        else:
            wire[key] = value
    return wire


def expect_error(data: bytes, field: str | None, fragment: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        decode(data)
    assert caught.value.field == field, str(caught.value)
    assert fragment in str(caught.value)
    return caught.value


# --- golden vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", golden_vectors(), ids=lambda v: v["file"])
def test_golden_vector_decodes_to_its_fields(vector: dict) -> None:
    data = (GOLDEN / vector["file"]).read_bytes()
    assert decode(data) == checkpoint_from_json(vector["fields"])


@pytest.mark.parametrize("vector", golden_vectors(), ids=lambda v: v["file"])
def test_golden_vector_encodes_byte_identically(vector: dict) -> None:
    data = (GOLDEN / vector["file"]).read_bytes()
    assert encode(checkpoint_from_json(vector["fields"])) == data
    assert encode(decode(data)) == data


@pytest.mark.parametrize("vector", golden_vectors(), ids=lambda v: v["file"])
def test_golden_vector_hash_is_sha256_of_the_file(vector: dict) -> None:
    data = (GOLDEN / vector["file"]).read_bytes()
    expected = bytes.fromhex(vector["sha256"])
    assert cbor.sha256(data) == expected
    assert checkpoint_hash(data) == expected
    assert checkpoint_hash(checkpoint_from_json(vector["fields"])) == expected
    assert decode(data).hash == expected


def test_golden_vectors_cover_genesis_and_a_chained_successor() -> None:
    by_file = {v["file"]: v for v in golden_vectors()}
    genesis = by_file["checkpoint_v1_genesis.cbor"]
    counter = by_file["checkpoint_v1_counter3.cbor"]
    assert genesis["fields"]["state"] == ""
    assert genesis["fields"]["prev_hash"] == ZERO_HASH.hex()
    fields = counter["fields"]
    assert (fields["tick"], fields["epoch"], fields["state"]) == (3, [2, 1], "0300000000000000")
    assert fields["prev_hash"] == genesis["sha256"]  # lineage: counter3 follows genesis
    assert fields["log_head"] != ZERO_HASH.hex()


def test_golden_genesis_bytes_are_pinned() -> None:
    # A spot check independent of the JSON file: the first bytes of the genesis vector.
    data = (GOLDEN / "checkpoint_v1_genesis.cbor").read_bytes()
    assert data[:16].hex() == "ad617400617601626570820100626964"


# --- Epoch and DeterminismProfile -----------------------------------------------------------


def test_epoch_orders_lexicographically_and_prints_as_a_pair() -> None:
    assert Epoch(1, 9) < Epoch(2, 0) < Epoch(2, 1)
    assert max(Epoch(3, 0), Epoch(2, 7)) == Epoch(3, 0)
    assert str(Epoch(2, 1)) == "(2,1)"
    assert Epoch(2, 5).next_major() == Epoch(3, 0)
    assert Epoch(2, 5).next_minor() == Epoch(2, 6)


@pytest.mark.parametrize(
    ("major", "minor", "field", "fragment"),
    [
        (-1, 0, "epoch.major", "must be >= 0, got -1"),
        (0, True, "epoch.minor", "must be an integer, got boolean"),
        ("1", 0, "epoch.major", "must be an integer, got text"),
    ],
)
def test_epoch_rejects_bad_parts(major: object, minor: object, field: str, fragment: str) -> None:
    with pytest.raises(CheckpointError, match=fragment) as caught:
        Epoch(major, minor)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_profile_from_dict_sorts_settings() -> None:
    profile = DeterminismProfile.from_dict("wasmtime 50.0.1", {"threads": "off", "nan": "on"})
    assert profile.settings == (("nan", "on"), ("threads", "off"))
    assert profile.as_dict() == {"nan": "on", "threads": "off"}


@pytest.mark.parametrize(
    ("engine", "settings", "field", "fragment"),
    [
        ("", (), "profile.engine", "must be 1..128 characters"),
        ("wasmtime", (("b", "x"), ("a", "y")), "profile.settings", "sorted and unique"),
        ("wasmtime", (("a", "x"), ("a", "y")), "profile.settings", "sorted and unique"),
        ("wasmtime", (("a", 1),), "profile.settings", "must be text, got integer"),
        ("wasmtime", [("a", "x")], "profile.settings", "must be a tuple"),
    ],
)
def test_profile_rejects_bad_values(
    engine: str, settings: object, field: str, fragment: str
) -> None:
    with pytest.raises(CheckpointError, match=fragment) as caught:
        DeterminismProfile(engine, settings)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("budget", -5, 'checkpoint field "budget": must be >= 0, got -5'),
        ("spent", True, 'checkpoint field "spent": must be an integer, got boolean'),
        ("tick", 2**63, 'checkpoint field "tick": must be <= 9223372036854775807'),
        ("price", 1.5, 'checkpoint field "price": must be an integer, got float'),
        ("module_digest", b"\x00" * 31, 'field "module_digest": must be 32 bytes, got 31'),
        ("prev_hash", "00" * 32, 'field "prev_hash": must be bytes, got text'),
        ("log_head", bytearray(32), 'field "log_head": must be bytes, got bytearray'),
        ("agent_id", "", 'field "agent_id": must be 1..253 characters, got 0'),
        ("agent_id", "counter", 'field "agent_id": must be "namespace/name"'),
        ("agent_id", "Default/Counter", 'field "agent_id": must be "namespace/name"'),
        ("agent_id", "default/../x", 'field "agent_id": must be "namespace/name"'),
        ("agent_id", "a/" + "b" * 252, 'field "agent_id": must be 1..253 characters, got 254'),
        ("epoch", (2, 1), 'field "epoch": must be an Epoch, got tuple'),
        ("profile", {"engine": "x"}, 'field "profile": must be a DeterminismProfile'),
        ("version", 2, "unsupported checkpoint version 2 (this build reads 1)"),
    ],
)
def test_construction_names_the_bad_field(field: str, value: object, message: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        sample(**{field: value})
    assert message in str(caught.value)
    assert caught.value.field == field


def test_state_is_limited_to_64_mib() -> None:
    assert len(sample(state=bytes(MAX_STATE_BYTES)).state) == MAX_STATE_BYTES
    with pytest.raises(CheckpointError, match='"state": must be at most 67108864 bytes') as caught:
        sample(state=bytes(MAX_STATE_BYTES + 1))
    assert caught.value.field == "state"


def test_agent_id_accepts_kubernetes_names() -> None:
    assert sample(agent_id="team-a/agent.v2-1").agent_id == "team-a/agent.v2-1"
    assert sample(agent_id="a/" + "b" * 251).agent_id.endswith("b")


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


def test_repr_does_not_dump_the_state() -> None:
    text = repr(sample(state=b"\xab" * 1000))
    assert "<1000 bytes>" in text
    assert "abab" not in text


# --- identity, lineage, describe --------------------------------------------------------------


def test_hash_is_sha256_of_the_canonical_encoding() -> None:
    cp = sample()
    assert cp.hash == cbor.sha256(encode(cp)) == checkpoint_hash(cp)
    assert cp.hash == checkpoint_hash(encode(cp))
    assert sample(budget=1).hash != cp.hash


def test_hash_cache_does_not_affect_equality() -> None:
    fresh, hashed = sample(), sample()
    _ = hashed.hash
    assert fresh == hashed
    assert hash(fresh) == hash(hashed)


def test_successor_chains_to_its_predecessor() -> None:
    genesis = sample(tick=0, prev_hash=ZERO_HASH, state=b"")
    assert genesis.is_genesis
    nxt = successor(genesis, tick=1, state=b"\x01")
    assert nxt.prev_hash == genesis.hash
    assert (nxt.tick, nxt.state, nxt.agent_id) == (1, b"\x01", genesis.agent_id)
    assert not nxt.is_genesis
    with pytest.raises(TypeError, match="prev_hash"):
        successor(genesis, prev_hash=ZERO_HASH)


def test_successor_validates_changes() -> None:
    with pytest.raises(CheckpointError, match='"budget": must be >= 0'):
        successor(sample(), budget=-1)


def test_describe_gives_human_values() -> None:
    cp = sample()
    rows = dict(describe(cp))
    assert rows["hash"] == "sha256:" + cp.hash.hex()
    assert rows["epoch"] == "(2,1)"
    assert rows["budget"] == "999700 micro-cents (0.999700 cents)"
    assert rows["price"] == "1000 micro-cents (0.001000 cents) per million fuel"
    assert rows["profile.settings"] == "nan_canonicalization=on"
    assert rows["state"].startswith("8 bytes, sha256:")
    genesis = dict(describe(sample(prev_hash=ZERO_HASH, log_head=ZERO_HASH)))
    assert genesis["prev_hash"] == "none (genesis)"
    assert genesis["log_head"] == "none"
    assert [name for name, _ in describe(cp)][:4] == ["version", "hash", "agent_id", "tick"]


# --- strict decoding ----------------------------------------------------------------------------


def test_decode_rejects_an_unknown_version_first() -> None:
    data = cbor.encode_canonical(sample_wire({"v": 7, "zz": 1, "bud": ...}))
    error = expect_error(data, "version", "unsupported checkpoint version 7 (this build reads 1)")
    assert str(error) == "unsupported checkpoint version 7 (this build reads 1)"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"v": ...}, "version", 'checkpoint field "version": missing (key "v")'),
        ({"bud": ...}, "budget", 'checkpoint field "budget": missing (key "bud")'),
        ({"det": ...}, "profile", 'checkpoint field "profile": missing (key "det")'),
        ({"zz": 1}, "zz", "checkpoint: unknown key 'zz'"),
        ({7: 1}, "7", "checkpoint: unknown key 7"),
        ({"v": True}, "version", '"version": must be an integer, got boolean'),
        ({"bud": -5}, "budget", 'checkpoint field "budget": must be >= 0, got -5'),
        ({"bud": True}, "budget", '"budget": must be an integer, got boolean'),
        ({"t": "3"}, "tick", '"tick": must be an integer, got text'),
        ({"t": None}, "tick", '"tick": must be an integer, got null'),
        ({"spt": 2**64 - 1}, "spent", '"spent": must be <= 9223372036854775807'),
        ({"pri": -(2**64)}, "price", '"price": must be >= 0'),
        ({"mod": b"\x00" * 33}, "module_digest", '"module_digest": must be 32 bytes, got 33'),
        ({"man": "x"}, "manifest_digest", '"manifest_digest": must be bytes, got text'),
        ({"prv": b""}, "prev_hash", '"prev_hash": must be 32 bytes, got 0'),
        ({"log": [1]}, "log_head", '"log_head": must be bytes, got array'),
        ({"st": "text"}, "state", '"state": must be bytes, got text'),
        ({"id": "x" * 254}, "agent_id", '"agent_id": must be 1..253 characters, got 254'),
        ({"id": b"default/counter"}, "agent_id", '"agent_id": must be text, got bytes'),
        ({"ep": [1]}, "epoch", '"epoch": must be an array [major, minor], got an array of 1'),
        ({"ep": {"major": 1}}, "epoch", '"epoch": must be an array [major, minor], got map'),
        ({"ep": [1, -1]}, "epoch.minor", '"epoch.minor": must be >= 0, got -1'),
        ({"ep": [False, 0]}, "epoch.major", '"epoch.major": must be an integer, got boolean'),
        ({"det": []}, "profile", '"profile": must be a map, got array'),
        ({"det": {"eng": "w"}}, "profile.settings", '"profile.settings": missing (key "set")'),
        ({"det": {"eng": "w", "set": {}, "x": 1}}, "profile", "unknown key 'x'"),
        ({"det": {"eng": 5, "set": {}}}, "profile.engine", "must be text, got integer"),
        ({"det": {"eng": "w", "set": []}}, "profile.settings", "must be a map, got array"),
        ({"det": {"eng": "w", "set": {1: "a"}}}, "profile.settings", "must be text"),
        ({"det": {"eng": "w", "set": {"a": b""}}}, "profile.settings", "must be text"),
    ],
)
def test_decode_names_the_bad_field(changes: dict, field: str, fragment: str) -> None:
    expect_error(cbor.encode_canonical(sample_wire(changes)), field, fragment)


def test_decode_rejects_state_over_64_mib() -> None:
    data = cbor.encode_canonical(sample_wire({"st": bytes(MAX_STATE_BYTES + 1)}))
    expect_error(data, "state", '"state": must be at most 67108864 bytes')


def test_decode_rejects_documents_over_the_size_limit() -> None:
    data = encode(sample()) + bytes(MAX_DOCUMENT_BYTES)
    expect_error(data, None, f"over the limit of {MAX_DOCUMENT_BYTES} bytes")


def test_decode_rejects_a_non_map_document() -> None:
    expect_error(cbor.encode_canonical([1, 2]), None, "checkpoint: must be a CBOR map, got array")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "checkpoint: empty"),
        (encode(sample()) + b"\x00", "1 trailing bytes"),
        (encode(sample())[:-1], "truncated"),
        (cbor2.dumps(dict(sorted(sample_wire().items()))), "not canonical"),  # alphabetical keys
        (cbor2.dumps(sample_wire(), canonical=True, indefinite_containers=True), "indefinite"),
        (cbor2.dumps(cbor2.CBORTag(55799, sample_wire()), canonical=True), "CBOR tag 55799"),
        (cbor2.dumps(sample_wire({"t": 3.0}), canonical=True), "floating-point"),
        (cbor2.dumps(sample_wire({"t": 2**64}), canonical=True), "CBOR tag 2"),  # bignum
        (b"\xa1\x61v\x18\x01", "not canonical"),  # 1 written in two bytes
        (b"\xa2\x61v\x01\x61v\x01", "not canonical"),  # duplicate key
        (b"\xa1\x62\xff\xfe\x01", "invalid CBOR"),  # invalid UTF-8 key
        (b"\x81" * 100 + b"\x01", "nested deeper"),
        (bytes.fromhex("d81c81d81d00"), "CBOR tag 28"),  # a self-referencing array
        (b"\xf7", "simple value"),
        (b"\xff", "break"),
        ("not bytes", "expected bytes, got str"),
    ],
)
def test_decode_rejects_non_canonical_or_foreign_cbor(data: bytes, fragment: str) -> None:
    expect_error(data, None, fragment)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode(sample())
    assert decode(bytearray(data)) == decode(memoryview(data)) == sample()


# --- canonical CBOR helpers -------------------------------------------------------------------


def test_canonical_map_order_is_length_first() -> None:
    # RFC 7049 section 3.9: shorter encoded keys first, then bytewise; "a" (2 bytes) sorts
    # before 1000 (3 bytes), unlike RFC 8949's plain bytewise order.
    assert cbor.encode_canonical({1000: 0, "a": 0, "bb": 0, -1: 0}).hex() == (
        "a4" + "20" + "00" + "6161" + "00" + "1903e8" + "00" + "626262" + "00"
    )


def test_decode_strict_returns_plain_values_and_checks_floats() -> None:
    value = {"a": [1, -2, b"x", "y", None, True], 5: {}}
    assert cbor.decode_strict(cbor.encode_canonical(value), "doc", 100) == value
    assert cbor.decode_strict(b"\xf9\x3c\x00", "doc", 10, allow_floats=True) == 1.0
    with pytest.raises(cbor.CBORError, match="doc: 3 bytes is over the limit of 2 bytes"):
        cbor.decode_strict(b"\xf9\x3c\x00", "doc", 2)


def test_iter_sequence_yields_item_spans() -> None:
    data = cbor.encode_canonical(1) + cbor.encode_canonical({"a": [b"xy"]}) + b"\x40"
    assert list(cbor.iter_sequence(data, "seq")) == [(0, 1), (1, 8), (8, 9)]
    spans = cbor.iter_sequence(data + b"\x9f", "seq")
    assert [next(spans) for _ in range(3)] == [(0, 1), (1, 8), (8, 9)]
    with pytest.raises(cbor.CBORError, match="indefinite"):
        next(spans)


def test_hexdigest_format() -> None:
    assert cbor.hexdigest(cbor.sha256(b"")) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --- properties ---------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
_names = st.builds(
    lambda ns, parts: ns + "/" + ".".join(parts), _label, st.lists(_label, min_size=1, max_size=3)
)
_uint = st.integers(0, 2**63 - 1)
_digest = st.binary(min_size=32, max_size=32)
_profiles = st.builds(
    DeterminismProfile.from_dict,
    st.text(min_size=1, max_size=20),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=4),
)
checkpoints = st.builds(
    Checkpoint,
    agent_id=_names,
    module_digest=_digest,
    manifest_digest=_digest,
    tick=_uint,
    epoch=st.builds(Epoch, _uint, _uint),
    budget=_uint,
    spent=_uint,
    price=_uint,
    state=st.binary(max_size=300),
    prev_hash=_digest,
    log_head=_digest,
    profile=_profiles,
)
cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), children, max_size=4)
    ),
    max_leaves=12,
)


def decode_or_none(data: bytes) -> Checkpoint | None:
    """Decode, allowing only CheckpointError: anything else fails the test."""
    try:
        return decode(data)
    except CheckpointError:
        return None


@PROPERTY
@given(checkpoints)
def test_round_trip(cp: Checkpoint) -> None:
    data = encode(cp)
    decoded = decode(data)
    assert decoded == cp
    assert decoded.hash == cp.hash == cbor.sha256(data)
    assert encode(decoded) == data


@PROPERTY
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_checkpoint_error(data: bytes) -> None:
    decode_or_none(data)


@PROPERTY
@given(cbor_values, st.booleans())
def test_random_cbor_documents_raise_only_checkpoint_error(value: object, canonical: bool) -> None:
    decode_or_none(cbor2.dumps(value, canonical=canonical))


@PROPERTY
@given(checkpoints, st.data())
def test_mutated_encodings_raise_only_checkpoint_error(cp: Checkpoint, data: st.DataObject) -> None:
    blob = bytearray(encode(cp))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        at = data.draw(st.integers(0, len(blob)), label="at")
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]), label="op")
        if op == "flip" and at < len(blob):
            blob[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "delete":
            del blob[at : at + data.draw(st.integers(1, 8), label="count")]
        elif op == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        else:
            del blob[at:]
    decoded = decode_or_none(bytes(blob))
    if decoded is not None:
        assert encode(decoded) == bytes(blob)  # anything accepted is canonical


@PROPERTY
@given(st.sampled_from(sorted(sample_wire(), key=str)), cbor_values)
def test_a_wrong_value_is_reported_under_its_field(key: str, value: object) -> None:
    field_of = {
        "v": "version",
        "id": "agent_id",
        "mod": "module_digest",
        "man": "manifest_digest",
        "t": "tick",
        "ep": "epoch",
        "bud": "budget",
        "spt": "spent",
        "pri": "price",
        "st": "state",
        "prv": "prev_hash",
        "log": "log_head",
        "det": "profile",
    }
    try:
        decode(cbor.encode_canonical(sample_wire({key: value})))
    except CheckpointError as error:
        if error.field is not None:  # None: the value itself is not strict CBOR (e.g. a float)
            assert error.field.split(".")[0] == field_of[key], str(error)
