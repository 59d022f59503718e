"""Progress lines on stderr for long runs: at most a few per second."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, what: str, enabled: bool = True, interval: float = 0.5):
        self.what = what
        self.enabled = enabled
        self.interval = interval
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.interval and done != total):
            return
        self._last = now
        line = f"{self.what}: {done}/{total}" if total else f"{self.what}: {done}"
        if self._tty:
            end = "\n" if done == total else ""
            print(f"\r{line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)
