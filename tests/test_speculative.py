"""Speculative decoding in the core (tinylm.speculative, the loop's verify step) on a scripted session whose logits
are a function of the sequence so far; the backends' truncate and the whole path on real models are tested by the
conformance suite (tinylm.testing.conformance, rollback tests)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import Decoding, byte_tokenizer
from tinylm import GenerationOptions, InvalidArgument
from tinylm.errors import GenerationError
from tinylm.generation import GenerationSettings, join_chunks, stream_tokens
from tinylm.sampling import SamplingParams
from tinylm.speculative import NgramMemory, Offer, Pace, PromptLookup, Proposal, Speculator, accept_or_resample

VOCAB = 64


def next_logits(seq: list[int]) -> np.ndarray:
    """A peak that follows cycles of 8 ids (prompt lookup finds them) and jumps to another cycle every 11th position
    (its proposals there are rejected), over a spread that depends on the position (sampling has a real
    distribution)."""
    last = seq[-1]
    rng = np.random.default_rng(len(seq) * 7919 + last)
    logits = rng.normal(0, 1, VOCAB).astype(np.float32)
    peak = (last // 8) * 8 + (last + 1) % 8  # cycles of 8 within each block of 8 ids
    if len(seq) % 11 == 0:  # every 11th position jumps to the next block: proposals there are rejected
        peak = (last + 8) % VOCAB
    logits[peak] += 6.0
    return logits


class RollbackSession:
    """A session over `next_logits` with forward(all_positions) and truncate; `broken` makes truncate a no-op."""

    capacity = 512

    def __init__(self, *, broken: bool = False) -> None:
        self.seq: list[int] = []
        self.broken = broken
        self.calls: list[int] = []

    @property
    def length(self) -> int:
        return len(self.seq)

    def reset(self) -> None:
        self.seq = []

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        self.calls.append(token_ids.shape[1])
        out = []
        for t in token_ids[0]:
            self.seq.append(int(t))
            out.append(next_logits(self.seq))
        logits = np.stack(out)[None]  # (1, T, V)
        return logits if all_positions else logits[:, -1]

    def truncate(self, length: int) -> None:
        if not self.broken:
            del self.seq[length:]


def generate(session, prompt, speculative=None, *, tokens=6, **kw):
    settings = GenerationSettings(
        speculative=None if speculative is None else (lambda: Speculator(speculative, tokens=tokens)), **kw
    )
    return join_chunks(stream_tokens(session, prompt, Decoding(byte_tokenizer()), settings, context_length=512))


PROMPTS = [[5, 9, 13, 2, 40, 9, 13], [1, 2, 3], [7] * 5, list(range(20, 40))]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_with_lookup_gives_the_plain_tokens_in_fewer_passes(prompt):
    plain = generate(RollbackSession(), prompt, max_new_tokens=60)
    session = RollbackSession()
    spec = generate(session, prompt, PromptLookup(), max_new_tokens=60)
    assert spec.token_ids == plain.token_ids and spec.text == plain.text
    assert spec.usage.completion_tokens == plain.usage.completion_tokens == 60
    assert 0 < spec.usage.speculative_accepted < spec.usage.speculative_proposed
    assert len(session.calls) < 60 and max(session.calls[1:]) > 1  # several tokens verified per pass


def test_a_truncate_that_drops_nothing_would_change_the_tokens():
    """The test above can fail: with rollback broken, the rejected tokens stay in the sequence."""
    plain = generate(RollbackSession(), PROMPTS[0], max_new_tokens=60)
    broken = generate(RollbackSession(broken=True), PROMPTS[0], PromptLookup(), max_new_tokens=60)
    assert broken.token_ids != plain.token_ids


def test_processors_penalties_and_logprobs_see_the_plain_sequence():
    seen: dict[str, list[tuple[int, ...]]] = {"plain": [], "spec": []}

    def recorder(name):
        def processor(logits, history):
            seen[name].append(tuple(int(t) for t in history))
            out = logits.copy()
            out[(int(history[-1]) * 11) % VOCAB] -= 2.0  # a processor that changes the choice
            return out

        return processor

    params = SamplingParams(repetition_penalty=1.3, frequency_penalty=0.4, logit_bias=((17, 3.0),), logprobs=2)
    kw = {"max_new_tokens": 40, "sampling": params}
    plain = generate(RollbackSession(), PROMPTS[0], processors=(recorder("plain"),), **kw)
    spec = generate(RollbackSession(), PROMPTS[0], PromptLookup(), processors=(recorder("spec"),), **kw)
    assert spec.token_ids == plain.token_ids
    assert seen["spec"] == seen["plain"]  # every processor call, in order, with the same history
    assert [(lp.token_id, lp.logprob) for lp in spec.logprobs] == [(lp.token_id, lp.logprob) for lp in plain.logprobs]


@pytest.mark.parametrize("stop", [(), ("\x0b",)])
def test_stop_ids_strings_and_length_cut_a_verified_run(stop):
    plain = generate(RollbackSession(), PROMPTS[2], max_new_tokens=37, stop=stop, stop_token_ids=(63,))
    spec = generate(RollbackSession(), PROMPTS[2], PromptLookup(), max_new_tokens=37, stop=stop, stop_token_ids=(63,))
    assert (spec.token_ids, spec.text, spec.finish_reason) == (plain.token_ids, plain.text, plain.finish_reason)
    assert spec.usage.completion_tokens == plain.usage.completion_tokens


def test_a_verification_never_runs_past_the_context():
    session = RollbackSession()
    session.capacity = 30
    prompt = PROMPTS[3]  # 20 tokens: 10 fit after it
    done = join_chunks(
        stream_tokens(
            session,
            prompt,
            Decoding(byte_tokenizer()),
            GenerationSettings(max_new_tokens=50, speculative=lambda: Speculator(PromptLookup(), tokens=8)),
            context_length=30,
        )
    )
    plain = generate(RollbackSession(), prompt, max_new_tokens=50)
    assert done.token_ids == plain.token_ids[: len(done.token_ids)] and done.finish_reason == "length"
    assert max(len(session.seq), 0) <= 30


def test_prompt_lookup_proposes_what_followed_the_latest_match():
    lookup = PromptLookup(max_ngram=3, min_ngram=1)
    history = np.array([1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 6, 2, 3], np.int64)
    # "2 3" occurs at 1 and 6 (the trigram "6 2 3" nowhere): the latest one, at 6, was followed by 7 8 6 2
    assert lookup.propose(history, 4).tokens.tolist() == [7, 8, 6, 2]
    assert lookup.propose(history, 2).tokens.tolist() == [7, 8]
    assert PromptLookup(max_ngram=3, min_ngram=3).propose(history, 4) is None
    assert lookup.propose(np.array([4, 5, 6], np.int64), 3) is None
    with pytest.raises(InvalidArgument, match="Fix"):
        PromptLookup(max_ngram=1, min_ngram=2)


def test_the_memory_proposes_what_followed_an_ngram_in_earlier_outputs():
    memory = NgramMemory(max_ngram=3, min_ngram=2)
    memory.learn(np.array([1, 2, 3, 4, 5, 6], np.int64))
    memory.learn(np.array([9, 2, 3, 7, 7], np.int64))
    memory.learn(np.array([8, 2, 3, 4, 0], np.int64))
    # "2 3" was followed by 4 twice and 7 once: 4, then "3 4" -> 5 (once) beats 0 (once, learnt later), "4 5" -> 6
    assert memory.continuation(np.array([11, 2, 3], np.int64), 4) == [4, 5, 6]
    assert memory.continuation(np.array([9, 2, 3], np.int64), 2) == [7, 7]  # the trigram "9 2 3" decides first
    assert memory.continuation(np.array([4, 4], np.int64), 3) == []  # never seen
    lookup = PromptLookup(memory=memory)
    history = np.array([50, 51, 52, 50, 51], np.int64)
    assert lookup.propose(history, 2).tokens.tolist() == [52, 50]  # a match in the history comes first
    assert lookup.propose(np.array([60, 2, 3], np.int64), 2).tokens.tolist() == [4, 5]  # else the memory


def test_the_memory_forgets_its_oldest_half_past_its_capacity():
    memory = NgramMemory(max_ngram=2, min_ngram=2, capacity=8)
    memory.learn(np.arange(10, dtype=np.int64))  # 8 bigrams with a follower: at capacity, all kept
    assert len(memory) == 8 and memory.continuation(np.array([0, 1], np.int64), 1) == [2]
    memory.learn(np.arange(100, 103, dtype=np.int64))  # 9 > 8: down to 4, the newest
    assert len(memory) == 4
    assert memory.continuation(np.array([0, 1], np.int64), 1) == []
    assert memory.continuation(np.array([100, 101], np.int64), 1) == [102]


def test_lookup_learns_each_output_and_the_next_generation_keeps_the_plain_tokens():
    """A generation with `PromptLookup(memory=...)` records its output; the next one, from a prompt whose own
    history has no match, is proposed the earlier output and keeps exactly the plain tokens."""
    memory = NgramMemory()
    first = generate(RollbackSession(), [3, 17, 33], PromptLookup(memory=memory), max_new_tokens=30)
    assert len(memory) > 0
    plain = generate(RollbackSession(), [3, 17, 33], max_new_tokens=30)
    again = generate(RollbackSession(), [3, 17, 33], PromptLookup(memory=memory), max_new_tokens=30)
    assert first.token_ids == again.token_ids == plain.token_ids
    assert again.usage.speculative_accepted > first.usage.speculative_accepted


def test_a_model_keeps_one_lookup_memory_across_calls(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import tinylm
    from tinylm.testing.models import build_model

    with tinylm.load(build_model("llama", tmp_path / "m", seed=0), backend="torch") as model:
        model._lookup_pace = Pace(clock=lambda: 0.0)  # every pass free: whether it proposes depends on tokens only
        prompt = [5, 9, 13, 2]
        plain = model.generate(prompt, max_new_tokens=24, ignore_eos=True)
        first = model.generate(prompt, max_new_tokens=24, ignore_eos=True, speculative="lookup")
        again = model.generate(prompt, max_new_tokens=24, ignore_eos=True, speculative="lookup")
    assert first.token_ids == again.token_ids == plain.token_ids
    assert again.usage.speculative_accepted > first.usage.speculative_accepted


@pytest.mark.parametrize("draft", [False, True])
def test_rejection_sampling_follows_p(draft):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8))
    q = rng.dirichlet(np.ones(8)) if draft else None
    draws = np.zeros(8)
    for _ in range(40000):
        x = int(rng.choice(8, p=q)) if draft else 3  # what the proposer offers
        draws[accept_or_resample(p, Offer(x, q), rng)] += 1
    assert np.abs(draws / draws.sum() - p).max() < 0.01


def test_seeded_speculative_sampling_is_reproducible_and_follows_the_model():
    """Reproducible per seed; and over seeds, the first token (decided against a fixed proposal) has the model's
    distribution."""
    params = lambda seed: SamplingParams(temperature=1.0, seed=seed)  # noqa: E731
    a = generate(RollbackSession(), PROMPTS[0], PromptLookup(), max_new_tokens=30, sampling=params(4))
    b = generate(RollbackSession(), PROMPTS[0], PromptLookup(), max_new_tokens=30, sampling=params(4))
    assert a.token_ids == b.token_ids and a.usage.speculative_proposed > 0

    class Always:  # proposes the same two tokens every time: each position's outcome is a rejection-sampling draw
        def propose(self, history, k):
            return [9, 13][:k]

    p1 = np.exp(next_logits(PROMPTS[0]).astype(np.float64))
    p1 /= p1.sum()
    firsts = np.zeros(VOCAB)
    for seed in range(3000):
        done = generate(RollbackSession(), PROMPTS[0], Always(), max_new_tokens=3, sampling=params(seed))
        firsts[done.token_ids[0]] += 1
    assert np.abs(firsts / firsts.sum() - p1).max() < 0.03


def test_a_proposal_is_cut_to_the_count_asked_and_empty_means_none():
    class Many:
        def propose(self, history, k):
            return list(range(10))

    speculator = Speculator(Many(), tokens=3)
    assert speculator.propose(np.array([1, 2]), limit=5).tokens.tolist() == [0, 1, 2]
    assert speculator.propose(np.array([1, 2]), limit=2).tokens.tolist() == [0, 1]
    assert speculator.propose(np.array([1, 2]), limit=0) is None
    speculator.record(3, 1)
    assert speculator.k == 2  # fewer after a rejection, more after a full acceptance
    speculator.record(2, 2)
    assert speculator.k == 3
    assert Speculator(type("Empty", (), {"propose": lambda self, h, k: []})()).propose(np.array([1]), 4) is None
    assert isinstance(Proposal(np.array([1])).offer(0), Offer)


def test_options_check_speculative_and_its_count():
    assert GenerationOptions(speculative="Lookup").speculative == "lookup"
    assert GenerationOptions(speculative="lookup", num_speculative_tokens=4).num_speculative_tokens == 4
    with pytest.raises(InvalidArgument, match=r"^speculative .*Fix"):
        GenerationOptions(speculative="ngram")
    with pytest.raises(InvalidArgument, match=r"^speculative .*Fix"):
        GenerationOptions(speculative=3)
    with pytest.raises(InvalidArgument, match=r"needs speculative=.*Fix"):
        GenerationOptions(num_speculative_tokens=4)
    for bad in (0, 33, 2.5):
        with pytest.raises(InvalidArgument, match="num_speculative_tokens"):
            GenerationOptions(speculative="lookup", num_speculative_tokens=bad)


def test_truncate_checks_its_length():
    from tinylm import inputs

    class Spec:
        state_kinds = ("kv",)
        family = "llama"

    assert inputs.truncation(3, cached=5, spec=Spec()) == 3
    for bad in (-1, 6, True, 1.0):
        with pytest.raises(GenerationError, match="Fix"):
            inputs.truncation(bad, cached=5, spec=Spec())


def test_pace_picks_the_count_with_the_most_tokens_per_second():
    pace = Pace(clock=lambda: 0.0)
    assert not pace.measured
    pace.stepped(1.0)
    pace.verified(1, 2.0, None)  # a pass of 1 + 1 positions costs two steps
    pace.verified(4, 2.5, None)  # one of 1 + 4 positions, two and a half
    assert pace.measured and pace.cost(4) == 2.5 and pace.cost(2) == 3.0  # from k = 1: +1 step per position
    assert pace.best(0.9, 4) == 4  # 4.1 tokens expected for 2.5 steps
    assert pace.best(0.9, 2) == 0  # 2.7 tokens for 3 steps: plain decoding is faster
    assert pace.best(0.3, 4) == 0
    pace.verified(1, 2.0, cut=5.0)  # a rejection that costs five steps to roll back makes even 0.9 not pay
    assert pace.best(0.9, 4) == 0


class TimedSession(RollbackSession):
    """A RollbackSession whose clock counts work: a pass costs 1 plus `extra` for each position past the first."""

    def __init__(self, extra: float) -> None:
        super().__init__()
        self.extra, self.work = extra, 0.0

    def forward(self, token_ids, *, all_positions=False):
        self.work += 1 + self.extra * (token_ids.shape[1] - 1)
        return super().forward(token_ids, all_positions=all_positions)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_a_paced_lookup_proposes_only_where_a_pass_pays_and_keeps_the_plain_tokens(prompt):
    """The pace times passes with the session's own count of work here (not the wall clock), so the test is
    deterministic: where a position costs four steps, lookup stops proposing after its first pass and costs about
    what plain decoding costs; where passes are nearly free, it verifies several tokens per pass."""
    plain = generate(RollbackSession(), prompt, max_new_tokens=200)
    for extra in (0.05, 4.0):
        alone = TimedSession(extra)
        generate(alone, prompt, max_new_tokens=200)
        session = TimedSession(extra)
        pace = Pace(clock=lambda session=session: session.work)
        settings = GenerationSettings(
            max_new_tokens=200, speculative=lambda pace=pace: Speculator(PromptLookup(), pace=pace)
        )
        done = join_chunks(stream_tokens(session, prompt, Decoding(byte_tokenizer()), settings, context_length=512))
        assert done.token_ids == plain.token_ids
        if extra > 1:
            assert done.usage.speculative_proposed < 20 and session.work < 1.1 * alone.work
        else:
            assert done.usage.speculative_proposed > 100 and session.work < 0.6 * alone.work
