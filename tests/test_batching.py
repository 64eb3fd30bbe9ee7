"""Many sequences at once (issue #24): `Model.generate_batch`/`chat_batch`/`submit`/`batcher` and the scheduler.

Every row yields what `generate` gives it alone (greedy, seeded sampling, stop strings, structured output),
errors are typed and raised before anything runs, a consumer that goes away frees its row, and a model whose
rows cannot be decoded together (here: longrope, whose rotary table switches within the context) still gives
the same completions, one row after another. The per-backend contract is in tinylm.testing.conformance.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import tinylm
from tinylm.batching import Scheduler
from tinylm.errors import GenerationError, InvalidArgument, PromptTooLong, QueueFull
from tinylm.generation import GenerationSettings
from tinylm.testing.models import build_model

PROMPTS = ["Hello there", "Where is my parcel? It was due on Monday.", "x", "A refund, please.", "Hi"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    with tinylm.load(build_model("llama", tmp_path_factory.mktemp("batch") / "m", seed=0), backend="torch") as m:
        yield m


@pytest.fixture(scope="module")
def serial_model(tmp_path_factory):
    """A model the core decodes one row at a time (longrope switches its rotary table within the context)."""
    folder = build_model("phi3-longrope", tmp_path_factory.mktemp("serial") / "m", seed=0)
    with tinylm.load(folder, backend="torch") as m:
        yield m


def test_generate_batch_equals_generate_for_every_row(model):
    alone = [model.generate(p, max_new_tokens=12, ignore_eos=True) for p in PROMPTS]
    done: list[int] = []
    batched = model.generate_batch(
        PROMPTS, max_new_tokens=12, ignore_eos=True, batch_size=2, on_result=lambda i, c: done.append(i)
    )
    assert [c.token_ids for c in batched] == [c.token_ids for c in alone]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.usage.prompt_tokens for c in batched] == [c.usage.prompt_tokens for c in alone]
    assert all(c.finish_reason == "length" and c.usage.completion_tokens == 12 for c in batched)
    assert sorted(done) == list(range(len(PROMPTS)))  # each row reported once, as it finished


def test_rows_run_together(model):
    """With room for every row, one decode step serves them all (not one row after another)."""
    scheduler = model.batcher(max_rows=4)
    before_steps, before_rows = scheduler.steps, scheduler.stepped_rows
    model.generate_batch(PROMPTS[:4], max_new_tokens=8, ignore_eos=True, batch_size=4)
    steps, rows = scheduler.steps - before_steps, scheduler.stepped_rows - before_rows
    assert rows == 4 * 7 and steps == 7  # 7 decode steps after the prefill, 4 rows in each


def test_a_smaller_batch_reuses_the_idle_rows_session_a_larger_one_opens_another(model):
    """Asking the idle batcher for fewer rows keeps its rows session (nothing to open, its held prompt heads stay)
    and admits only that many; asking for more opens a session of that size."""
    big = model.batcher(max_rows=12)  # more rows than any other test here asks: a session of its own
    small = model.batcher(max_rows=2)
    assert small is big and small.session is big.session and small.max_rows == 2
    before_steps, before_rows = small.steps, small.stepped_rows
    done = model.generate_batch(PROMPTS[:4], max_new_tokens=6, ignore_eos=True, batch_size=2)
    assert [c.token_ids for c in done] == [
        model.generate(p, max_new_tokens=6, ignore_eos=True).token_ids for p in PROMPTS[:4]
    ]
    steps, rows = small.steps - before_steps, small.stepped_rows - before_rows
    assert rows == 4 * 5 and steps == 2 * 5  # two rows a step, never four: 5 decode steps per row after its prefill
    assert model.batcher(max_rows=12) is big and big.max_rows == 12
    larger = model.batcher(max_rows=13)
    assert larger is not big and larger.session.max_rows == 13 and larger.max_rows == 13


def test_seeded_sampling_per_row_is_that_of_generate(model):
    options = tinylm.GenerationOptions(max_new_tokens=10, temperature=0.9, top_k=40, seed=3, ignore_eos=True)
    batched = model.generate_batch(PROMPTS, options=options, batch_size=3)
    assert [c.token_ids for c in batched] == [model.generate(p, options=options).token_ids for p in PROMPTS]
    assert [c.token_ids for c in model.generate_batch(PROMPTS, options=options)] == [c.token_ids for c in batched]


def test_stop_strings_and_stop_ids_apply_per_row(model):
    alone = [model.generate(p, max_new_tokens=24, ignore_eos=True) for p in PROMPTS]
    stop = next(c.text[3:5] for c in alone if len(c.text) > 6)  # a string some row really produces
    expected = [model.generate(p, max_new_tokens=24, stop=[stop], ignore_eos=True) for p in PROMPTS]
    batched = model.generate_batch(PROMPTS, max_new_tokens=24, stop=[stop], ignore_eos=True, batch_size=3)
    assert [(c.text, c.finish_reason) for c in batched] == [(c.text, c.finish_reason) for c in expected]
    assert any(c.finish_reason == "stop" for c in batched)
    with_eos = model.generate_batch(PROMPTS, max_new_tokens=24)  # stop token ids: as generate
    assert [c.token_ids for c in with_eos] == [model.generate(p, max_new_tokens=24).token_ids for p in PROMPTS]


def test_structured_output_per_row(model):
    pytest.importorskip("llguidance")
    pattern = re.compile(r"[a-c]{2,5}")
    batched = model.generate_batch(PROMPTS[:3], response_format=pattern, max_new_tokens=8, batch_size=2)
    alone = [model.generate(p, response_format=pattern, max_new_tokens=8) for p in PROMPTS[:3]]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert all(pattern.fullmatch(c.parsed) for c in batched)


def test_chat_batch_equals_chat(model):
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS[:3]]
    batched = model.chat_batch(conversations, max_new_tokens=6, ignore_eos=True)
    assert [c.token_ids for c in batched] == [
        model.chat(c, max_new_tokens=6, ignore_eos=True).token_ids for c in conversations
    ]


def test_bad_input_is_refused_before_anything_runs(model):
    scheduler = model.batcher()
    steps = scheduler.steps
    with pytest.raises(InvalidArgument, match=r"prompts must be a list.*Fix"):
        model.generate_batch("one prompt")
    with pytest.raises(PromptTooLong, match=r"prompts\[1\].*Fix"):
        model.generate_batch(["fine", [5] * model.context_length])
    with pytest.raises(GenerationError, match=r"prompts\[0\] is empty.*Fix"):
        model.generate_batch(["", "fine"])
    with pytest.raises(InvalidArgument, match=r"batch_size .*Fix"):
        model.generate_batch(["a"], batch_size=0)
    with pytest.raises(InvalidArgument, match=r"^seed .*Fix"):
        model.generate_batch(["a"], seed=-1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_tokens'"):
        model.generate_batch(["a"], max_tokens=3)
    with pytest.raises(InvalidArgument, match="conversations must be"):
        model.chat_batch("hi")
    assert scheduler.steps == steps and scheduler.live == 0 and scheduler.waiting == 0
    assert model.generate_batch([]) == []


def test_a_cancelled_row_frees_its_slot_and_the_others_continue(model):
    scheduler = model.batcher(max_rows=2)
    expected = model.generate(PROMPTS[1], max_new_tokens=30, ignore_eos=True)
    gone = model.submit(PROMPTS[0], max_new_tokens=200, ignore_eos=True)
    kept = model.submit(PROMPTS[1], max_new_tokens=30, ignore_eos=True)
    next(gone)
    gone.close()  # its consumer went away
    assert tuple(t for c in kept for t in c.token_ids) == expected.token_ids
    deadline = time.monotonic() + 30
    while scheduler.live:
        assert time.monotonic() < deadline, "the cancelled row was never dropped"
        time.sleep(0.01)
    dropped = model.submit(PROMPTS[2], max_new_tokens=200, ignore_eos=True)
    next(dropped)
    del dropped  # a stream garbage-collected unfinished cancels its row too
    deadline = time.monotonic() + 30
    while scheduler.live:
        assert time.monotonic() < deadline, "the dropped row was never cancelled"
        time.sleep(0.01)


def test_submit_from_many_threads(model):
    expected = {p: model.generate(p, max_new_tokens=10, ignore_eos=True).text for p in PROMPTS}
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def one(prompt: str) -> None:
        try:
            got[prompt] = "".join(c.text for c in model.submit(prompt, max_new_tokens=10, ignore_eos=True))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and got == expected


def test_a_full_queue_is_a_typed_error(model):
    scheduler = Scheduler(model._rows_session(1), model.tokenizer, context_length=model.context_length, max_queue=1)
    settings = GenerationSettings(max_new_tokens=200)
    try:
        running = scheduler.submit([5, 6, 7], settings)
        next(running)  # admitted: the one slot is taken
        waiting = scheduler.submit([5, 6], settings)
        with pytest.raises(QueueFull, match="Fix"):
            scheduler.submit([5], settings)
        running.close()
        waiting.close()
    finally:
        scheduler.close()
        scheduler.session.close()


def test_a_cancelled_waiting_row_leaves_the_queue_at_once(model):
    """A consumer that goes away while its row waits for a slot frees its place in the queue at the next turn
    (not when a slot frees): it stops counting against max_queue and its stream ends."""
    scheduler = Scheduler(model._rows_session(1), model.tokenizer, context_length=model.context_length, max_queue=1)
    settings = GenerationSettings(max_new_tokens=200, stop_token_ids=())
    try:
        running = scheduler.submit([5, 6, 7], settings)
        next(running)  # admitted: the one slot is taken
        waiting = scheduler.submit([5, 6], settings)
        waiting.close()
        deadline = time.monotonic() + 30
        while scheduler.waiting:
            assert time.monotonic() < deadline, "the cancelled row still waits"
            time.sleep(0.01)
        assert scheduler.live == 1
        again = scheduler.submit([5], settings)  # the queue has room again: no QueueFull
        again.close()
        running.close()
    finally:
        scheduler.close()
        scheduler.session.close()


def test_a_row_whose_drop_fails_still_ends(model, monkeypatch):
    """A backend failing to drop a finished row fails the batch (every other row learns of it), but the finished
    row's consumer still gets its last chunk and its end: no stream waits forever."""
    scheduler = model.batcher(max_rows=2)
    drop_row = scheduler.session.drop_row
    failed: list[int] = []

    def broken_drop(row):
        if not failed:
            failed.append(row)
            raise RuntimeError("drop_row failed")
        return drop_row(row)

    monkeypatch.setattr(scheduler.session, "drop_row", broken_drop)
    stream = model.submit(PROMPTS[0], max_new_tokens=2, ignore_eos=True)
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the finished row's stream never ended"
    assert got[-1].finish_reason == "length"
    drop_row(failed[0])  # the row the backend kept: free its slot for the other tests
    for _ in range(100):  # rows in flight when the failure is handled get it: wait until the batcher is past it
        try:
            model.generate_batch([PROMPTS[1]], batch_size=2, max_new_tokens=1)
            break
        except RuntimeError:
            time.sleep(0.05)


