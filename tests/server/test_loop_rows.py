"""The hand-over of a continuous batch's chunks to the server's event loop (tinylm.server.loop_rows): one loop
call per scheduler turn for every row, each row's items to its own request in order, its end reported once."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("fastapi")

from tinylm.server.loop_rows import LoopSink, _Hub


class CountingLoop:
    def __init__(self) -> None:
        self.calls: list = []

    def call_soon_threadsafe(self, fn, *args) -> None:
        self.calls.append((fn, args))


def test_a_turns_items_for_every_row_reach_the_loop_in_one_call():
    loop = CountingLoop()
    hub = _Hub(loop)  # type: ignore[arg-type]
    queues = [asyncio.Queue(), asyncio.Queue()]
    ended: list[int] = []
    sinks = [LoopSink(hub, i, queues[i % 2], lambda i=i: ended.append(i)) for i in range(3)]
    for n, sink in enumerate(sinks):
        sink.put(f"chunk {n}.0")
        sink.put(f"chunk {n}.1")
    sinks[1].end()
    for sink in sinks:  # the scheduler flushes every sink that got items: only the first call hands them over
        sink.flush()
    assert len(loop.calls) == 1 and not ended  # nothing delivered before the loop runs the call
    fn, args = loop.calls[0]
    fn(*args)
    got = [queues[0].get_nowait() for _ in range(queues[0].qsize())]
    assert got == [(0, "chunk 0.0"), (0, "chunk 0.1"), (2, "chunk 2.0"), (2, "chunk 2.1")]
    other = [queues[1].get_nowait() for _ in range(queues[1].qsize())]
    assert other[:2] == [(1, "chunk 1.0"), (1, "chunk 1.1")] and other[2][0] == 1 and ended == [1]
    hub.flush()
    assert len(loop.calls) == 1  # an empty turn hands nothing over


def test_a_closed_loop_drops_the_items_without_failing_the_scheduler():
    class Closed:
        def call_soon_threadsafe(self, fn, *args):
            raise RuntimeError("Event loop is closed")

    hub = _Hub(Closed())  # type: ignore[arg-type]
    sink = LoopSink(hub, 0, asyncio.Queue(), lambda: None)
    sink.put("chunk")
    sink.flush()  # no exception: the server is shutting down, nobody is left to read it
