"""The conformance suite every backend runs, built-in or third-party.

    # tests/test_conformance.py of a backend package
    from tinylm.testing.conformance import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "mine"

It builds tiny random models of each family (`tinylm.testing.models`) and checks, against
`transformers` as the reference: logits at every position of a teacher-forced sequence, greedy
tokens (near-ties reported, not failed), KV-cache correctness across prefill and decode, batch > 1,
stream == generate, sentence embeddings, and typed errors on bad input. A backend declaring
`Capabilities(rows=True)` also runs the rows tests (`rows_variants`): each row's logits and greedy tokens equal
its prompt decoded alone (ragged prompts), rows joining and leaving mid-stream, one row reaching the full context
while the others continue, and seeded sampling per row reproducible; they use only the `RowSession` contract and
the public batched API, nothing backend-specific. A backend declaring `Capabilities(rollback=True)` also runs the
rollback tests (`rollback_variants`): `truncate` then `forward` gives the shorter sequence's logits, and speculative
decoding (prompt lookup, proposers wrong on purpose, a draft model) gives the tokens of plain decoding, with
seeded sampling reproducible. Override the class
attributes to tune tolerances or the families a backend supports. Needs `pytest`, `torch` and
`transformers` (the test extra: `pip install tinylm[test]`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import numpy as np
import pytest

import tinylm
from tinylm.arch.rope import switch_length
from tinylm.errors import CapabilityError, GenerationError, PromptTooLong
from tinylm.plugins import get_manager
from tinylm.speculative import Pace

from .models import DECODER_VARIANTS, ENCODER_VARIANTS, build_model

__all__ = [
    "BackendConformance",
    "Reference",
    "reference",
    "greedy_check",
    "Spoiler",
    "replay_speculation",
    "fail_after",
]


@contextlib.contextmanager
def fail_after(owner: Any, name: str, calls: int) -> Iterator[None]:
    """While active, `owner.name` (a method, on an object or a class) runs its first `calls` calls, then raises
    RuntimeError: a runtime failing in the middle of a call (memory, a lost device), for
    `BackendConformance.failing_prefill`."""
    original = getattr(owner, name)
    made = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal made
        made += 1
        if made > calls:
            raise RuntimeError(f"{name} failed on purpose (tinylm.testing.conformance.fail_after)")
        return original(*args, **kwargs)

    with mock.patch.object(owner, name, failing):
        yield


SEQ = 32  # teacher-forced positions and free-running tokens compared
LONG_TEXT = (
    "my order arrived yesterday but the box was open, two items were missing and the receipt shows a "
    "different address, so please tell me how to return it and when the refund will reach my account"
)


class Reference:
    """`transformers` run on a model folder: the oracle the suite compares against (fp32)."""

    def __init__(self, folder: Path) -> None:
        import torch
        import transformers

        self.torch = torch
        config = transformers.AutoConfig.from_pretrained(folder)
        if config.model_type in ("bert", "roberta", "xlm-roberta", "modernbert"):  # the encoders: hidden states
            self.model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32)
        else:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """(T, V) logits for one sequence."""
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(ids[None])).logits[0].float().numpy()

    def greedy(self, prompt: np.ndarray, n: int) -> tuple[list[int], list[float]]:
        """n greedy tokens (full forward each step: no cache to trust) and the top-2 margin at each."""
        ids, tokens, margins = list(prompt), [], []
        for _ in range(n):
            last = self.logits(np.asarray(ids, dtype=np.int64))[-1]
            top2 = np.sort(last)[-2:]
            tokens.append(int(np.argmax(last)))
            margins.append(float(top2[1] - top2[0]))
            ids.append(tokens[-1])
        return tokens, margins

    def pooled(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray, mode: str = "mean") -> np.ndarray:
        """The last hidden states pooled as sentence-transformers does (mask-aware mean, or the first token's
        state for "cls"), L2-normalised. The padded batch runs as one call with its attention mask."""
        t = self.torch
        extra = {"token_type_ids": t.from_numpy(types)} if getattr(self.model.config, "type_vocab_size", 0) else {}
        with t.no_grad():
            out = self.model(input_ids=t.from_numpy(ids), attention_mask=t.from_numpy(mask), **extra).last_hidden_state
        if mode == "cls":
            pooled = out[:, 0]
        else:
            m = t.from_numpy(mask)[..., None].float()
            pooled = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return t.nn.functional.normalize(pooled, dim=-1).numpy()


class Spoiler:
    """A proposer that knows the tokens plain decoding gives (`truth`, after `prompt`) and proposes them with one
    replaced by a wrong id at a place drawn per proposal (past the truth: random ids)."""

    def __init__(self, prompt: list[int], truth: tuple[int, ...], vocab: int, *, seed: int) -> None:
        self.prompt, self.truth, self.vocab = len(prompt), truth, vocab
        self.rng = np.random.default_rng(seed)

    def propose(self, history: np.ndarray, k: int) -> list[int]:
        done = history.shape[0] - self.prompt  # tokens generated so far
        right = list(self.truth[done : done + k])
        tokens = right + self.rng.integers(3, self.vocab, k - len(right)).tolist()
        at = int(self.rng.integers(0, k))
        tokens[at] = (tokens[at] + 1 + int(self.rng.integers(0, self.vocab - 1))) % self.vocab  # never the right one
        return tokens


def replay_speculation(
    session: Any,
    vocab: int,
    *,
    rounds: int,
    sizes: Sequence[int],
    keep: Callable[[int, int], int],
    steps: Callable[[int], int] = lambda i: 1,
    seed: int = 0,
    after_truncate: Callable[[int], None] | None = None,
) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Drive a rollback session as speculative decoding does: a prompt, then `rounds` verifying passes (all
    positions) of `sizes[i % len(sizes)]` random tokens, each truncated to `keep(i, size)` of them
    (`after_truncate(tokens dropped)` called then), each followed by `steps(i)` one-token steps. Returns the sequence's
    length and, for every call, (the logits it gave for the positions kept, those the whole sequence run at once
    gives there)."""
    rng = np.random.default_rng(seed)
    fed = rng.integers(3, min(vocab, 400), 12).tolist()
    session.reset()
    session.forward(np.asarray([fed], np.int64))
    calls = []  # (first position, logits (T, V)) of each call, for the positions kept
    for i in range(rounds):
        size = sizes[i % len(sizes)]
        ids = rng.integers(3, min(vocab, 400), size)
        at = session.length
        logits = session.forward(ids[None], all_positions=True)[0]  # (size, V)
        kept = keep(i, size)
        session.truncate(at + kept)
        if after_truncate is not None:
            after_truncate(size - kept)
        fed += ids[:kept].tolist()
        calls.append((at, logits[:kept]))
        for _ in range(steps(i)):
            token = int(rng.integers(3, min(vocab, 400)))
            one = session.step(token) if hasattr(session, "step") else session.forward(np.array([[token]]))[0]
            calls.append((session.length - 1, np.array(one)[None]))  # a copy: the next step may rewrite a view
            fed.append(token)
    assert session.length == len(fed)
    session.reset()
    whole = session.forward(np.asarray([fed], np.int64), all_positions=True)[0]  # (T, V)
    return len(fed), [(logits, whole[at : at + logits.shape[0]]) for at, logits in calls]


