"""A request's choices as rows of a model's continuous batch, delivered straight to the server's event loop.

The scheduler's thread puts each row's chunks into the row's `LoopSink`; at the end of each turn (a decode step
for every live row) it flushes, and one `call_soon_threadsafe` per event loop hands every row's new items over,
where each request reads its own from an asyncio queue. No thread per request and no hand-over per token: with
16 streaming requests, a step wakes the loop once instead of waking 16 threads that each wake the loop
(docs/server-load.md).

    rows = BatchedRows(model, parallel, [(prompt_ids, settings), ...])   # checked, nothing submitted yet
    async for index, chunk in rows.open(lease): ...                     # submitted here; closing cancels them
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ..generation import Chunk, GenerationSettings
from ..model import Model
from ..tools import CallStream
from .slots import Lease

__all__ = ["BatchedRows"]

_END = object()  # a row's last item, as delivered to its request


class _Hub:
    """One per event loop: the items the scheduler's threads put during a turn, handed to the loop in one call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: list[tuple[LoopSink, Any]] = []
        self._lock = threading.Lock()  # several models' schedulers may flush at once

    def add(self, sink: LoopSink, item: Any) -> None:
        with self._lock:
            self._pending.append((sink, item))

    def flush(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
        if items:
            try:
                self.loop.call_soon_threadsafe(self._deliver, items)
            except RuntimeError:  # the loop has closed (the server is shutting down): nobody is left to read them
                pass

    @staticmethod
    def _deliver(items: list[tuple[LoopSink, Any]]) -> None:
        for sink, item in items:
            sink.deliver(item)


_hubs: dict[asyncio.AbstractEventLoop, _Hub] = {}
_hubs_lock = threading.Lock()  # servers on other loops (threads) of the same process register theirs too


def _hub(loop: asyncio.AbstractEventLoop) -> _Hub:
    with _hubs_lock:
        if loop not in _hubs:
            for closed in [other for other in _hubs if other.is_closed()]:  # loops of servers that have stopped
                del _hubs[closed]
            _hubs[loop] = _Hub(loop)
        return _hubs[loop]


class LoopSink:
    """One row's `tinylm.batching.RowSink`: its items go to `queue` as (index, item) in the loop's thread; once
    the row has ended, `ended()` is called there too (whether or not anyone still reads the queue)."""

    def __init__(self, hub: _Hub, index: int, queue: asyncio.Queue[tuple[int, Any]], ended: Callable[[], None]) -> None:
        self.hub, self.index, self.queue, self.ended = hub, index, queue, ended

    def put(self, item: Chunk | BaseException) -> None:
        self.hub.add(self, item)

    def end(self) -> None:
        self.hub.add(self, _END)

    def flush(self) -> None:
        self.hub.flush()

    def deliver(self, item: Any) -> None:
        self.queue.put_nowait((self.index, item))
        if item is _END:
            self.ended()


class BatchedRows:
    """A request's choices (prompt ids, settings), each a row of `model`'s batcher of `parallel` rows, submitted
    when `open` is iterated. `calls`: each choice's tool-call parser, fed every chunk (None: no tools)."""

    def __init__(self, model: Model, parallel: int, choices: Sequence[tuple[list[int], GenerationSettings]]) -> None:
        self.model, self.parallel, self.choices = model, parallel, choices
        self.calls: list[CallStream] | None = None

    async def open(self, lease: Lease) -> AsyncIterator[tuple[int, Chunk]]:
        """(choice index, chunk) pairs as the rows decode, interleaved. The lease is released once every row has
        ended; leaving early (the client went away) cancels the rows still running, which frees their slots."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        left = len(self.choices)

        def ended() -> None:
            nonlocal left
            left -= 1
            if not left:
                lease.release()

        hub = _hub(loop)
        sinks = [LoopSink(hub, i, queue, ended) for i in range(len(self.choices))]
        rows = [(ids, settings, None) for ids, settings in self.choices]
        # in a worker thread: the first call opens the batcher's rows session (admission: the request's lease)
        submit = functools.partial(self.model._submit_rows, rows, max_rows=self.parallel, bounded=False, sinks=sinks)
        streams = await loop.run_in_executor(None, submit)
        lease.handed_over = True
        try:
            running = len(streams)
            while running:
                index, item = await queue.get()
                if item is _END:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield index, item if self.calls is None else self.calls[index].feed(item)
        finally:
            for stream in streams:
                stream.close()