def test_a_row_error_ends_that_row_only(model):
    def forbid_all(logits, history):
        return np.full_like(logits, -np.inf)

    kept = model.submit(PROMPTS[1], max_new_tokens=6, ignore_eos=True)
    failing = model.submit(PROMPTS[0], max_new_tokens=6, logits_processors=[forbid_all])
    with pytest.raises(GenerationError, match="no token is allowed"):
        list(failing)
    assert sum(len(c.token_ids) for c in kept) == 6


def test_a_failing_on_end_callback_ends_nothing_else(model):
    scheduler = model.batcher(max_rows=2)
    ids = model.tokenizer.encode(PROMPTS[0])

    def broken() -> None:
        raise RuntimeError("a consumer's bug")

    settings = GenerationSettings(max_new_tokens=20, stop_token_ids=())
    long = scheduler.submit(ids, settings)
    short = scheduler.submit(ids, GenerationSettings(max_new_tokens=1, stop_token_ids=()), on_end=broken)
    assert list(short)[-1].finish_reason == "length"
    assert [c.finish_reason for c in long][-1] == "length"  # not the other row's RuntimeError


def test_a_larger_batcher_waits_for_rows_being_admitted(model, monkeypatch):
    """Rows taken from the queue whose prefill is still running are neither live nor waiting: the scheduler is
    busy all the same, so a call asking for more rows gets it as it is instead of closing it under them."""
    scheduler = model.batcher(max_rows=2)
    entered, release = threading.Event(), threading.Event()
    add_rows = scheduler.session.add_rows

    def slow_add_rows(prompts):  # a long prefill
        entered.set()
        release.wait(10)
        return add_rows(prompts)

    monkeypatch.setattr(scheduler.session, "add_rows", slow_add_rows)
    stream = model.submit(PROMPTS[1], max_new_tokens=4, ignore_eos=True)
    assert entered.wait(10)
    assert model.batcher(max_rows=4) is scheduler and scheduler.busy
    release.set()
    assert sum(len(c.token_ids) for c in stream) == 4