@lru_cache(maxsize=4)
def reference(folder: Path) -> Reference:
    """The (cached) reference for a model folder."""
    return Reference(folder)


def greedy_check(ours: list[int], ref: list[int], margins: list[float], tolerance: float) -> str | None:
    """None when the token lists agree, or diverge only where the reference itself was a near-tie
    (top-2 margin below `tolerance`); otherwise a failure message."""
    for i, (a, b) in enumerate(zip(ours, ref)):
        if a != b:
            if margins[i] < tolerance:  # a near-tie: both choices are right within the tolerance
                warnings.warn(
                    f"greedy tokens diverge at step {i} on a near-tie (top-2 margin {margins[i]:.2e})", stacklevel=2
                )
                return None
            return f"token {i}: backend {a} vs reference {b} (reference top-2 margin {margins[i]:.3g})"
    return None if len(ours) == len(ref) else f"lengths differ: {len(ours)} vs {len(ref)}"


class BackendConformance:
    """Subclass with `backend = "<name>"`; every test runs on each variant of the families it supports."""

    backend: ClassVar[str] = ""
    precision: ClassVar[str | None] = None  # None: the backend's default
    decoder_variants: ClassVar[tuple[str, ...]] = DECODER_VARIANTS
    encoder_variants: ClassVar[tuple[str, ...]] = ENCODER_VARIANTS
    logits_atol: ClassVar[float] = 1e-4
    cache_atol: ClassVar[float] = 1e-5
    cache_rtol: ClassVar[float] = 1e-5  # float32 round-off grows with the scale of the logits (see assert_close)
    embed_atol: ClassVar[float] = 1e-5
    load_options: ClassVar[dict[str, Any]] = {}
    #: the families the rows tests run on (with Capabilities(rows=True)): rotary with grouped KV heads, a sliding
    #: window, learned positions, soft-capped attention, q/k norms
    rows_variants: ClassVar[tuple[str, ...]] = ("llama", "mistral-window5", "gpt2", "gemma2", "qwen3")
    #: the families the rollback tests run on (with Capabilities(rollback=True)): the rows families, longrope (a
    #: truncation back below its switch) and LFM2 (conv states: refused)
    rollback_variants: ClassVar[tuple[str, ...]] = (*rows_variants, "phi3-longrope", "lfm2")
    #: prompts compared with and without speculation per variant (greedy)
    speculative_prompts: ClassVar[int] = 40

    # fixtures -------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def folders(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        """Built on demand, once per class."""
        root = tmp_path_factory.mktemp(f"conformance-{cls.backend}")
        cache: dict[str, Path] = {}

        class Lazy(dict):  # type: ignore[type-arg]
            def __missing__(self, variant: str) -> Path:
                cache[variant] = build_model(variant, root / variant, seed=0)
                self[variant] = cache[variant]
                return cache[variant]

        return Lazy()

    def load(self, folder: Path) -> tinylm.Model:
        return tinylm.load(folder, backend=self.backend, precision=self.precision, **self.load_options)

    @pytest.fixture
    def decoder(self, request: pytest.FixtureRequest, folders: dict[str, Path]) -> Iterator[tuple[str, tinylm.Model]]:
        variant = request.param
        with self.load(folders[variant]) as model:
            yield variant, model

    @pytest.fixture
    def encoder(self, request: pytest.FixtureRequest, folders: dict[str, Path]) -> Iterator[tuple[str, tinylm.Model]]:
        variant = request.param
        with self.load(folders[variant]) as model:
            yield variant, model

    @pytest.fixture
    def rows_decoder(
        self, request: pytest.FixtureRequest, folders: dict[str, Path]
    ) -> Iterator[tuple[str, tinylm.Model]]:
        """A decoder whose backend declares rows (skipped otherwise)."""
        if not get_manager().backends()[self.backend].capabilities.rows:
            pytest.skip(f"backend {self.backend} declares no rows (Capabilities(rows=False))")
        variant = request.param
        with self.load(folders[variant]) as model:
            if not model.batches_rows:
                pytest.skip(f"{variant}: the core decodes this model's rows one at a time (longrope)")
            yield variant, model

    @pytest.fixture
    def rollback_decoder(
        self, request: pytest.FixtureRequest, folders: dict[str, Path]
    ) -> Iterator[tuple[str, tinylm.Model]]:
        """A decoder whose backend declares rollback (skipped otherwise)."""
        if not get_manager().backends()[self.backend].capabilities.rollback:
            pytest.skip(f"backend {self.backend} declares no rollback (Capabilities(rollback=False))")
        variant = request.param
        with self.load(folders[variant]) as model:
            yield variant, model

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize the `decoder`/`encoder`/`rows_decoder`/`rollback_decoder` fixtures by this class's variants
        (pytest calls it)."""
        rows = [v for v in self.rows_variants if v in self.decoder_variants]
        rollback = [v for v in self.rollback_variants if v in self.decoder_variants]
        for name, variants in (
            ("decoder", self.decoder_variants),
            ("encoder", self.encoder_variants),
            ("rows_decoder", tuple(rows)),
            ("rollback_decoder", tuple(rollback)),
        ):
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, list(variants), indirect=True, ids=list(variants))

    def assert_close(self, ours: np.ndarray, ref: np.ndarray, what: str) -> None:
        """|ours - ref| <= cache_atol + cache_rtol * max|ref row| everywhere.

        A logit is a dot product, so its float32 round-off follows the size of its terms, not of the
        result: a logit near zero in a row whose largest is 10 carries the round-off of that 10 (a GEMM
        that blocks 12 rows differently from 1, e.g. on AMX, moves it by ~1e-6 of the row's scale). A
        wrong cache moves logits by a good fraction of that scale.
        """
        scale = np.abs(ref).max(axis=-1, keepdims=True)  # (..., 1)
        excess = np.abs(ours - ref) - (self.cache_atol + self.cache_rtol * scale)
        worst = int(np.argmax(excess))
        assert excess.flat[worst] <= 0, (
            f"{what}: differs by {abs(ours.flat[worst] - ref.flat[worst]):.3g} at a logit of {ref.flat[worst]:.3g}"
        )

    @staticmethod
    def _ids(vocab: int, n: int = SEQ, seed: int = 0) -> np.ndarray:
        # Ids below 256 are plain bytes in the test tokenizers; avoid special tokens.
        return np.random.default_rng(seed).integers(3, min(vocab, 400), size=n).astype(np.int64)

    # decoders --------------------------------------------------------------------------------

    def test_reports_what_runs(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        backend = get_manager().backends()[self.backend]
        assert model.backend == self.backend
        devices = backend.devices()
        assert all(d == d.lower() for d in devices), f"device names are lower case; got {devices}"
        assert model.device in devices
        assert model.precision == (self.precision or backend.capabilities.default_precision)

    def test_logits_match_reference(self, decoder: tuple[str, tinylm.Model], folders: dict[str, Path]) -> None:
        variant, model = decoder
        ids = self._ids(model.spec.vocab_size)
        ours = model.logits(ids)
        ref = reference(folders[variant]).logits(ids)
        assert ours.shape == ref.shape and ours.dtype == np.float32
        per_position = np.abs(ours - ref).max(axis=-1)  # (T,)
        assert per_position.max() <= self.logits_atol, (
            f"{variant}: max |logits - reference| per position {np.array2string(per_position, precision=2)} "
            f"exceeds {self.logits_atol}"
        )

    def test_greedy_matches_reference(self, decoder: tuple[str, tinylm.Model], folders: dict[str, Path]) -> None:
        variant, model = decoder
        prompt = self._ids(model.spec.vocab_size, n=8, seed=1)
        ours = list(model.generate(prompt.tolist(), max_new_tokens=SEQ, ignore_eos=True).token_ids)
        ref, margins = reference(folders[variant]).greedy(prompt, SEQ)
        failure = greedy_check(ours, ref, margins, self.logits_atol)
        assert failure is None, f"{variant}: {failure}"

    @staticmethod
    def _fed(model: tinylm.Model, ids: np.ndarray, ends: list[int]) -> np.ndarray:
        """The logits (T, V) a sequence fed in chunks ending at `ends` must give: at each chunk's positions, one
        forward over the sequence so far. That is one forward over all of `ids`, except past longrope's switch
        length, where transformers rotates every position by the long table once a sequence outgrows it: a first
        chunk takes the table of its own length; a later chunk that crosses the switch gives its positions up to
        the switch as a sequence still within it would (what decoding them one at a time gives), the rest by the
        long table."""
        switch = switch_length(model.spec.rope)
        if switch is None or len(ids) <= switch:
            return model.logits(ids)
        out = []
        for a, e in zip([0, *ends[:-1]], ends):
            if a == 0 or e <= switch or a >= switch:
                out.append(model.logits(ids[:e])[a:e])
            else:
                out += [model.logits(ids[:switch])[a:], model.logits(ids[:e])[switch:e]]
        return np.concatenate(out)

    def test_cache_prefill_then_decode_equals_one_forward(self, decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = decoder
        ids = self._ids(model.spec.vocab_size, n=20, seed=2)
        full = self._fed(model, ids, [12, *range(13, 21)])  # (T, V)
        session = model._live()
        session.reset()
        steps = [session.forward(ids[None, :12])[0]]
        for t in range(12, 20):
            steps.append(session.forward(ids[None, t : t + 1])[0])
        assert session.length == 20
        stepped = np.stack(steps)  # logits after positions 11..19
        self.assert_close(stepped, full[11:], f"{variant}: prefill+decode vs one forward")

    def test_step_equals_forward(self, decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = decoder
        session = model._live()
        declared = get_manager().backends()[model.backend].capabilities.step
        assert declared == hasattr(session, "step"), (
            f"backend {self.backend}: Capabilities(step={declared}) but its session "
            f"{'lacks' if declared else 'defines'} step(); declare what the session does"
        )
        if not declared:
            pytest.skip(f"backend {self.backend} declares no Session.step (an optional fast path)")
        ids = self._ids(model.spec.vocab_size, n=20, seed=7)
        session.reset()
        forwarded = [session.forward(ids[None, :12])[0]]
        forwarded += [session.forward(ids[None, t : t + 1])[0] for t in range(12, 20)]
        session.reset()
        stepped = [session.forward(ids[None, :12])[0].copy()]
        for t in range(12, 20):
            logits = session.step(int(ids[t]))
            assert logits.shape == (model.spec.vocab_size,) and logits.dtype == np.float32
            stepped.append(logits.copy())  # a view the next step may rewrite
        assert session.length == 20
        np.testing.assert_array_equal(np.stack(stepped), np.stack(forwarded), err_msg=f"{variant}: step vs forward")
        for outside in (model.spec.vocab_size, -1):
            with pytest.raises(GenerationError, match="outside the vocabulary"):
                session.step(outside)
        with pytest.raises(GenerationError, match="Fix"):
            session.step("7")  # type: ignore[arg-type]
        assert session.length == 20  # a refused step appends nothing
        session.reset()
        session.forward(self._ids(model.spec.vocab_size, model.context_length - 1)[None])
        session.step(5)  # exactly full
        with pytest.raises(PromptTooLong, match="Fix"):
            session.step(5)

    def test_chunked_prefill_equals_one_forward(self, decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = decoder
        ids = self._ids(model.spec.vocab_size, n=30, seed=6)
        full = self._fed(model, ids, [12, 30])
        session = model._live()
        session.reset()
        first = session.forward(ids[None, :12], all_positions=True)[0]
        second = session.forward(ids[None, 12:], all_positions=True)[0]  # T > 1 on top of a cache
        self.assert_close(np.concatenate([first, second]), full, f"{variant}: chunked prefill vs one forward")

    def test_batch_matches_single(self, decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = decoder
        caps = get_manager().backends()[self.backend].capabilities
        if not caps.batch:
            pytest.skip(f"backend {self.backend} declares batch=False")
        ids = np.stack([self._ids(model.spec.vocab_size, 16, 3), self._ids(model.spec.vocab_size, 16, 4)])
        steps = ids[:, :3] + 1  # three decode steps after the prefill, (B, 3)
        session = model._live()

        def run(rows: slice) -> np.ndarray:
            session.reset()
            out = [session.forward(ids[rows], all_positions=True)[:, -1]]
            out += [session.forward(steps[rows, t : t + 1]) for t in range(3)]
            return np.stack(out, axis=1)  # (b, 4, V)

        both = run(slice(0, 2))
        with pytest.raises(GenerationError, match=r"batch size changed from 2 to 1 .*Fix"):
            session.forward(steps[:1, :1])  # two sequences are cached: one alone cannot continue them
        for row in range(2):
            self.assert_close(both[row], run(slice(row, row + 1))[0], f"{variant}: batch row {row} vs alone")

    def test_session_limits_are_typed_errors(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        session = model._live()
        limit = model.context_length
        session.reset()
        session.forward(self._ids(model.spec.vocab_size, limit - 1)[None])
        session.forward(self._ids(model.spec.vocab_size, 1)[None])  # exactly full
        with pytest.raises(PromptTooLong, match="Fix"):
            session.forward(self._ids(model.spec.vocab_size, 1)[None])
        session.reset()
        assert session.length == 0
        with pytest.raises(PromptTooLong, match="Fix"):
            session.forward(self._ids(model.spec.vocab_size, limit + 1)[None])
        for outside in (model.spec.vocab_size, -1):
            with pytest.raises(GenerationError, match="outside the vocabulary"):
                session.forward(np.array([[outside]], dtype=np.int64))
        with pytest.raises(GenerationError, match="Fix"):
            session.forward(np.array([1, 2, 3], dtype=np.int64))

    def test_stream_equals_generate(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        options = tinylm.GenerationOptions(max_new_tokens=24, temperature=0.9, top_k=50, seed=11, ignore_eos=True)
        chunks = list(model.stream("Hello there", options=options))
        done = model.generate("Hello there", options=options)
        assert model.generate("Hello there", **dataclasses.asdict(options)).token_ids == done.token_ids
        assert "".join(c.text for c in chunks) == done.text
        assert [t for c in chunks for t in c.token_ids] == list(done.token_ids)
        assert chunks[-1].finish_reason == done.finish_reason == "length"
        assert done.usage.completion_tokens == 24

    def test_chat_uses_the_template(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        messages = [{"role": "user", "content": "Where is my order?"}]
        prompt = model.chat_prompt(messages)
        a = model.chat(messages, max_new_tokens=8, ignore_eos=True)
        b = model.generate(model.tokenizer.encode(prompt, add_special_tokens=False), max_new_tokens=8, ignore_eos=True)
        assert a.token_ids == b.token_ids and a.usage.prompt_tokens == b.usage.prompt_tokens

    def test_bad_input_is_a_typed_error(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        with pytest.raises(GenerationError):
            model.logits([model.spec.vocab_size + 5])
        with pytest.raises(GenerationError):
            model.generate([-1])
        with pytest.raises(PromptTooLong):
            model.generate([5] * (model.context_length + 1))
        with pytest.raises(CapabilityError):
            model.embed("not an encoder")
        with pytest.raises(TypeError, match="generate\\(\\) got an unexpected keyword argument 'max_tokens'"):
            model.generate([5, 6], max_tokens=3)  # a misspelt option is never ignored
        for name, value in (("seed", -1), ("top_k", 1.5), ("top_p", float("nan"))):
            with pytest.raises(tinylm.InvalidArgument, match=f"^{name} .*Fix: ") as err:
                model.generate([5, 6], **{name: value})  # refused before the backend runs, naming the argument
            assert err.value.argument == name
        done = model.generate([5, 6, 7], max_new_tokens=2)  # the session still works afterwards
        assert done.usage.completion_tokens <= 2

    def test_closed_model_says_so(self, folders: dict[str, Path]) -> None:
        model = self.load(folders[self.decoder_variants[0]])
        model.close()
        with pytest.raises(GenerationError, match="closed"):
            model.generate("x", max_new_tokens=1)

    def test_max_new_tokens_beyond_the_context_stops_with_length(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        prompt = self._ids(model.spec.vocab_size, n=model.context_length - 3, seed=5).tolist()
        done = model.generate(prompt, max_new_tokens=50, ignore_eos=True)
        assert done.finish_reason == "length" and done.usage.completion_tokens <= 4

    # rows: many sequences in one session (Capabilities(rows=True)) --------------------------------

    def _alone(self, model: tinylm.Model, prompt: np.ndarray, fed: list[int]) -> np.ndarray:
        """Logits (1 + len(fed), V) of `prompt` then each id of `fed` on the single-sequence session."""
        session = model._live()
        session.reset()
        out = [session.forward(prompt[None, :])[0].copy()]
        out += [session.forward(np.array([[t]], np.int64))[0].copy() for t in fed]
        return np.stack(out)

    def test_rows_logits_equal_each_prompt_alone(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        """Ragged prompts; rows join, leave and are listed in any order; a freed slot is reused."""
        variant, model = rows_decoder
        vocab = model.spec.vocab_size
        session = model._rows_session(3)
        try:
            assert session.max_rows == 3
            prompts = [self._ids(vocab, n, seed=20 + n) for n in (5, 17, 9, 12)]
            fed: dict[int, list[int]] = {}
            got: dict[int, list[np.ndarray]] = {}
            which: dict[int, int] = {}

            def add(indices: list[int]) -> None:
                rows, logits = session.add_rows([prompts[i] for i in indices])
                assert logits.shape == (len(indices), vocab) and logits.dtype == np.float32
                assert len(set(rows)) == len(rows) and not set(rows) & set(which)
                for row, i, out in zip(rows, indices, logits):
                    which[row], fed[row], got[row] = i, [], [out.copy()]
                    assert session.row_length(row) == len(prompts[i])

            def step(rows: list[int], seed: int) -> None:
                tokens = self._ids(vocab, len(rows), seed=seed)
                logits = session.step_rows(rows, tokens)
                assert logits.shape == (len(rows), vocab) and logits.dtype == np.float32
                for row, token, out in zip(rows, tokens, logits):
                    fed[row].append(int(token))
                    got[row].append(out.copy())

            def check(row: int) -> None:
                i = which[row]
                alone = self._alone(model, prompts[i], fed[row])
                self.assert_close(np.stack(got[row]), alone, f"{variant}: row of prompt {i} vs alone")

            add([0, 1])
            first, second = sorted(which)
            step([first, second], 1)
            step([second, first], 2)  # any order
            add([2])  # joins mid-stream
            third = next(r for r in which if r not in (first, second))
            step([third, first, second], 3)
            step([second], 4)  # rows not listed are untouched
            check(first)
            session.drop_row(first)  # leaves: its slot is free again
            del which[first]
            add([3])
            fourth = next(r for r, i in which.items() if i == 3)
            for n in range(5, 9):
                step([second, fourth, third], n)
            for row in (second, third, fourth):
                check(row)
                assert session.row_length(row) == len(prompts[which[row]]) + len(fed[row])
        finally:
            session.close()  # type: ignore[attr-defined]

    def test_rows_limits_are_typed_errors(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        _, model = rows_decoder
        vocab = model.spec.vocab_size
        session = model._rows_session(2)
        try:
            rows, _ = session.add_rows([self._ids(vocab, 4), self._ids(vocab, 6, seed=1)])
            with pytest.raises(CapabilityError, match="Fix"):
                session.add_rows([self._ids(vocab, 3)])  # a third row in a session opened for two
            session.drop_row(rows[0])
            with pytest.raises(GenerationError, match="Fix"):
                session.step_rows([rows[0]], np.array([5], np.int64))  # a dropped row
            with pytest.raises(GenerationError, match="outside the vocabulary"):
                session.step_rows([rows[1]], np.array([vocab], np.int64))
            with pytest.raises(PromptTooLong, match="Fix"):
                session.add_rows([self._ids(vocab, model.context_length + 1)])
            assert session.row_length(rows[1]) == 6  # refused calls changed nothing
        finally:
            session.close()  # type: ignore[attr-defined]

    def _tokens_alone_or_near_tie(
        self,
        model: tinylm.Model,
        prompt: list[int],
        ours: tuple[int, ...],
        alone: tuple[int, ...],
        what: str,
        names: tuple[str, str] = ("batched", "alone"),
    ) -> None:
        """Equal greedy tokens, or a difference at a near-tie of the single-sequence logits (warned, as the
        reference comparison does)."""
        if ours == alone:
            return
        at = next((i for i, (a, b) in enumerate(zip(ours, alone)) if a != b), min(len(ours), len(alone)))
        logits = self._alone(model, np.asarray(prompt, np.int64), list(alone[:at]))[-1]
        top2 = np.sort(logits)[-2:]
        margin = float(top2[1] - top2[0])
        assert margin <= self.logits_atol, (
            f"{what}: token {at}: {names[0]} {ours[at : at + 1]} vs {names[1]} {alone[at : at + 1]} "
            f"(top-2 margin {margin:.3g})"
        )
        warnings.warn(f"{what}: near-tie at token {at} (margin {margin:.3g}); the rest is not compared", stacklevel=2)

    def test_rows_greedy_tokens_equal_generate_alone(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        """generate_batch over ragged prompts with a small batch: rows leave at different lengths (different
        max_new_tokens via submit) and queued ones join the running batch."""
        variant, model = rows_decoder
        vocab = model.spec.vocab_size
        prompts = [self._ids(vocab, n, seed=40 + n).tolist() for n in (3, 21, 8, 14, 5)]
        alone = [model.generate(p, max_new_tokens=12, ignore_eos=True) for p in prompts]
        batched = model.generate_batch(prompts, max_new_tokens=12, ignore_eos=True, batch_size=2)
        for i, (a, b) in enumerate(zip(alone, batched)):
            self._tokens_alone_or_near_tie(model, prompts[i], b.token_ids, a.token_ids, f"{variant}: prompt {i}")
            assert b.usage.prompt_tokens == len(prompts[i])
        lengths = [3, 11, 6, 9, 1]  # each row leaves after its own number of tokens
        streams = [
            model.submit(p, max_new_tokens=n, ignore_eos=True, stream_text=False) for p, n in zip(prompts, lengths)
        ]
        for i, stream in enumerate(streams):
            ids = tuple(t for chunk in stream for t in chunk.token_ids)
            self._tokens_alone_or_near_tie(
                model, prompts[i], ids, alone[i].token_ids[: lengths[i]], f"{variant}: submitted prompt {i}"
            )

    def test_rows_full_context_does_not_disturb_the_others(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = rows_decoder
        vocab = model.spec.vocab_size
        full = self._ids(vocab, model.context_length - 3, seed=5).tolist()  # reaches the context after a few tokens
        others = [self._ids(vocab, n, seed=60 + n).tolist() for n in (4, 9)]
        prompts = [others[0], full, others[1]]
        alone = [model.generate(p, max_new_tokens=16, ignore_eos=True) for p in prompts]
        batched = model.generate_batch(prompts, max_new_tokens=16, ignore_eos=True, batch_size=3)
        assert batched[1].finish_reason == "length" and batched[1].usage.completion_tokens <= 4
        assert batched[1].usage.completion_tokens == alone[1].usage.completion_tokens
        for i in (0, 2):
            assert batched[i].usage.completion_tokens == 16
        for i, (a, b) in enumerate(zip(alone, batched)):
            self._tokens_alone_or_near_tie(model, prompts[i], b.token_ids, a.token_ids, f"{variant}: prompt {i}")

    def test_rows_seeded_sampling_is_reproducible(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = rows_decoder
        options = tinylm.GenerationOptions(max_new_tokens=10, temperature=0.8, top_p=0.95, seed=7, ignore_eos=True)
        prompts = ["Hello there", "Where is my parcel?", "x", "A refund, please."]
        first = model.generate_batch(prompts, options=options, batch_size=3)
        again = model.generate_batch(prompts, options=options, batch_size=2)
        assert [c.token_ids for c in first] == [c.token_ids for c in again], f"{variant}: seeded rows differ"
        for prompt, done in zip(prompts, first):  # every row draws as generate(seed=...) alone does
            assert done.token_ids == model.generate(prompt, options=options).token_ids, f"{variant}: {prompt!r}"

    def failing_prefill(self, session: Any, after: int) -> contextlib.AbstractContextManager[None] | None:
        """Backend hook: a context manager under which `session.add_rows` (a rows session of this backend) runs the
        prefills of its first `after` prompts and then fails with RuntimeError, e.g. `fail_after(<what runs one
        prompt's prefill>, <its method name>, after)`; None (the default) skips the test that needs it."""
        return None

    def test_rows_a_failed_add_rows_leaves_no_row(self, rows_decoder: tuple[str, tinylm.Model]) -> None:
        """`add_rows` is all or nothing: when a prefill fails in the middle of a call, no row of that call stays
        live (their slots are free again: the scheduler never learnt their ids) and nothing of the failed prompts
        is reused (a backend that copies held prompt prefixes must not copy keys that were never written)."""
        variant, model = rows_decoder
        vocab = model.spec.vocab_size
        session = model._rows_session(3)
        try:
            broken = self.failing_prefill(session, after=1)
            if broken is None:
                pytest.skip(f"{self.backend}: its conformance class gives no failing_prefill (no way to fail one)")
            head = self._ids(vocab, 6, seed=80)
            prompts = [np.concatenate([head, self._ids(vocab, n, seed=81 + n)]) for n in (3, 4, 5)]
            (live,), _ = session.add_rows([prompts[0]])
            with broken, pytest.raises(RuntimeError, match="on purpose"):
                session.add_rows([prompts[1], prompts[2]])  # the first prompt's prefill runs, the second's fails
            assert session.row_length(live) == len(prompts[0])
            rows, logits = session.add_rows([prompts[2], prompts[1]])  # both slots free again
            for i, out in zip((2, 1), logits):
                alone = self._alone(model, prompts[i], [])
                self.assert_close(out[None], alone, f"{variant}: prompt {i} after a failed add_rows")
            fed = self._ids(vocab, 3, seed=90)
            stepped = session.step_rows([live, *rows], fed)
            self.assert_close(stepped[:1], self._alone(model, prompts[0], [int(fed[0])])[1:], f"{variant}: live row")
        finally:
            session.close()  # type: ignore[attr-defined]

    # rollback and speculative decoding (Capabilities(rollback=True)) -------------------------------

    def test_rollback_is_declared_as_the_session_does(self, decoder: tuple[str, tinylm.Model]) -> None:
        _, model = decoder
        declared = get_manager().backends()[model.backend].capabilities.rollback
        assert declared == hasattr(model._live(), "truncate"), (
            f"backend {self.backend}: Capabilities(rollback={declared}) but its session "
            f"{'lacks' if declared else 'defines'} truncate(); declare what the session does"
        )
        if not declared:
            with pytest.raises(CapabilityError, match=r"rollback.*Fix"):
                model.generate([5, 6, 7], max_new_tokens=4, speculative="lookup")

    def test_truncate_then_forward_gives_the_shorter_sequence(self, rollback_decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = rollback_decoder
        session = model._live()
        vocab = model.spec.vocab_size
        ids = self._ids(vocab, n=20, seed=8)
        other = self._ids(vocab, n=6, seed=9)
        if "conv" in model.spec.state_kinds:
            session.reset()
            session.forward(ids[None, :12])
            with pytest.raises(CapabilityError, match=r"conv.*Fix"):
                session.truncate(10)  # type: ignore[attr-defined]
            assert session.length == 12
            with pytest.raises(CapabilityError, match=r"conv.*Fix"):
                model.generate(ids.tolist(), max_new_tokens=4, speculative="lookup")
            return
        session.reset()
        session.forward(ids[None, :12])
        session.forward(ids[None, 12:20], all_positions=True)  # as a verification feeds them
        session.truncate(14)  # type: ignore[attr-defined]
        assert session.length == 14
        after = session.forward(other[None], all_positions=True)[0]  # (6, V)
        shorter = np.concatenate([ids[:14], other])
        full = self._fed(model, shorter, [14, 20])
        self.assert_close(after, full[14:], f"{variant}: forward after truncate(14) vs the shorter sequence")
        session.truncate(15)  # type: ignore[attr-defined]
        # the fast path after a rollback (a view the next call may rewrite: copied)
        stepped = session.step(int(ids[3])).copy() if hasattr(session, "step") else None
        if stepped is not None:
            again = self._fed(model, np.append(shorter[:15], ids[3]), [16])
            self.assert_close(stepped[None], again[15:], f"{variant}: step after truncate(15)")
        for bad in (-1, session.length + 1, 2.0):
            with pytest.raises(GenerationError, match="Fix"):
                session.truncate(bad)  # type: ignore[attr-defined]
        session.truncate(0)  # type: ignore[attr-defined]
        assert session.length == 0
        fresh = session.forward(ids[None, :5], all_positions=True)[0]
        self.assert_close(fresh, model.logits(ids[:5]), f"{variant}: forward after truncate(0)")

    def test_passes_truncations_and_steps_give_the_whole_sequence(
        self, rollback_decoder: tuple[str, tinylm.Model]
    ) -> None:
        """Speculative decoding's pattern, most of each pass rolled back: every call's logits are those of the
        sequence kept, run at once (a dropped key that a later call still attends shows here)."""
        variant, model = rollback_decoder
        if "conv" in model.spec.state_kinds:
            pytest.skip(f"{variant}: conv states cannot roll back (refusal tested above)")
        if switch_length(model.spec.rope) is not None:
            pytest.skip(
                f"{variant}: longrope rotates every position by its long table once a sequence outgrows "
                f"{switch_length(model.spec.rope)} tokens, so a sequence fed in parts past that is not one forward of "
                "the whole (the truncate test above compares it part by part)"
            )
        _, calls = replay_speculation(
            model._live(), model.spec.vocab_size, rounds=20, sizes=(3, 6, 4, 7), keep=lambda i, size: 1 + (i % 7 == 0)
        )
        for n, (ours, whole) in enumerate(calls):
            self.assert_close(ours, whole, f"{variant}: call {n} of the replay vs the whole sequence")

    def _speculative_prompts(self, model: tinylm.Model, n: int) -> list[list[int]]:
        vocab = model.spec.vocab_size
        # a short random prompt, or one that repeats a few ids (what prompt lookup finds)
        return [
            self._ids(vocab, n=6, seed=100 + i).tolist() * (1 + i % 3) + self._ids(vocab, n=2, seed=200 + i).tolist()
            for i in range(n)
        ]

    def _same_as_plain(self, model: tinylm.Model, prompt: list[int], plain: Any, spec: Any, what: str) -> None:
        names = ("speculative", "plain")
        self._tokens_alone_or_near_tie(model, prompt, spec.token_ids, plain.token_ids, what, names)
        if spec.token_ids == plain.token_ids:
            assert spec.text == plain.text and spec.finish_reason == plain.finish_reason, what
            assert spec.usage.completion_tokens == plain.usage.completion_tokens, what

    def test_speculative_greedy_equals_plain(self, rollback_decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = rollback_decoder
        if "conv" in model.spec.state_kinds:
            pytest.skip(f"{variant}: conv states cannot roll back (refusal tested above)")
        proposed = accepted = 0
        # every pass free: the lookup's pace then proposes by the tokens alone, not by this machine's timings
        model._lookup_pace = Pace(clock=lambda: 0.0)
        prompts = self._speculative_prompts(model, self.speculative_prompts)
        # the first prompt again at the end: the model's lookup memory then holds its output, so proposals are kept
        for i, prompt in enumerate([*prompts, prompts[0]]):
            plain = model.generate(prompt, max_new_tokens=24, ignore_eos=True)
            spec = model.generate(prompt, max_new_tokens=24, ignore_eos=True, speculative="lookup")
            self._same_as_plain(model, prompt, plain, spec, f"{variant}: prompt {i}")
            assert plain.usage.speculative_proposed == 0
            proposed += spec.usage.speculative_proposed
            accepted += spec.usage.speculative_accepted
        # some proposals are kept, some rolled back (random prompts' lookups mostly are)
        assert 0 < accepted < proposed, f"{variant}: {accepted} of {proposed} proposed tokens accepted"

    def test_wrong_proposals_still_give_the_plain_tokens(self, rollback_decoder: tuple[str, tinylm.Model]) -> None:
        """An oracle that knows plain decoding's tokens but spoils one of each proposal at a varying place: every
        rejection position is exercised (and a truncate that dropped nothing would show in the tokens)."""
        variant, model = rollback_decoder
        if "conv" in model.spec.state_kinds:
            pytest.skip(f"{variant}: conv states cannot roll back (refusal tested above)")
        vocab = model.spec.vocab_size
        for i, prompt in enumerate(self._speculative_prompts(model, 6)):
            plain = model.generate(prompt, max_new_tokens=30, ignore_eos=True)
            oracle = Spoiler(prompt, plain.token_ids, vocab, seed=i)
            spec = model.generate(prompt, max_new_tokens=30, ignore_eos=True, speculative=oracle)
            self._same_as_plain(model, prompt, plain, spec, f"{variant}: spoiled proposals, prompt {i}")
            assert 0 < spec.usage.speculative_accepted < spec.usage.speculative_proposed
            junk = Spoiler(prompt, (), vocab, seed=i)  # nothing right: every proposal rejected at once
            spec = model.generate(prompt, max_new_tokens=30, ignore_eos=True, speculative=junk)
            self._same_as_plain(model, prompt, plain, spec, f"{variant}: wrong proposals, prompt {i}")

    def test_speculative_sampling_is_reproducible(self, rollback_decoder: tuple[str, tinylm.Model]) -> None:
        variant, model = rollback_decoder
        if "conv" in model.spec.state_kinds:
            pytest.skip(f"{variant}: conv states cannot roll back (refusal tested above)")
        prompt = self._speculative_prompts(model, 3)[2]
        vocab = model.spec.vocab_size
        for proposer in ("lookup", "random"):  # random: a proposal every time, mostly rejected by the draw

            def options(proposer: str = proposer) -> tinylm.GenerationOptions:
                chosen = "lookup" if proposer == "lookup" else Spoiler(prompt, (), vocab, seed=4)
                return tinylm.GenerationOptions(
                    max_new_tokens=24, temperature=0.7, top_k=20, seed=5, ignore_eos=True, speculative=chosen
                )

            first, again = model.generate(prompt, options=options()), model.generate(prompt, options=options())
            assert first.token_ids == again.token_ids, f"{variant}: seeded speculative sampling ({proposer}) differs"
            assert len(first.token_ids) == 24
            assert proposer == "lookup" or first.usage.speculative_proposed > 0
            chunks = list(model.stream(prompt, options=options()))
            assert [t for c in chunks for t in c.token_ids] == list(first.token_ids)
        options = options()
        with pytest.raises(CapabilityError, match=r"one sequence at a time.*Fix"):
            model.generate_batch([prompt, prompt], options=options)

    def test_draft_model_gives_the_plain_tokens(
        self, rollback_decoder: tuple[str, tinylm.Model], folders: dict[str, Path], tmp_path: Path
    ) -> None:
        """A draft with the same tokenizer: the same weights (its proposals mostly kept) and other random weights
        (mostly rolled back, in the draft's cache too)."""
        variant, model = rollback_decoder
        if "conv" in model.spec.state_kinds:
            pytest.skip(f"{variant}: conv states cannot roll back (refusal tested above)")
        other = build_model(variant, tmp_path / "draft", seed=1)
        for folder in (folders[variant], other):
            with self.load(folder) as draft:
                accepted = proposed = 0
                for i, prompt in enumerate(self._speculative_prompts(model, 6)):
                    plain = model.generate(prompt, max_new_tokens=20, ignore_eos=True)
                    spec = model.generate(prompt, max_new_tokens=20, ignore_eos=True, speculative=draft)
                    self._same_as_plain(model, prompt, plain, spec, f"{variant}: draft {folder.name}, prompt {i}")
                    accepted += spec.usage.speculative_accepted
                    proposed += spec.usage.speculative_proposed
                if folder == other:  # random weights of their own: nearly every proposal rolled back
                    assert 0 <= accepted < proposed
                else:
                    assert accepted > 0
                sampled = tinylm.GenerationOptions(
                    max_new_tokens=16, temperature=0.8, seed=3, ignore_eos=True, speculative=draft
                )
                assert (
                    model.generate(prompt, options=sampled).token_ids
                    == model.generate(prompt, options=sampled).token_ids
                )
        with pytest.raises(tinylm.InvalidArgument, match=r"own draft.*Fix"):
            model.generate(prompt, max_new_tokens=4, speculative=model)

    # encoders --------------------------------------------------------------------------------

    def test_embed_matches_reference(self, encoder: tuple[str, tinylm.Model], folders: dict[str, Path]) -> None:
        variant, model = encoder
        texts = [
            "where is my parcel?",
            "a much longer sentence about refunds and returns, with punctuation!",
            "é 世界",
            "x",
            "",
            LONG_TEXT,  # 40+ tokens: past ModernBERT's local window in the test variants
        ]
        ours = model.embed(texts)
        ids, types = model.tokenizer.encode_batch(texts)
        width = max(map(len, ids))
        tok = np.zeros((len(ids), width), np.int64)
        mask = np.zeros_like(tok)
        typ = np.zeros_like(tok)
        for i, (r, t) in enumerate(zip(ids, types)):
            tok[i, : len(r)], mask[i, : len(r)], typ[i, : len(r)] = r, 1, t
        assert mask.sum(axis=1).max() >= 40, "the long text must reach past the test variants' local windows"
        pooling = model.spec.pooling.mode if model.spec.pooling else "mean"
        ref = reference(folders[variant]).pooled(tok, mask, typ, pooling)
        diff = float(np.abs(ours - ref).max())
        assert diff <= self.embed_atol, f"{variant}: embeddings differ from reference by {diff:.3g}"
        single = model.embed(texts[0])
        assert single.shape == (model.spec.hidden_size,)
        assert float(np.abs(single - ours[0]).max()) <= self.embed_atol  # padding does not leak
        assert np.allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-5)

    def test_encoder_refuses_generation(self, encoder: tuple[str, tinylm.Model]) -> None:
        _, model = encoder
        with pytest.raises(CapabilityError, match="embed"):
            model.generate("hello")
