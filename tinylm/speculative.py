"""Speculative decoding: propose tokens cheaply, verify them in one forward pass, keep what the model agrees with.

    model.generate(prompt, speculative="lookup")            # prompt lookup: n-grams of the prompt and the text so far
    model.generate(prompt, speculative=draft_model)         # a smaller loaded tinylm.Model with the same tokenizer
    model.generate(prompt, speculative=my_proposer)         # any object with propose(history, k) (a `Proposer`)

The one generation loop (`tinylm.generation.stream_tokens`) asks a `Speculator` for up to k tokens after the
last one sampled, feeds that token and the k proposed in one `Session.forward(..., all_positions=True)`, and
decides position by position with the same `RowState.advance` plain decoding uses (processors, penalties,
constraints, stop ids and strings, length), so every processor sees exactly the tokens plain decoding gives it.
At the first position where the decided token is not the proposed one it stops, and the session drops the
tokens past it (`Session.truncate`, declared by `Capabilities(rollback=True)`).

Greedy: the decided token is the argmax, as without speculation; a proposal only saves forward passes. The
verifying forward runs T = k + 1 positions at once, whose float32 rounding may differ from one position at a
time by the backend's parity tolerance, so at a near-tie of the top two logits the tokens may differ, exactly
where the conformance suite allows two backends to differ.
Sampled: standard rejection sampling (`accept_or_resample`): a token proposed from the distribution q is
accepted with probability min(1, p(x) / q(x)), else a token is drawn from max(p - q, 0) renormalised; for a
deterministic proposer q is one-hot, so x is accepted with probability p(x), else drawn from p without x. The
tokens then follow p exactly, reproducibly per seed (though not the same draws as the same seed without
speculation: the random stream is consumed differently).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .errors import CapabilityError, InvalidArgument
from .inputs import rollback_possible

if TYPE_CHECKING:
    from .arch.spec import ModelSpec
    from .backend import Capabilities
    from .sampling import SamplingParams

__all__ = [
    "Offer",
    "Proposal",
    "Proposer",
    "PromptLookup",
    "NgramMemory",
    "DraftModel",
    "Pace",
    "Speculator",
    "accept_or_resample",
    "check_rollback",
    "DEFAULT_TOKENS",
]

#: Tokens proposed per verification when `num_speculative_tokens` is not given (the most; see `Speculator`); chosen
#: by `python -m benchmarks.speculative --tune` (docs/speculative.md): more proposed no more kept tokens.
DEFAULT_TOKENS = 4


class Offer(NamedTuple):
    """The token proposed for one position and the distribution q (V,) it was drawn from (None: deterministic)."""

    token: int
    q: np.ndarray | None = None


@dataclass(frozen=True)
class Proposal:
    """Tokens proposed after the history, (k,) int64, and for a sampling draft model the distribution each was
    drawn from, (k, V) float64 (None: a deterministic proposer)."""

    tokens: np.ndarray
    probs: np.ndarray | None = None

    def offer(self, i: int) -> Offer:
        return Offer(int(self.tokens[i]), None if self.probs is None else self.probs[i])


@runtime_checkable
class Proposer(Protocol):
    """Proposes up to `k` tokens to follow `history` (the prompt and the tokens generated so far, (n,) int64; its
    last token is the one sampled last, not yet fed to the model). Returns the tokens (a `Proposal`, or a sequence
    of ints, taken as deterministic), or None to propose nothing this time (the loop then decodes one token).
    A wrong proposal costs time, never correctness: the model verifies every token."""

    def propose(self, history: np.ndarray, k: int) -> Proposal | Sequence[int] | None: ...


def accept_or_resample(p: np.ndarray, offer: Offer, rng: np.random.Generator) -> int:
    """One position of rejection sampling: the offered token, accepted with probability min(1, p(x) / q(x)),
    else a token drawn from max(p - q, 0) renormalised (`p`, `q` (V,) float). The result follows p exactly."""
    x, q = offer
    vocab = p.shape[-1]
    qx = 1.0 if q is None else float(q[x])
    px = float(p[x]) if 0 <= x < vocab else 0.0
    if qx > 0 and rng.random() < min(1.0, px / qx):
        return x
    if q is None:
        residual = p.copy()
        if 0 <= x < vocab:
            residual[x] = 0.0
    else:
        residual = np.maximum(p - q, 0.0)
    total = residual.sum()
    if total <= 0:  # p is all on x (then x was accepted above unless p(x) rounds below 1): draw from p
        residual, total = p, p.sum()
    return int(rng.choice(vocab, p=residual / total))


class NgramMemory:
    """What a model wrote before, for prompt lookup: each n-gram (n = min_ngram..max_ngram) of its earlier outputs
    and the tokens that followed it, with counts. A support assistant's replies share their phrasing from one
    customer to the next ("I understand that you would like to ...", the steps of a procedure, the sign-off), which
    the prompt of a new conversation does not contain but the replies before it did.

    One per `Model` (its tokenizer's ids), fed by every generation that used `speculative="lookup"`, in memory only
    and bounded: past `capacity` n-grams the older half is forgotten. It only changes what is proposed, never what is
    generated (every proposed token is verified by the model)."""

    def __init__(self, *, max_ngram: int = 3, min_ngram: int = 2, capacity: int = 1 << 17) -> None:
        self.max_ngram, self.min_ngram, self.capacity = max_ngram, min_ngram, capacity
        self._next: dict[tuple[int, ...], dict[int, int]] = {}  # n-gram -> {following token: count}

    def __len__(self) -> int:
        return len(self._next)

    def learn(self, tokens: np.ndarray) -> None:
        """Record the n-grams of `tokens` (n,) int64 (an output, after the last prompt tokens that led to it)."""
        ids = tokens.tolist()
        table = self._next
        for n in range(self.min_ngram, self.max_ngram + 1):
            for i in range(len(ids) - n):
                after = table.setdefault(tuple(ids[i : i + n]), {})
                after[ids[i + n]] = after.get(ids[i + n], 0) + 1
        if len(table) > self.capacity:  # dicts keep insertion order: the oldest n-grams go first
            for key in list(table)[: len(table) - self.capacity // 2]:
                del table[key]

    def continuation(self, history: np.ndarray, k: int) -> list[int]:
        """Up to k tokens after `history` (n,): the most frequent follower of its longest known last n-gram, then
        of the n-gram that token ends, and so on."""
        out = history[-self.max_ngram :].tolist()
        found: list[int] = []
        while len(found) < k:
            for n in range(min(self.max_ngram, len(out)), self.min_ngram - 1, -1):
                after = self._next.get(tuple(out[-n:]))
                if after:
                    token = max(after, key=after.__getitem__)
                    break
            else:
                break
            found.append(token)
            out.append(token)
        return found


class PromptLookup:
    """Prompt lookup: find the last `n` tokens earlier in the history (the prompt and the text so far), trying
    n = max_ngram down to min_ngram, and propose the tokens that followed their most recent occurrence; where the
    history has no match, ask `memory` (the model's earlier outputs, an `NgramMemory`) when one is given. A
    finished generation is recorded in `learns` (default: `memory`); `Model` passes a memory to learn in but none
    to consult when sampling, so a seed gives the same text whatever the model generated before.

    Strong where the output quotes its input (a reply restating the customer's details, extraction, a summary,
    JSON holding the message's fields) or repeats itself, and with a memory where outputs share their phrasing
    from one request to the next; it proposes nothing for text that does neither."""

    def __init__(
        self,
        *,
        max_ngram: int = 3,
        min_ngram: int = 2,
        memory: NgramMemory | None = None,
        learns: NgramMemory | None = None,
    ) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise InvalidArgument(
                "speculative",
                f"PromptLookup needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}. Fix: "
                "e.g. PromptLookup(max_ngram=3, min_ngram=2).",
            )
        self.max_ngram, self.min_ngram, self.memory = max_ngram, min_ngram, memory
        self.learns = memory if learns is None else learns  # where a finished output is recorded
        self._owner: object = None  # the buffer of the history indexed below
        self._ids: list[int] = []
        self._last: dict[tuple[int, ...], int] = {}

    def propose(self, history: np.ndarray, k: int) -> Proposal | None:
        size = history.shape[0]
        ids, last = self._indexed(history)
        for n in range(min(self.max_ngram, size - 1), self.min_ngram - 1, -1):
            start = last.get(tuple(ids[size - n : size]))
            if start is not None:
                after = start + n
                return Proposal(history[after : after + k].copy())
        if self.memory is not None:
            found = self.memory.continuation(history, k)
            if found:
                return Proposal(np.asarray(found, np.int64))
        return None

    def _indexed(self, history: np.ndarray) -> tuple[list[int], dict[tuple[int, ...], int]]:
        """The history as a list and, for each of its n-grams with a token after it, where it last starts. Kept
        from call to call while the history grows in the same buffer (a generation's), so a step indexes only its
        new token (a few microseconds, where searching the whole history took tens)."""
        size = history.shape[0]
        owner = history.base if history.base is not None else history
        if owner is not self._owner or size < len(self._ids):
            self._owner, self._ids, self._last = owner, [], {}
        ids, last, done = self._ids, self._last, len(self._ids)
        ids.extend(history[done:size].tolist())
        for n in range(self.min_ngram, self.max_ngram + 1):
            for i in range(max(0, done - n), size - n):  # n-grams whose following token is new
                last[tuple(ids[i : i + n])] = i
        return ids, last

    def learn(self, history: np.ndarray, prompt_size: int) -> None:
        """A finished generation: its output, with the last prompt tokens before it, goes into `learns` (by
        default the memory it consults)."""
        if self.learns is not None:
            self.learns.learn(history[max(0, prompt_size - self.max_ngram) :])


class DraftModel:
    """A smaller `tinylm.Model` with the same tokenizer proposes by decoding k tokens itself: greedily for greedy
    decoding, else drawn from its distribution under the same temperature/top-k/top-p/min-p (`probs` carries it
    for the acceptance test). Its session is kept in step with the history, rolled back (`truncate`) past
    the first token the target model rejected. Its backend must declare `Capabilities(rollback=True)`."""

    def __init__(self, model: Any, params: SamplingParams) -> None:
        from .sampling import Sampler

        self.model = model
        self.session = model._live()
        self.capacity = model.context_length  # the bound the generation loop gives the target model too
        self.greedy = params.greedy
        plain = replace(
            params, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, logit_bias=(), logprobs=None
        )
        seed = None if params.seed is None else [params.seed, 0x5EC]  # its own stream, reproducible per seed
        self.sampler = Sampler(replace(plain, seed=None))
        self.sampler.rng = np.random.default_rng(seed)
        self.fed = np.zeros(0, np.int64)  # the ids its session holds: a prefix of the history plus its proposals
        self.session.reset()

    def _pick(self, logits: np.ndarray) -> tuple[int, np.ndarray | None]:
        if self.greedy:
            return int(np.argmax(logits)), None
        q = self.sampler.probabilities(logits.astype(np.float32, copy=False))
        return int(self.sampler.rng.choice(q.shape[-1], p=q)), q

    def propose(self, history: np.ndarray, k: int) -> Proposal | None:
        k = min(k, self.capacity - history.shape[0])
        if k < 1:
            return None
        same = min(self.fed.shape[0], history.shape[0] - 1)  # feed at least the last token: its logits propose
        differs = np.flatnonzero(self.fed[:same] != history[:same])
        common = int(differs[0]) if differs.size else same
        if common < self.session.length:
            self.session.truncate(common)
        logits = self.session.forward(history[None, common:])[0]  # (V,)
        tokens, probs = [], []
        for j in range(k):
            token, q = self._pick(logits)
            tokens.append(token)
            probs.append(q)
            if j < k - 1:
                logits = self.session.forward(np.array([[token]], np.int64))[0]
        self.fed = np.concatenate([history, np.asarray(tokens[:-1], np.int64)])
        return Proposal(np.asarray(tokens, np.int64), None if self.greedy else np.stack(probs))  # type: ignore[arg-type]


def _ema(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)


class Pace:
    """What verifying costs against decoding one token, measured as a model decodes (one per `Model`, shared by its
    generations with `speculative="lookup"`), and how often its proposals are kept.

    A verifying pass of k proposed tokens costs `passes[k]` seconds (measured per k: on a CPU the step from one
    position to two costs more than each position after, as matrix products leave their one-row kernels), plus
    `cut` when it is rejected somewhere (`Session.truncate`), plus `asking` for asking the proposer; with each
    proposed token kept with probability alpha, it yields (1 - alpha^(k+1)) / (1 - alpha) tokens on average.
    `best(alpha, most)` is the k with the most tokens per second, or 0 when plain decoding (`step` seconds a
    token) is faster: on a small model a pass of several positions costs well over one step, and where proposals
    are mostly wrong verifying them loses time.

    Times are exponential moving averages of `clock` readings (`time.perf_counter`); they decide only whether and
    how much to propose, never which tokens are generated. `Pace(clock=lambda: 0.0)` makes every cost nil, so
    proposing pays whenever anything is kept: the policy then depends on the tokens only (tests).
    """

    WEIGHT = 0.1  # of each new reading in a moving average
    ALPHA_WEIGHT = 0.02  # of each decided proposal in the model's long-run acceptance
    MARGIN = 1.03  # a pass must promise this many times plain decoding's rate to be worth proposing for

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.step: float | None = None  # seconds of a plain decode step
        self.passes: dict[int, float] = {}  # k -> seconds of a pass verifying k proposed tokens
        self.cut: float | None = None  # seconds of dropping rejected tokens from the session
        self.asking: float | None = None  # seconds of asking the proposer
        self.alpha = 0.5  # the share of proposed tokens kept, over every generation: a new one's first guess

    @property
    def measured(self) -> bool:
        return self.step is not None and bool(self.passes)

    def stepped(self, seconds: float) -> None:
        self.step = _ema(self.step, seconds, self.WEIGHT)

    def asked(self, seconds: float) -> None:
        self.asking = _ema(self.asking, seconds, self.WEIGHT)

    def decided(self, hit: bool) -> None:
        """A proposed token was decided: kept (`hit`) or not."""
        self.alpha += self.ALPHA_WEIGHT * (hit - self.alpha)

    def verified(self, proposed: int, seconds: float, cut: float | None) -> None:
        """A pass verifying `proposed` tokens took `seconds`, then `cut` seconds of truncation (None: none)."""
        self.passes[proposed] = _ema(self.passes.get(proposed), seconds, self.WEIGHT)
        if cut is not None:
            self.cut = _ema(self.cut, cut, self.WEIGHT)

    def cost(self, k: int) -> float:
        """Seconds of a pass verifying k tokens: measured, else from the nearest measured count (below if any), as
        if each position cost what the positions beyond one step cost there (an overestimate above it, since the
        first extra position costs most; a count below is tried and then measured). Needs `measured`."""
        assert self.step is not None and self.passes
        if k in self.passes:
            return self.passes[k]
        near = max((j for j in self.passes if j < k), default=min(self.passes))
        return self.passes[near] + (k - near) * max(0.0, self.passes[near] - self.step) / near

    def best(self, alpha: float, most: int) -> int:
        """The count to propose (1..most) with the most tokens per second at acceptance `alpha`, or 0 where
        plain decoding is expected to be faster (by less than `MARGIN`). Needs `measured`."""
        assert self.step is not None
        step = max(self.step, 1e-9)
        c, p = (self.cut or 0.0) / step, (self.asking or 0.0) / step
        chosen, best = 0, self.MARGIN
        kept = 1.0  # alpha^k
        tokens = 1.0  # expected tokens of a pass of k: 1 + alpha + ... + alpha^k
        for k in range(1, most + 1):
            kept *= alpha
            tokens += kept
            spent = self.cost(k) / step + (1.0 - kept) * c + p  # in plain steps' time
            rate = tokens / max(spent, 1e-9)
            if rate > best:
                chosen, best = k, rate
        return chosen


class Speculator:
    """One generation's speculation: its proposer, how many tokens to propose next and the counts for `Usage`.

    Without a `Pace` the count adapts as Hugging Face's assisted generation does: +2 after a round whose every
    proposed token was accepted, -1 otherwise, within [1, `tokens`]. A round with nothing accepted also pauses
    proposing for 1, 2, 4 ... (at most `MAX_PAUSE`) decode steps while such rounds follow each other, so text the
    proposer cannot predict is decoded one token per pass, as without speculation; a proposer that proposes nothing
    costs one lookup, not a pass. This policy depends only on the tokens, so a seeded sampled generation is
    reproducible.

    With a `Pace` (greedy `speculative="lookup"`: the tokens are the same whatever is proposed), the count is the
    one `Pace.best` expects to be fastest at this generation's acceptance so far (a moving average, starting from
    the model's), 0 meaning none: then the proposer is still asked at the next step, and at steps further apart
    while these checks miss (1, 2, 4 ... up to `MAX_PROBE` steps), its first token compared with the token decoded
    there, so the acceptance keeps being measured without paying for a pass, and a stretch the proposer predicts
    again is taken up within a step or two. A lookup that finds nothing to propose is likewise asked again after
    1, 2, 4 ... (at most `MAX_QUIET`) steps: on a small model a lookup is a few percent of a step.
    """

    MAX_PAUSE = 16
    MAX_PROBE = 64  # most decode steps between free checks of the proposer while proposing does not pay
    MAX_QUIET = 2  # most decode steps between lookups that found nothing to propose while proposing pays
    WEIGHT = 0.2  # of each checked position in this generation's acceptance

    def __init__(self, proposer: Proposer, *, tokens: int = DEFAULT_TOKENS, pace: Pace | None = None) -> None:
        self.proposer = proposer
        self.most = tokens
        self.k = tokens
        self.proposed = 0
        self.accepted = 0
        self.misses = 0  # rounds in a row with nothing accepted
        self.paused = 0  # decode steps left before the next proposal
        self.pace = pace
        self.alpha = pace.alpha if pace is not None else 0.5  # share of proposed tokens kept, this generation
        self._probe: tuple[int, int] | None = None  # (history length, token) proposed but not verified
        self._pending: tuple[int, float, float | None] | None = None  # the last pass's (proposed, seconds, cut)
        self._chosen: tuple[float, int, int] | None = None  # (alpha, most, Pace.best's count for them)
        self._probe_every = 1  # decode steps to the next free check (doubled after each that missed)
        self._quiet_every = 1  # decode steps to the next lookup after one that found nothing (doubled likewise)
        self.clock = pace.clock if pace is not None else time.perf_counter  # what the generation loop times with

    def _ask(self, history: np.ndarray, k: int) -> Proposal | None:
        pace = self.pace
        began = pace.clock() if pace is not None else 0.0
        found = self.proposer.propose(history, k)
        if pace is not None:
            pace.asked(pace.clock() - began)
        if found is None:
            return None
        proposal = found if isinstance(found, Proposal) else Proposal(np.asarray(list(found), np.int64))
        if proposal.tokens.shape[0] > k:
            proposal = Proposal(proposal.tokens[:k], None if proposal.probs is None else proposal.probs[:k])
        return proposal if proposal.tokens.shape[0] else None

    def _checked(self, kept: int, tested: int) -> None:
        """`tested` proposed positions were decided, the first `kept` of them as proposed."""
        for i in range(tested):
            hit = i < kept
            self.alpha += self.WEIGHT * (hit - self.alpha)
            if self.pace is not None:
                self.pace.decided(hit)

    def propose(self, history: np.ndarray, limit: int) -> Proposal | None:
        """At most min(k, limit) tokens to follow `history` (n,), or None."""
        if self._probe is not None:
            at, token = self._probe
            if history.shape[0] > at:
                self._probe = None
                hit = int(history[at] == token)
                self._checked(hit, 1)
                self._probe_every = 1 if hit else min(2 * self._probe_every, self.MAX_PROBE)
        if self.pace is not None and self.pace.measured:
            return self._paced(history, limit)
        if self.pace is not None and self.pace.step is None and (self.pace.passes or self._pending):
            return None  # a pass timed but no plain step yet: decode one to time it
        k = min(self.k, limit)
        if self.paused:
            self.paused -= 1
            return None
        if k < 1:
            return None
        return self._ask(history, k)

    def _paced(self, history: np.ndarray, limit: int) -> Proposal | None:
        assert self.pace is not None
        if self.paused:  # proposing did not pay at the last check
            self.paused -= 1
            return None
        most = min(self.most, limit)
        if self._chosen is None or self._chosen[:2] != (self.alpha, most):  # alpha moves at each decided proposal
            self._chosen = (self.alpha, most, self.pace.best(self.alpha, most))
        k = self._chosen[2]
        if k:
            proposal = self._ask(history, k)
            # nothing to propose here (the text so far matches nothing): ask again after 1, 2, 4 ... steps
            self.paused = 0 if proposal is not None else self._quiet_every - 1
            self._quiet_every = 1 if proposal is not None else min(2 * self._quiet_every, self.MAX_QUIET)
            return proposal
        self.paused = self._probe_every - 1  # not worth a pass: check what would be proposed against what is decoded
        probe = self._ask(history, 1) if limit >= 1 else None
        if probe is None:
            self._probe_every = min(2 * self._probe_every, self.MAX_PROBE)  # nothing to check: look less often
        else:
            self._probe = (history.shape[0], int(probe.tokens[0]))
        return None

    def step(self, step: Callable[[int], np.ndarray], token: int) -> np.ndarray:
        """`step(token)`, a plain decode step, timed for the pace when there is one (`stepped`)."""
        if self.pace is None:
            return step(token)
        began = self.clock()
        logits = step(token)
        self.stepped(self.clock() - began)
        return logits

    def stepped(self, seconds: float) -> None:
        """A plain decode step took `seconds`. The first step after a pass is charged to the pass: what the pass
        leaves to redo (a backend re-binding its step buffers, say) is part of its cost, not of decoding one."""
        pace = self.pace
        assert pace is not None
        if self._pending is None:
            pace.stepped(seconds)
            return
        proposed, took, cut = self._pending
        self._pending = None
        pace.verified(proposed, took + (max(0.0, seconds - pace.step) if pace.step is not None else 0.0), cut)

    def finish(self, history: np.ndarray, prompt_size: int) -> None:
        """The generation ended with `history` (n,), whose first `prompt_size` tokens were the prompt: a proposer
        that learns from what was generated (`PromptLookup` with a memory) records it."""
        learn = getattr(self.proposer, "learn", None)
        if callable(learn):
            learn(history, prompt_size)

    def record(self, proposed: int, accepted: int, *, seconds: float = 0.0, cut: float | None = None) -> None:
        """A verification's outcome: `accepted` of `proposed` tokens kept, its pass took `seconds` and dropping the
        rejected ones `cut` seconds (None: nothing dropped)."""
        self.proposed += proposed
        self.accepted += accepted
        self._checked(accepted, accepted + (accepted < proposed))
        if self.pace is not None:
            if self._pending is not None:  # a pass right after a pass: nothing of it left to a step
                self.pace.verified(*self._pending)
            self._pending = (proposed, seconds, cut)  # charged with the surplus of the step that follows it
            self._probe_every = 1  # if passes stop paying now, check again from the next step
            if self.pace.measured:  # the pace decides what comes next
                return
        self.k = min(self.most, self.k + 2) if accepted == proposed else max(1, self.k - 1)
        self.misses = 0 if accepted else self.misses + 1
        self.paused = min(2 ** (self.misses - 1), self.MAX_PAUSE) if self.misses else 0


def check_rollback(spec: ModelSpec, capabilities: Capabilities, backend: str, name: str) -> None:
    """`CapabilityError` (with its fix) unless `name`'s session can roll back its cache: the backend declares
    `Capabilities(rollback=True)` and every layer state of the model is a KV cache."""
    if not capabilities.rollback:
        raise CapabilityError(
            f"speculative decoding needs a session that can drop rejected tokens (Capabilities(rollback=True)), "
            f"and backend {backend!r} running {name} declares none. Fix: load the model with a backend that does "
            "(torch, onnx, openvino), or generate without speculative=."
        )
    rollback_possible(spec, f"speculative decoding cannot roll back {name}")
