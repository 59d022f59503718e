"""Checkpoints: an agent's whole state between ticks, as a versioned canonical CBOR document.

A checkpoint's identity is SHA-256 of its canonical encoding (`checkpoint_hash`,
`Checkpoint.hash`). Each checkpoint names its predecessor's identity in `prev_hash`, so an
agent's checkpoints form a lineage chain, and names the event-log record of its last tick in
`log_head`, so that a log cut short or re-hashed after the fact no longer matches it.

Wire form, version 1: one CBOR map with these keys, encoded canonically (`igor.cbor`). Every key
is required and no other key is allowed. Integers are unsigned and at most 2**63 - 1.

| key | field           | CBOR type                     | meaning                                |
|-----|-----------------|-------------------------------|----------------------------------------|
| v   | version         | uint                          | format version: 1                      |
| id  | agent_id        | text, 1..253 chars            | "namespace/name" of the agent          |
| mod | module_digest   | bytes, 32                     | SHA-256 of the wasm module             |
| man | manifest_digest | bytes, 32                     | SHA-256 of the canonical manifest      |
| t   | tick            | uint                          | ticks executed so far                  |
| ep  | epoch           | array [major uint, minor uint]| authority epoch when written           |
| bud | budget          | uint                          | micro-cents remaining                  |
| spt | spent           | uint                          | micro-cents spent so far               |
| pri | price           | uint                          | micro-cents per million fuel, in force |
| st  | state           | bytes, at most 64 MiB         | the agent's state (agent_checkpoint)   |
| prv | prev_hash       | bytes, 32                     | previous checkpoint's identity; zeros  |
|     |                 |                               | for the first one (genesis)            |
| log | log_head        | bytes, 32                     | hash of the event-log record of tick t;|
|     |                 |                               | zeros when there is none               |
| det | profile         | map {"eng": text, "set": map} | determinism profile: engine, e.g.      |
|     |                 |                               | "wasmtime 50.0.1" (1..128 chars), and  |
|     |                 |                               | settings (text -> text, at most 64)    |

Golden vectors of this format live in tests/unit/golden/; a change that alters any byte of the
encoding must come with a new version number.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from igor.cbor import (
    CBORError,
    bytes_problem,
    decode_strict,
    encode_canonical,
    hexdigest,
    sha256,
    text_problem,
    type_name,
    uint_problem,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_STATE_BYTES",
    "VERSION",
    "ZERO_HASH",
    "Checkpoint",
    "CheckpointError",
    "DeterminismProfile",
    "Epoch",
    "agent_id_problem",
    "checkpoint_hash",
    "decode",
    "describe",
    "encode",
    "successor",
]

VERSION = 1
ZERO_HASH = bytes(32)
MAX_STATE_BYTES = 64 * 1024 * 1024
# State plus generous room for every other field (the profile is the only other large one).
MAX_DOCUMENT_BYTES = MAX_STATE_BYTES + 64 * 1024
MAX_AGENT_ID = 253
MAX_ENGINE = 128
MAX_SETTINGS = 64
MAX_SETTING_KEY = 64
MAX_SETTING_VALUE = 256

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_AGENT_ID = re.compile(rf"{_DNS_LABEL}/{_DNS_LABEL}(?:\.{_DNS_LABEL})*")

# Wire key -> field name, in the order of the table above (and of "missing key" checks).
_KEYS = {
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
_PROFILE_KEYS = {"eng": "profile.engine", "set": "profile.settings"}


class CheckpointError(ValueError):
    """A checkpoint (or a value meant for one) is invalid; `field` names the culprit if any."""

    kind = "bad-checkpoint"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _field_error(name: str, problem: str) -> CheckpointError:
    return CheckpointError(f'checkpoint field "{name}": {problem}', field=name)


def _require(problem: str | None, name: str) -> None:
    if problem is not None:
        raise _field_error(name, problem)


def agent_id_problem(value: object) -> str | None:
    """Why `value` is not a valid agent id ("namespace/name", Kubernetes names), or None."""
    problem = text_problem(value, min_length=1, max_length=MAX_AGENT_ID)
    if problem is not None:
        return problem
    assert isinstance(value, str)
    namespace = value.partition("/")[0]
    if not _AGENT_ID.fullmatch(value) or len(namespace) > 63:
        return (
            'must be "namespace/name" with Kubernetes names (lowercase letters, digits, '
            f'"-" and "."; namespace at most 63 characters), got {value!r}'
        )
    return None


@dataclass(frozen=True, slots=True, order=True)
class Epoch:
    """Authority epoch, ordered lexicographically: a transfer raises major, others minor."""

    major: int
    minor: int

    def __post_init__(self) -> None:
        _require(uint_problem(self.major), "epoch.major")
        _require(uint_problem(self.minor), "epoch.minor")

    def __str__(self) -> str:
        return f"({self.major},{self.minor})"

    def next_major(self) -> Epoch:
        return Epoch(self.major + 1, 0)

    def next_minor(self) -> Epoch:
        return Epoch(self.major, self.minor + 1)


@dataclass(frozen=True, slots=True)
class DeterminismProfile:
    """What replay must reproduce: the engine ("wasmtime 50.0.1") and its determinism settings.

    `settings` is sorted by key so that equal profiles compare (and encode) equal; build it
    from a dict with `from_dict`.
    """

    engine: str
    settings: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _require(text_problem(self.engine, min_length=1, max_length=MAX_ENGINE), "profile.engine")
        _require(_settings_problem(self.settings), "profile.settings")

    @classmethod
    def from_dict(cls, engine: str, settings: Mapping[str, str]) -> DeterminismProfile:
        # Sorting on str() keeps a wrong key type for __post_init__ to name, not sorted().
        return cls(engine, tuple(sorted(settings.items(), key=lambda item: str(item[0]))))

    def as_dict(self) -> dict[str, str]:
        return dict(self.settings)


def _settings_problem(settings: object) -> str | None:
    if not isinstance(settings, tuple):
        return f"must be a tuple of (key, value) pairs, got {type(settings).__name__}"
    if len(settings) > MAX_SETTINGS:
        return f"must have at most {MAX_SETTINGS} entries, got {len(settings)}"
    for pair in settings:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            return f"each entry must be a (key, value) pair, got {pair!r}"
        key, value = pair
        problem = text_problem(key, min_length=1, max_length=MAX_SETTING_KEY)
        if problem is not None:
            return f"key {key!r}: {problem}"
        problem = text_problem(value, max_length=MAX_SETTING_VALUE)
        if problem is not None:
            return f"value of {key!r}: {problem}"
    keys = [key for key, _ in settings]
    if keys != sorted(set(keys)):
        return "keys must be sorted and unique (build it with DeterminismProfile.from_dict)"
    return None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint. Constructing it validates every field (CheckpointError names it)."""

    agent_id: str
    module_digest: bytes
    manifest_digest: bytes
    tick: int
    epoch: Epoch
    budget: int
    spent: int
    price: int
    state: bytes
    prev_hash: bytes
    log_head: bytes
    profile: DeterminismProfile
    version: int = VERSION
    # Identity, computed on first use: hashing re-encodes up to 64 MiB of state.
    _identity: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_version(self.version)
        _require(agent_id_problem(self.agent_id), "agent_id")
        for name in ("module_digest", "manifest_digest", "prev_hash", "log_head"):
            _require(bytes_problem(getattr(self, name), length=32), name)
        for name in ("tick", "budget", "spent", "price"):
            _require(uint_problem(getattr(self, name)), name)
        if not isinstance(self.epoch, Epoch):
            raise _field_error("epoch", f"must be an Epoch, got {type(self.epoch).__name__}")
        _require(bytes_problem(self.state, max_length=MAX_STATE_BYTES), "state")
        if not isinstance(self.profile, DeterminismProfile):
            raise _field_error(
                "profile", f"must be a DeterminismProfile, got {type(self.profile).__name__}"
            )

    def __repr__(self) -> str:
        # The default repr would print up to 64 MiB of state into logs and tracebacks.
        return (
            f"Checkpoint(agent_id={self.agent_id!r}, tick={self.tick}, epoch={self.epoch}, "
            f"budget={self.budget}, spent={self.spent}, price={self.price}, "
            f"state=<{len(self.state)} bytes>, prev_hash={self.prev_hash.hex()[:16]}..., "
            f"version={self.version})"
        )

    @property
    def hash(self) -> bytes:
        """The checkpoint's identity: SHA-256 of its canonical encoding."""
        if self._identity is None:
            object.__setattr__(self, "_identity", sha256(encode(self)))
        assert self._identity is not None
        return self._identity

    @property
    def is_genesis(self) -> bool:
        return self.prev_hash == ZERO_HASH


