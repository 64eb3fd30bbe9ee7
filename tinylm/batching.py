"""Many sequences at once: the one generation loop grown to many rows (continuous batching).

    scheduler = model.batcher()                             # or Model.generate_batch / chat_batch / the server
    stream = scheduler.submit(prompt_ids, settings)         # thread-safe; an iterator of Chunk
    for chunk in stream: ...                                # stream.close() (or dropping it) cancels the row

A `Scheduler` owns one `RowSession` (a session opened with `OpenRequest(rows=N)` on a backend declaring
`Capabilities(rows=True)`) and one worker thread, started when there is work and ended when there is none. Each
turn of its loop is three named phases:

    admit   queued rows, first come first served, while fewer than `max_rows` are live: prefilled in one
            `add_rows` call, and their first token sampled
    step    one `step_rows` for every live row: one forward pass decodes them all
    retire  rows that finished (stop, length) or whose consumer went away: `drop_row`, their slot is free

so rows join between any two steps and leave as soon as they end. Every row is decided by its own `RowState`
(`tinylm.generation`): its sampler and seed, stop ids and strings, logits processors (structured output), streaming
detokenizer and usage, exactly the object `stream_tokens` steps for one sequence; with the same logits a row
yields exactly the tokens it would alone, and the backend's rows contract gives it the same logits.

On a backend without rows, `SerialRows` makes the model's own single-sequence session a `RowSession` of one row:
the same scheduler then runs the rows one after another (correct, not faster).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .backend import RowSession, Session
from .errors import GenerationError, QueueFull
from .generation import Chunk, GenerationSettings, RowState

__all__ = ["Scheduler", "RowStream", "RowSink", "SerialRows"]

log = logging.getLogger("tinylm.batching")

_END = object()  # the last item a row's stream receives


class RowSink(Protocol):
    """Where a row's items go instead of its stream (a server handing them to its event loop), called in the
    scheduler's thread: `put` for each chunk or the exception that ended the row, `end` after its last item, and
    `flush` once at the end of every turn in which the sink got anything (one hand-over per decode step for all
    of a consumer's rows, instead of a thread woken per token)."""

    def put(self, item: Chunk | BaseException) -> None: ...

    def end(self) -> None: ...

    def flush(self) -> None: ...


class _Row:
    """A submitted row as the scheduler holds it: its state, the items for its consumer (its queue, or its sink),
    its cancel flag."""

    __slots__ = ("cancelled", "items", "on_end", "sink", "state", "touched")

    def __init__(
        self,
        state: RowState,
        on_end: Callable[[], None] | None,
        sink: RowSink | None = None,
        touched: set[Any] | None = None,
    ) -> None:
        self.state = state
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = False
        self.on_end = on_end
        self.sink = sink
        self.touched = touched  # the scheduler's sinks to flush at the end of this turn

    def put(self, item: Any) -> None:
        if self.sink is None:
            self.items.put(item)
        else:
            if item is _END:
                self.sink.end()
            else:
                self.sink.put(item)
            assert self.touched is not None
            self.touched.add(self.sink)
        if item is _END and self.on_end is not None:
            try:
                self.on_end()
            except Exception:  # a consumer's callback must not end the other rows
                log.exception("a row's on_end callback failed")


class RowStream(Iterator[Chunk]):
    """The chunks of one submitted row, as the scheduler makes them (consume it from one thread at a time).

    `close()` cancels the row: the scheduler drops it before its next step and frees its slot. A stream dropped
    unfinished (garbage-collected) is closed too, so a consumer that goes away never holds a slot. An error the
    row met (its backend, its sampler) is raised from `next()`.
    """

    def __init__(self, scheduler: Scheduler, row: _Row) -> None:
        self._scheduler = scheduler
        self._row = row
        self.ended = False

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> Chunk:
        if self.ended:
            raise StopIteration
        if self._row.sink is not None:
            raise TypeError("this row delivers its chunks to its sink; its stream only cancels it (close())")
        item = self._row.items.get()
        if item is _END:
            self.ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.ended = True
            raise item
        return item  # type: ignore[no-any-return]

    @property
    def cancelled(self) -> bool:
        return self._row.cancelled

    def close(self) -> None:
        """Cancel the row if it is still running (its consumer went away); safe to call more than once."""
        if not self.ended and not self._row.cancelled:
            self._row.cancelled = True
            self.ended = True
            self._scheduler._wake()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class SerialRows:
    """A plain `Session` as a `RowSession` of one row: the scheduler then runs rows one after another.

    The row holds `lock` (the model's lock, serialising its single session) from `add_rows` to `drop_row`,
    so a `generate()` call from another thread waits instead of resetting the row's cache.
    """

    max_rows = 1

    def __init__(self, session: Session, *, fast_step: bool, lock: Any) -> None:
        self.session = session
        self.fast_step = fast_step
        self.lock = lock
        self.live = False

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        from . import inputs

        inputs.free_rows(int(self.live), len(prompts), 1)
        if not prompts:
            return [], np.zeros((0, 0), np.float32)
        self.lock.acquire()
        try:
            self.session.reset()
            logits = np.array(self.session.forward(np.asarray(prompts[0], np.int64)[None, :])[:1])  # (1, V)
        except BaseException:
            self.lock.release()
            raise
        self.live = True
        return [0], logits

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        token = int(np.asarray(token_ids).reshape(-1)[0])
        if self.fast_step:
            return self.session.step(token)[None, :]  # type: ignore[attr-defined, no-any-return]
        return self.session.forward(np.array([[token]], np.int64))  # type: ignore[no-any-return]

    def drop_row(self, row: int) -> None:
        if self.live:
            self.live = False
            self.lock.release()

    def row_length(self, row: int) -> int:
        return self.session.length


class Scheduler:
    """Continuous batching of submitted rows over one `RowSession` (see the module's docstring).

    Args:
        session: the rows session (or a `SerialRows`).
        tokenizer: decodes each row's text.
        context_length: tokens a row may hold (prompt and generated); a row reaching it stops with "length"
            without disturbing the others.
        max_rows: rows decoded at once (at most `session.max_rows`).
        max_queue: rows allowed to wait for a slot; `submit` raises `QueueFull` beyond (None: unbounded).
    """

    def __init__(
        self,
        session: RowSession,
        tokenizer: Any,
        *,
        context_length: int,
        max_rows: int | None = None,
        max_queue: int | None = None,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.max_rows = min(max_rows or session.max_rows, session.max_rows)
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._queue: deque[_Row] = deque()
        self._live: dict[int, _Row] = {}  # row id -> the row
        self._worker: threading.Thread | None = None
        self._closed = False
        self._closed_why = ("the model was closed.", "load it again with tinylm.load().")  # (what, its fix)
        self._admitting = 0  # rows taken from the queue whose add_rows has not returned yet
        self._touched: set[RowSink] = set()  # sinks given items in this turn (the worker's own)
        #: decode steps run and rows stepped in them (for benchmarks: rows / steps is the mean batch)
        self.steps = 0
        self.stepped_rows = 0

    # the consumers' side ---------------------------------------------------------------------------

    def submit(
        self,
        prompt_ids: Sequence[int] | np.ndarray,
        settings: GenerationSettings,
        *,
        on_end: Callable[[], None] | None = None,
        bounded: bool = True,
    ) -> RowStream:
        """Queue one generation; returns its stream at once (the first chunk comes once it is admitted).

        The prompt is checked here (empty, longer than the context: `GenerationError`/`PromptTooLong`), before
        anything runs. Raises `QueueFull` when `max_queue` rows are already waiting (`bounded=False`: queue it
        anyway, as `generate_batch` does with its own rows). `on_end` is called (in the scheduler's thread, keep
        it short) once the row's last item is in its stream.
        """
        return self.submit_many([(prompt_ids, settings, on_end)], bounded=bounded)[0]

    def submit_many(
        self,
        rows: Sequence[tuple[Sequence[int] | np.ndarray, GenerationSettings, Callable[[], None] | None]],
        *,
        bounded: bool = True,
        sinks: Sequence[RowSink] | None = None,
    ) -> list[RowStream]:
        """`submit` for several rows (prompt ids, settings, on_end) at once: all are checked first, then queued
        together, so the scheduler admits them in one `add_rows` while it has room. `sinks`: one per row, which
        then receives the row's items instead of its stream (the streams only cancel their rows)."""
        if sinks is not None and len(sinks) != len(rows):
            raise ValueError(f"{len(sinks)} sinks for {len(rows)} rows: give one per row")
        made = [
            _Row(
                RowState(ids, self.tokenizer, settings, context_length=self.context_length),
                on_end,
                None if sinks is None else sinks[i],
                self._touched,
            )
            for i, (ids, settings, on_end) in enumerate(rows)
        ]
        with self._cond:
            if self._closed:
                what, fix = self._closed_why
                raise GenerationError(f"{what} Fix: {fix}")
            if bounded and self.max_queue is not None and len(self._queue) + len(made) > self.max_queue:
                raise QueueFull(
                    f"{len(self._queue)} rows are already waiting for one of {self.max_rows} slots. "
                    "Fix: retry after a moment, or raise max_queue."
                )
            self._queue.extend(made)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="tinylm-batch", daemon=True)
                self._worker.start()
            self._cond.notify()
        return [RowStream(self, row) for row in made]

    @property
    def live(self) -> int:
        """Rows being decoded now."""
        return len(self._live)

    @property
    def waiting(self) -> int:
        """Rows waiting for a slot."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether any row is live, being admitted or waiting (an idle scheduler has none)."""
        with self._cond:
            return bool(self._live or self._admitting or self._queue)

    def close(self, why: str | None = None, fix: str | None = None) -> None:
        """Cancel every row (their streams end with a `GenerationError` saying `why` and its `fix`, by default
        that the model was closed) and stop the worker; a later `submit` raises the same."""
        with self._cond:
            if why is not None and fix is not None:
                self._closed_why = (why, fix)
            self._closed = True
            self._cond.notify()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # the worker: admit, step, retire --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._turn():
                self._flush()
        except BaseException as e:  # a backend failure: every row in flight learns of it, none hangs
            log.exception("the batch worker failed")
            with self._cond:  # rows submitted after this stay queued, for the next worker
                self._fail_all(e)
        finally:
            self._flush()
            with self._cond:
                self._worker = None
                if self._queue and not self._closed:  # rows that came while it was ending
                    self._worker = threading.Thread(target=self._run, name="tinylm-batch", daemon=True)
                    self._worker.start()

    def _turn(self) -> bool:
        """One turn of the loop; False once there is nothing left to do (the worker then ends)."""
        with self._cond:
            if self._closed:
                what, fix = self._closed_why
                self._fail_all(GenerationError(f"{what} Fix: {fix}"))
                return False
            self._retire_cancelled()
            if not self._live and not self._queue:
                return False
            admitted = self._take(self.max_rows - len(self._live))
            self._admitting = len(admitted)
        if admitted:
            try:
                self._admit(admitted)
            finally:
                with self._cond:
                    self._admitting = 0
        if self._live:
            self._step()
        return True

    def _flush(self) -> None:
        """Hand this turn's items over: `flush` once per sink that got any."""
        if not self._touched:
            return
        sinks = list(self._touched)
        self._touched.clear()
        for sink in sinks:
            try:
                sink.flush()
            except Exception:  # a consumer's hand-over must not stop the other rows
                log.exception("a row sink failed to flush")

    def _take(self, free: int) -> list[_Row]:
        taken: list[_Row] = []
        while self._queue and len(taken) < free:
            stream = self._queue.popleft()
            if stream.cancelled:
                stream.put(_END)
                continue
            taken.append(stream)
        return taken

    def _retire_cancelled(self) -> None:
        """End the rows whose consumers went away: live ones are dropped, queued ones leave the queue (they no
        longer count against `max_queue`, and a server's request ends now, not when a slot frees)."""
        for row, stream in list(self._live.items()):
            if stream.cancelled:
                try:
                    self._drop(row)
                finally:
                    stream.put(_END)
        if any(stream.cancelled for stream in self._queue):
            gone = [stream for stream in self._queue if stream.cancelled]
            self._queue = deque(stream for stream in self._queue if not stream.cancelled)
            for stream in gone:
                stream.put(_END)

    def _admit(self, streams: list[_Row]) -> None:
        try:
            rows, logits = self.session.add_rows([s.state.prompt for s in streams])  # (R, V)
        except Exception as e:
            for stream in streams:
                stream.put(e)
                stream.put(_END)
            return
        for i, (row, stream) in enumerate(zip(rows, streams)):
            self._live[row] = stream
            self._advance(row, stream, logits[i])

    def _step(self) -> None:
        rows = list(self._live)
        tokens = np.fromiter((self._live[r].state.token for r in rows), np.int64, len(rows))  # (R,)
        logits = self.session.step_rows(rows, tokens)  # (R, V)
        self.steps += 1
        self.stepped_rows += len(rows)
        for i, row in enumerate(rows):
            self._advance(row, self._live[row], logits[i])

    def _advance(self, row: int, stream: _Row, logits: np.ndarray) -> None:
        """Feed a row its logits (V,): the chunk goes to its consumer; a finished or failed row is retired before
        its last item is sent (when a consumer sees its stream end, the slot is free)."""
        state = stream.state
        last: Chunk | Exception | None = None
        try:
            chunk = state.advance(logits, self.session.row_length(row))
            if chunk is not None:
                stream.put(chunk)
            if state.done:
                last = state.finish()
        except Exception as e:  # this row's own failure (e.g. a constraint that allows no token): it alone ends
            last, state.done = e, True
        if state.done:
            try:
                self._drop(row)
            finally:  # its consumer gets its end even when the backend failed to drop it (that error ends the rest)
                stream.put(last)
                stream.put(_END)

    def _drop(self, row: int) -> None:
        self._live.pop(row, None)
        self.session.drop_row(row)

    def _fail_all(self, error: BaseException) -> None:
        for row, stream in list(self._live.items()):
            stream.put(error)
            stream.put(_END)
            try:
                self._drop(row)
            except Exception:  # the session itself failed: forgetting the row is all that is left
                self._live.pop(row, None)
        while self._queue:
            stream = self._queue.popleft()
            stream.put(error)
            stream.put(_END)
