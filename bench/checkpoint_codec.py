"""Checkpoint encode/decode time and encoded size versus state size.

For each state size (0, 64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB; random bytes, fixed seed)
a realistic Checkpoint (agent id, digests, epoch, budget, the engine's determinism
profile) is encoded with igor.checkpoint.encode (canonical CBOR) and decoded with
igor.checkpoint.decode (strict: head scan, cbor2 decode, canonical re-encode check,
field validation). Reported per size: encoded bytes, overhead bytes (encoded - state),
encode and decode p50 (and p99) and decode throughput. Each operation repeats for at
least MIN_SECONDS and MIN_REPS times.
"""

from __future__ import annotations

import random
from typing import Any

from bench import common
from bench.common import Options, Result

NAME = "checkpoint_codec"
SIZES = (0, 64, 4 << 10, 64 << 10, 1 << 20, 16 << 20)
MIN_REPS = 5
MIN_SECONDS = 0.4


def make_checkpoint(state: bytes):
    from igor.checkpoint import Checkpoint, DeterminismProfile, Epoch
    from igor.host import DETERMINISM_SETTINGS, engine_version

    return Checkpoint(
        agent_id="bench/checkpoint-codec",
        module_digest=bytes(range(32)),
        manifest_digest=bytes(range(32, 64)),
        tick=123_456,
        epoch=Epoch(3, 1),
        budget=10**12,
        spent=987_654_321,
        price=1000,
        state=state,
        prev_hash=bytes(range(64, 96)),
        log_head=bytes(range(96, 128)),
        profile=DeterminismProfile.from_dict(f"wasmtime {engine_version()}", DETERMINISM_SETTINGS),
    )


def run(opts: Options) -> Result:
    from igor import checkpoint

    min_seconds = MIN_SECONDS / 8 if opts.quick else MIN_SECONDS
    rows: list[dict[str, Any]] = []
    rng = random.Random(0)
    common.detail(
        opts,
        f"{'state':>8} {'encoded':>10} {'overhead':>8} {'encode p50':>11} {'decode p50':>11} "
        f"{'decode MB/s':>11}",
    )
    for size in SIZES:
        cp = make_checkpoint(rng.randbytes(size))
        data = checkpoint.encode(cp)
        back = checkpoint.decode(data)
        if back != cp or checkpoint.encode(back) != data:
            raise RuntimeError(f"checkpoint of {size} B state does not round-trip")
        enc = common.repeat_until(
            lambda cp=cp: checkpoint.encode(cp), min_reps=MIN_REPS, min_seconds=min_seconds
        )
        dec = common.repeat_until(
            lambda data=data: checkpoint.decode(data), min_reps=MIN_REPS, min_seconds=min_seconds
        )
        enc_s, dec_s = common.stats_us(enc), common.stats_us(dec)
        row = {
            "state_bytes": size,
            "encoded_bytes": len(data),
            "overhead_bytes": len(data) - size,
            "encode": enc_s,
            "decode": dec_s,
            "encode_mb_s": round(len(data) / enc_s["p50_us"], 1),
            "decode_mb_s": round(len(data) / dec_s["p50_us"], 1),
        }
        rows.append(row)
        common.detail(
            opts,
            f"{common.fmt_bytes(size):>8} {len(data):>10} {row['overhead_bytes']:>8} "
            f"{common.fmt_us(enc_s['p50_us']):>11} {common.fmt_us(dec_s['p50_us']):>11} "
            f"{row['decode_mb_s']:>11.0f}",
        )
    small, big = rows[0], rows[-1]
    line = (
        f"{NAME}: overhead={small['overhead_bytes']}B..{big['overhead_bytes']}B "
        f"(empty state {small['encoded_bytes']}B) encode p50 "
        f"{common.fmt_us(small['encode']['p50_us'])}..{common.fmt_us(big['encode']['p50_us'])}, "
        f"decode p50 {common.fmt_us(small['decode']['p50_us'])}.."
        f"{common.fmt_us(big['decode']['p50_us'])} "
        f"(0..{common.fmt_bytes(big['state_bytes'])}), 16 MiB decode {big['decode_mb_s']:.0f} MB/s"
    )
    return Result(NAME, line, {"sizes": rows})