def _check_version(version: object) -> None:
    _require(uint_problem(version), "version")
    if version != VERSION:
        raise CheckpointError(
            f"unsupported checkpoint version {version} (this build reads {VERSION})",
            field="version",
        )


def encode(checkpoint: Checkpoint) -> bytes:
    return encode_canonical(_to_wire(checkpoint))


def _to_wire(cp: Checkpoint) -> dict[str, object]:
    return {
        "v": cp.version,
        "id": cp.agent_id,
        "mod": cp.module_digest,
        "man": cp.manifest_digest,
        "t": cp.tick,
        "ep": [cp.epoch.major, cp.epoch.minor],
        "bud": cp.budget,
        "spt": cp.spent,
        "pri": cp.price,
        "st": cp.state,
        "prv": cp.prev_hash,
        "log": cp.log_head,
        "det": {"eng": cp.profile.engine, "set": cp.profile.as_dict()},
    }


def decode(data: bytes) -> Checkpoint:
    """Decode a checkpoint strictly; any problem raises CheckpointError and nothing else."""
    try:
        wire = decode_strict(data, "checkpoint", MAX_DOCUMENT_BYTES)
    except CBORError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(wire, dict):
        raise CheckpointError(f"checkpoint: must be a CBOR map, got {type_name(wire)}")
    if "v" not in wire:
        raise _field_error("version", 'missing (key "v")')
    _check_version(wire["v"])  # first, so a newer document gets the version message
    unknown = [key for key in wire if key not in _KEYS]
    if unknown:
        raise CheckpointError(
            f"checkpoint: unknown key {unknown[0]!r} (version {VERSION} has no such field)",
            field=str(unknown[0]),
        )
    for key, name in _KEYS.items():
        if key not in wire:
            raise _field_error(name, f'missing (key "{key}")')
    checkpoint = Checkpoint(
        agent_id=wire["id"],
        module_digest=wire["mod"],
        manifest_digest=wire["man"],
        tick=wire["t"],
        epoch=_epoch_from_wire(wire["ep"]),
        budget=wire["bud"],
        spent=wire["spt"],
        price=wire["pri"],
        state=wire["st"],
        prev_hash=wire["prv"],
        log_head=wire["log"],
        profile=_profile_from_wire(wire["det"]),
        version=wire["v"],
    )
    # The input is canonical (decode_strict checked), so its hash is the identity.
    object.__setattr__(checkpoint, "_identity", sha256(bytes(data)))
    return checkpoint


