"""The folder `igor run` writes and `igor verify|diff|bisect` read.

DIR/module.wasm              the module that ran
DIR/manifest.json            its capability manifest
DIR/run.json                 agent id, module digest, price, limits
DIR/checkpoints/TICK.ckpt    the checkpoint lineage (10-digit tick, so names sort by tick)
DIR/events.log               the event log, anchored at the first checkpoint's hash
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from igor import checkpoint as ckpt
from igor import eventlog
from igor.checkpoint import Checkpoint


class RunDirError(ValueError):
    pass


@dataclass(frozen=True)
class RunInfo:
    agent_id: str
    module_digest: str
    price: int
    deadline_ms: int
    fuel_per_call: int


def atomic_write(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def create(self, module: bytes, manifest: bytes, info: RunInfo) -> RunDir:
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path / "module.wasm", module)
        atomic_write(self.path / "manifest.json", manifest)
        atomic_write(self.path / "run.json", json.dumps(asdict(info), indent=2).encode())
        return self

    def write_checkpoint(self, cp: Checkpoint) -> Path:
        path = self.checkpoints_dir / f"{cp.tick:010d}.ckpt"
        atomic_write(path, ckpt.encode(cp))
        return path

    def write_log(self, log: eventlog.EventLog) -> None:
        atomic_write(self.path / "events.log", log.encode())

    def _read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise RunDirError(f"{self.path / name}: {exc.strerror}") from None

    def module(self) -> bytes:
        return self._read("module.wasm")

    def manifest(self) -> bytes:
        return self._read("manifest.json")

    def info(self) -> RunInfo:
        try:
            return RunInfo(**json.loads(self._read("run.json")))
        except (ValueError, TypeError) as exc:
            raise RunDirError(f"{self.path / 'run.json'}: {exc}") from None

    def checkpoint_paths(self) -> list[Path]:
        paths = sorted(self.checkpoints_dir.glob("*.ckpt"))
        if not paths:
            raise RunDirError(f"no checkpoint files found in {self.checkpoints_dir}")
        return paths

    def checkpoints(self) -> list[Checkpoint]:
        result = []
        for path in self.checkpoint_paths():
            try:
                result.append(ckpt.decode(path.read_bytes()))
            except ckpt.CheckpointError as exc:
                raise RunDirError(f"{path}: {exc}") from None
        return result

    def log_bytes(self) -> bytes:
        return self._read("events.log")

    def log(self) -> eventlog.EventLog:
        try:
            return eventlog.EventLog.decode(self.log_bytes())
        except eventlog.EventLogError as exc:
            raise RunDirError(f"{self.path / 'events.log'}: {exc}") from None
