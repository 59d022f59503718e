"""A replay bundle: one CBOR file that replays on any machine with `igor replay`.

It holds the starting checkpoint, the tick records after it (whose post-state
hashes are the expected hashes), the manifest, the module digest and, unless
left out on purpose, the module itself.

Wire form: a canonical CBOR map
  v         1
  agent     text      agent id ("namespace/name")
  digest    bytes(32) SHA-256 of the module
  module    bytes     the wasm module (empty when left out)
  manifest  bytes     the manifest JSON
  ckpt      bytes     the starting checkpoint (igor.checkpoint encoding)
  log       bytes     the event log after it (igor.eventlog encoding)
  note      text      why the bundle was made (free text)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from igor import cbor, eventlog
from igor import checkpoint as ckpt
from igor.checkpoint import Checkpoint
from igor.eventlog import TickRecord

VERSION = 1
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
_FIELDS = {"v", "agent", "digest", "module", "manifest", "ckpt", "log", "note"}


class BundleError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"replay bundle field {field!r}: {message}" if field else message)


@dataclass(frozen=True)
class ReplayBundle:
    agent_id: str
    module_digest: bytes
    manifest: bytes
    checkpoint: Checkpoint
    records: tuple[TickRecord, ...]
    module: bytes = b""
    note: str = ""
    anchor: bytes = field(default=bytes(32))

    @property
    def expected_hashes(self) -> list[tuple[int, bytes]]:
        return [(r.tick, r.post_state_hash) for r in self.records]

    def with_module(self, module: bytes) -> ReplayBundle:
        if hashlib.sha256(module).digest() != self.module_digest:
            raise BundleError(
                "module",
                f"the given module is sha256:{hashlib.sha256(module).hexdigest()}, the bundle "
                f"needs sha256:{self.module_digest.hex()}",
            )
        return ReplayBundle(
            self.agent_id,
            self.module_digest,
            self.manifest,
            self.checkpoint,
            self.records,
            module,
            self.note,
            self.anchor,
        )

    def encode(self) -> bytes:
        log = eventlog.EventLog(agent=self.agent_id, anchor=self.anchor)
        log.extend(self.records)
        return cbor.encode_canonical(
            {
                "v": VERSION,
                "agent": self.agent_id,
                "digest": self.module_digest,
                "module": self.module,
                "manifest": self.manifest,
                "ckpt": ckpt.encode(self.checkpoint),
                "log": log.encode(),
                "note": self.note,
            }
        )

    def save(self, path: Path) -> Path:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.encode())
        tmp.replace(path)
        return path


def decode(data: bytes) -> ReplayBundle:
    try:
        doc = cbor.decode_strict(data, "replay bundle", MAX_BUNDLE_BYTES)
    except cbor.CBORError as exc:
        raise BundleError("", str(exc)) from None
    if not isinstance(doc, dict):
        raise BundleError("", f"must be a CBOR map, got {cbor.type_name(doc)}")
    if doc.get("v") != VERSION:
        raise BundleError("v", f"unsupported bundle version {doc.get('v')!r} (reads {VERSION})")
    if set(doc) != _FIELDS:
        missing, unknown = sorted(_FIELDS - set(doc)), sorted(set(doc) - _FIELDS)
        raise BundleError("", f"missing fields {missing}, unknown fields {unknown}")
    for name, problem in (
        ("agent", cbor.text_problem(doc["agent"], min_length=1, max_length=253)),
        ("digest", cbor.bytes_problem(doc["digest"], length=32)),
        ("module", cbor.bytes_problem(doc["module"])),
        ("manifest", cbor.bytes_problem(doc["manifest"])),
        ("ckpt", cbor.bytes_problem(doc["ckpt"])),
        ("log", cbor.bytes_problem(doc["log"])),
        ("note", cbor.text_problem(doc["note"], max_length=4096)),
    ):
        if problem:
            raise BundleError(name, problem)
    if doc["module"] and hashlib.sha256(doc["module"]).digest() != doc["digest"]:
        raise BundleError("module", "does not match the bundle's module digest")
    try:
        start = ckpt.decode(doc["ckpt"])
    except ckpt.CheckpointError as exc:
        raise BundleError("ckpt", str(exc)) from None
    try:
        log = eventlog.EventLog.decode(doc["log"])
    except eventlog.EventLogError as exc:
        raise BundleError("log", str(exc)) from None
    return ReplayBundle(
        agent_id=doc["agent"],
        module_digest=doc["digest"],
        manifest=doc["manifest"],
        checkpoint=start,
        records=tuple(log.records),
        module=doc["module"],
        note=doc["note"],
        anchor=log.anchor,
    )


def load(path: Path) -> ReplayBundle:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError("", f"cannot read {path}: {exc.strerror}") from None
    return decode(data)