def _epoch_from_wire(value: object) -> Epoch:
    if not (isinstance(value, list) and len(value) == 2):
        raise _field_error("epoch", f"must be an array [major, minor], got {_shape(value)}")
    return Epoch(value[0], value[1])


def _profile_from_wire(value: object) -> DeterminismProfile:
    if not isinstance(value, dict):
        raise _field_error("profile", f"must be a map, got {type_name(value)}")
    for key in value:
        if key not in _PROFILE_KEYS:
            raise _field_error("profile", f"unknown key {key!r}")
    for key, name in _PROFILE_KEYS.items():
        if key not in value:
            raise _field_error(name, f'missing (key "{key}")')
    settings = value["set"]
    if not isinstance(settings, dict):
        raise _field_error("profile.settings", f"must be a map, got {type_name(settings)}")
    return DeterminismProfile.from_dict(value["eng"], settings)


def _shape(value: object) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return type_name(value)


def checkpoint_hash(checkpoint: Checkpoint | bytes) -> bytes:
    """Identity of a checkpoint, given as an object or as its bytes.

    Bytes are decoded first: only a valid, canonical checkpoint has an identity.
    """
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.hash
    return decode(checkpoint).hash


def successor(checkpoint: Checkpoint, **changes: object) -> Checkpoint:
    """The next checkpoint of the lineage: `changes` applied, prev_hash = this one's identity."""
    if "prev_hash" in changes:
        raise TypeError("successor() sets prev_hash itself")
    return dataclasses.replace(checkpoint, prev_hash=checkpoint.hash, **changes)


def describe(checkpoint: Checkpoint) -> list[tuple[str, str]]:
    """(field, human-readable value) rows for `igor inspect`."""
    cp = checkpoint
    settings = ", ".join(f"{key}={value}" for key, value in cp.profile.settings)
    return [
        ("version", str(cp.version)),
        ("hash", hexdigest(cp.hash)),
        ("agent_id", cp.agent_id),
        ("tick", str(cp.tick)),
        ("epoch", str(cp.epoch)),
        ("budget", _micro_cents(cp.budget)),
        ("spent", _micro_cents(cp.spent)),
        ("price", f"{_micro_cents(cp.price)} per million fuel"),
        ("module_digest", hexdigest(cp.module_digest)),
        ("manifest_digest", hexdigest(cp.manifest_digest)),
        ("prev_hash", "none (genesis)" if cp.is_genesis else hexdigest(cp.prev_hash)),
        ("log_head", "none" if cp.log_head == ZERO_HASH else hexdigest(cp.log_head)),
        ("profile.engine", cp.profile.engine),
        ("profile.settings", settings or "none"),
        ("state", f"{len(cp.state)} bytes, {hexdigest(sha256(cp.state))}"),
    ]


def _micro_cents(amount: int) -> str:
    return f"{amount} micro-cents ({amount // 1_000_000}.{amount % 1_000_000:06d} cents)"
