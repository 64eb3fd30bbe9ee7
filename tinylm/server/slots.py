"""Per-model admission and the bridge from tinylm's blocking generators to asyncio.

Each served model has `parallel` execution slots (default 1: one Model, one KV cache, requests
run one after another) and a bounded wait queue; when the queue is full a request gets 429 with
Retry-After instead of waiting forever. Generation runs in a worker thread; a client that goes
away sets a cancel flag, the thread stops at the next token, closes the generator (releasing the
model) and frees the slot.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .errors import APIError

__all__ = ["Lease", "Slots", "run_blocking", "stream_blocking"]

T = TypeVar("T")
_DONE = object()


class Lease:
    """One execution slot, held from admission until the generation has really stopped; released once."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self.released = False
        #: True once a worker owns the lease (it releases it when it ends); until then the holder must.
        self.handed_over = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._slots.release()


class Slots:
    """Admission control for one model: `parallel` running, at most `max_queue` waiting."""

    def __init__(self, *, parallel: int = 1, max_queue: int = 32, retry_after: int = 1) -> None:
        self._running = asyncio.Semaphore(parallel)
        self.max_queue = max_queue
        self.waiting = 0
        self.retry_after = retry_after

    async def acquire(self) -> Lease:
        """Wait for a slot; 429 at once when `max_queue` requests are already waiting."""
        if self._running.locked() and self.waiting >= self.max_queue:
            raise APIError(
                429,
                f"the model is busy: {self.waiting} requests are already waiting. Fix: retry after a moment.",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(self.retry_after)},
            )
        self.waiting += 1
        try:
            await self._running.acquire()
        finally:
            self.waiting -= 1
        return Lease(self)

    def release(self) -> None:
        self._running.release()


async def run_blocking(slots: Slots, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
    """Run `fn` in a worker thread inside one of the model's slots."""
    lease = await slots.acquire()
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, fn)
    finally:
        lease.release()


async def stream_blocking(lease: Lease, executor: ThreadPoolExecutor, iterator: Iterator[T]) -> AsyncIterator[T]:
    """Iterate a blocking generator in a worker thread, yielding its items here.

    The caller acquired `lease` (so a full queue was refused before anything was sent); from the first item
    the worker owns it and releases it once the generator has really stopped in its thread, whether it
    finished, failed, or the consumer went away (then it stops at the next item).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def work() -> None:
        try:
            for item in iterator:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if cancel.is_set():
                    break
        except BaseException as e:  # delivered to the consumer, re-raised there
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            loop.call_soon_threadsafe(lease.release)

    loop.run_in_executor(executor, work)
    lease.handed_over = True
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