def test_a_larger_batcher_never_closes_the_one_a_call_is_submitting_to(model, monkeypatch):
    """Choosing the batcher and queueing the rows is one step: a call asking for more rows meanwhile waits until
    the rows are queued (before, it closed the batcher and the rows failed with "closed")."""
    scheduler = model.batcher(max_rows=2)
    entered, release = threading.Event(), threading.Event()
    submit_many = scheduler.submit_many

    def paused(*args, **kwargs):
        entered.set()
        release.wait(10)
        return submit_many(*args, **kwargs)

    monkeypatch.setattr(scheduler, "submit_many", paused)
    done: dict[str, object] = {}

    def batch() -> None:
        try:
            done["out"] = model.generate_batch([PROMPTS[0]], batch_size=2, max_new_tokens=3, ignore_eos=True)
        except BaseException as e:  # for the main thread's assertion
            done["out"] = e

    caller = threading.Thread(target=batch)
    caller.start()
    assert entered.wait(10)
    other = threading.Thread(target=lambda: done.setdefault("larger", model.batcher(max_rows=30)))
    other.start()
    time.sleep(0.2)  # the other call's chance to run before the rows are queued (it waits for them instead)
    release.set()
    caller.join(60)
    other.join(60)
    assert isinstance(done["out"], list) and len(done["out"][0].token_ids) == 3, done["out"]


