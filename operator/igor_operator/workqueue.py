"""A work queue of object keys, as controller-runtime has: level-triggered reconciling.

A key is queued at most once, processed by at most one worker at a time, and a key added while
it is being processed runs again afterwards, so the last change is never missed. A handler
returns the delay after which to look again (or None); an exception re-queues the key with an
exponential backoff that resets on the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from .retry import backoff

log = logging.getLogger(__name__)

Handler = Callable[[Hashable], Awaitable[float | None]]


class WorkQueue:
    def __init__(
        self,
        handler: Handler,
        workers: int = 4,
        *,
        on_done: Callable[[Hashable, float, bool], None] | None = None,
    ):
        self._handler = handler
        self._workers = workers
        self._on_done = on_done
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: Hashable, delay: float | None = None) -> None:
        if delay and delay > 0:
            self._add_later(key, delay)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._idle.clear()
        self._queue.put_nowait(key)

    def _add_later(self, key: Hashable, delay: float) -> None:
        due = time.monotonic() + delay
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        for n in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"igor-worker-{n}"))

    async def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._processing.add(key)
            started = time.monotonic()
            ok = True
            delay: float | None = None
            try:
                delay = await self._handler(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                ok = False
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                delay = backoff(failures, base=0.5, cap=30.0)
                log.exception("reconciling %s failed; retrying in %.1fs", key, delay)
            finally:
                self._processing.discard(key)
                if self._on_done is not None:
                    self._on_done(key, time.monotonic() - started, ok)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif delay is not None:
                self.add(key, delay)
            if not self._queued and not self._processing:
                self._idle.set()
