"""Write the checkpoint golden vectors (checkpoint_v1_*.cbor and checkpoints.json).

The tests never run this: they compare igor's encoder against the committed bytes, so that a
change to the encoding fails them. Run it only to add vectors or for a new format version:

    PYTHONPATH=. python tests/unit/golden/make_vectors.py [--force]

Without --force it refuses to overwrite existing files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from igor.cbor import INT64_MAX, sha256
from igor.checkpoint import ZERO_HASH, Checkpoint, DeterminismProfile, Epoch, encode, successor

HERE = Path(__file__).resolve().parent

# The module digest is the one igor's own golden tests use (SHA-256 of this text).
MODULE_DIGEST = sha256(b"known-wasm-binary-for-golden-test")
MANIFEST_DIGEST = sha256(b"known-manifest-for-golden-test")
PROFILE = DeterminismProfile.from_dict(
    "wasmtime 50.0.1",
    {"nan_canonicalization": "on", "relaxed_simd": "off", "threads": "off"},
)


def vectors() -> dict[str, Checkpoint]:
    genesis = Checkpoint(
        agent_id="default/counter",
        module_digest=MODULE_DIGEST,
        manifest_digest=MANIFEST_DIGEST,
        tick=0,
        epoch=Epoch(1, 0),
        budget=1_000_000,
        spent=0,
        price=1000,
        state=b"",
        prev_hash=ZERO_HASH,
        log_head=ZERO_HASH,
        profile=PROFILE,
    )
    counter3 = successor(
        genesis,
        tick=3,
        epoch=Epoch(2, 1),
        budget=999_700,
        spent=300,
        state=(3).to_bytes(8, "little"),
        log_head=sha256(b"golden-log-head-tick-3"),
    )
    # Every integer head width (1, 2, 3, 5 and 9 bytes) and a 2-byte length head, so that a
    # change in how any of them is written shows.
    limits = Checkpoint(
        agent_id="team-a/agent.v2",
        module_digest=bytes(range(32)),
        manifest_digest=bytes(range(32, 64)),
        tick=INT64_MAX,
        epoch=Epoch(2**32, 65_536),
        budget=23,
        spent=255,
        price=65_535,
        state=bytes(range(256)),
        prev_hash=b"\xff" * 32,
        log_head=b"\x01" * 32,
        profile=DeterminismProfile("wasmtime 50.0.1"),
    )
    return {
        "checkpoint_v1_genesis.cbor": genesis,
        "checkpoint_v1_counter3.cbor": counter3,
        "checkpoint_v1_limits.cbor": limits,
    }


def fields_as_json(cp: Checkpoint) -> dict[str, object]:
    return {
        "version": cp.version,
        "agent_id": cp.agent_id,
        "module_digest": cp.module_digest.hex(),
        "manifest_digest": cp.manifest_digest.hex(),
        "tick": cp.tick,
        "epoch": [cp.epoch.major, cp.epoch.minor],
        "budget": cp.budget,
        "spent": cp.spent,
        "price": cp.price,
        "state": cp.state.hex(),
        "prev_hash": cp.prev_hash.hex(),
        "log_head": cp.log_head.hex(),
        "profile": {"engine": cp.profile.engine, "settings": cp.profile.as_dict()},
    }


def main(argv: list[str]) -> int:
    force = "--force" in argv
    index = []
    for name, cp in vectors().items():
        path = HERE / name
        data = encode(cp)
        if path.exists() and path.read_bytes() != data and not force:
            print(f"{path} exists with other bytes; pass --force to overwrite", file=sys.stderr)
            return 1
        path.write_bytes(data)
        index.append({"file": name, "sha256": sha256(data).hex(), "fields": fields_as_json(cp)})
    listing = json.dumps({"format": "igor checkpoint v1", "vectors": index}, indent=2) + "\n"
    (HERE / "checkpoints.json").write_text(listing)
    print(f"wrote {len(index)} vectors and checkpoints.json to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