def test_batches_of_different_sizes_from_many_threads_all_finish(model):
    """generate_batch calls of different sizes at once: one may replace the idle batcher with a larger one, never
    one another caller has chosen and not yet submitted to."""
    expected = model.generate(PROMPTS[0], max_new_tokens=2, ignore_eos=True).token_ids
    errors: list[BaseException] = []

    def calls(size: int) -> None:
        for _ in range(6):
            try:
                out = model.generate_batch([PROMPTS[0]], batch_size=size, max_new_tokens=2, ignore_eos=True)
                assert out[0].token_ids == expected
            except BaseException as e:  # collected for the main thread's assertion
                errors.append(e)

    threads = [threading.Thread(target=calls, args=(size,)) for size in (1, 2, 3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, repr(errors[0])


def test_the_queue_bound_survives_a_larger_batcher(model):
    model.batcher(max_rows=2, max_queue=3)
    larger = model.batcher(max_rows=20)  # more rows than any session opened here: a new scheduler and session
    assert larger.session.max_rows == 20 and larger.max_queue == 3
    assert model.batcher(max_queue=None).max_queue == 3  # None keeps the bound
    model.batcher(max_queue=64)


def test_without_rows_the_rows_run_one_after_another_with_the_same_results(serial_model):
    assert not serial_model.batches_rows
    alone = [serial_model.generate(p, max_new_tokens=20, ignore_eos=True) for p in PROMPTS]
    batched = serial_model.generate_batch(PROMPTS, max_new_tokens=20, ignore_eos=True, batch_size=4)
    assert [c.token_ids for c in batched] == [c.token_ids for c in alone]
    assert serial_model.batcher().max_rows == 1
    # the single session is shared with generate(): a generate from another thread waits for the running row
    stream = serial_model.submit(PROMPTS[1], max_new_tokens=20, ignore_eos=True)
    first = next(stream)
    other = threading.Thread(target=serial_model.generate, args=(PROMPTS[0],), kwargs={"max_new_tokens": 5})
    other.start()
    rest = [t for c in stream for t in c.token_ids]
    other.join(timeout=60)
    assert (*first.token_ids, *rest) == alone[1].token_ids


def test_a_batch_from_inside_an_open_stream_is_refused_where_rows_share_its_session(serial_model):
    """Without rows the batch runs on the model's own session, which an open stream of the same thread holds: the
    batch would wait for it forever (the stream waits for the batch); it is refused instead."""
    stream = serial_model.stream(PROMPTS[0], max_new_tokens=4, ignore_eos=True)
    next(stream)
    with pytest.raises(GenerationError, match=r"still running in this thread.*Fix"):
        serial_model.generate_batch([PROMPTS[1]], max_new_tokens=2)
    stream.close()
    assert len(serial_model.generate_batch([PROMPTS[1]], max_new_tokens=2)[0].token_ids) >= 1


def test_closing_the_model_ends_its_batcher(tmp_path):
    m = tinylm.load(build_model("llama", tmp_path / "m", seed=0), backend="torch")
    m.generate_batch(["a", "b"], max_new_tokens=2)
    m.close()
    with pytest.raises(GenerationError, match="closed"):
        m.generate_batch(["a"], max_new_tokens=2)


class RecordingSink:
    """A `RowSink` that records what the scheduler hands it, and in which thread."""

    def __init__(self, log: list) -> None:
        self.log, self.items, self.ended = log, [], threading.Event()

    def put(self, item):
        self.items.append(item)
        self.log.append(("put", self))

    def end(self):
        self.log.append(("end", self))
        self.ended.set()

    def flush(self):
        self.log.append(("flush", self))


def test_rows_with_sinks_hand_their_items_over_once_per_turn(model):
    """A server's rows: each sink gets its row's chunks (those `generate` gives alone) and its end, and at the end
    of every turn the scheduler flushes each sink that got anything once, not once per item."""
    scheduler = model.batcher(max_rows=4)
    log: list = []
    sinks = [RecordingSink(log) for _ in PROMPTS[:3]]
    options = tinylm.GenerationOptions(max_new_tokens=9, ignore_eos=True)
    rows = [model._row(p, options, (), None, True) for p in PROMPTS[:3]]  # (ids, settings), as the server makes
    streams = scheduler.submit_many([(i, s, None) for i, s in rows], bounded=False, sinks=sinks)
    for sink in sinks:
        assert sink.ended.wait(30), "a row with a sink never ended"
    for prompt, sink in zip(PROMPTS[:3], sinks):
        alone = model.generate(prompt, max_new_tokens=9, ignore_eos=True)
        assert tuple(t for c in sink.items for t in c.token_ids) == alone.token_ids
        assert sink.items[-1].finish_reason == "length"
    puts = sum(1 for kind, _ in log if kind == "put")
    blocks: list[list] = []  # runs of flushes: the end of a turn
    for (kind, sink), (before, _) in zip(log, [("", None), *log]):
        if kind == "flush":
            (blocks[-1].append(sink) if before == "flush" else blocks.append([sink]))
    assert all(len(set(map(id, block))) == len(block) for block in blocks)  # each sink once per turn
    assert len(blocks) <= puts / 2  # a turn's items of all three rows, then their flushes: not flush per item
    assert log[-1][0] == "flush"  # nothing is left unflushed
    with pytest.raises(TypeError, match="sink"):
        next(streams[0])
    with pytest.raises(ValueError, match="one per row"):
        scheduler.submit_many([(*rows[0], None)], sinks=[])
