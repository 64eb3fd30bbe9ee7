"""Choosing the next token from logits (numpy): processors, bias and penalties, warpers, then greedy or a draw.

Order: extra logits processors — callables `(logits (V,), history (n,)) -> logits`, where structured
output plugs in — then `logit_bias`, the repetition penalty (as in `transformers`), the presence and
frequency penalties (as OpenAI documents them), then temperature, top-k, top-p, min-p. A temperature
of 0 means greedy (argmax after the penalties). The log-probabilities reported with each token
(`logprobs`) are those of the logits after the processors, the bias and the penalties: the model's
distribution as the penalties left it, before temperature and the truncating warpers.

Speculative decoding (`tinylm.speculative`) passes the token proposed for this position as `draw(..., proposal=)`:
greedy decoding ignores it (the caller compares the argmax with it); a draw accepts it or draws from the residual
(standard rejection sampling), so the token still follows the distribution sampled here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import GenerationError
from .logprobs import TokenLogprob, token_logprob
from .speculative import Offer, accept_or_resample

__all__ = ["SamplingParams", "LogitsProcessor", "Sampler", "Draw"]

#: `(logits (V,), history (n,)) -> logits`: the logits array is valid during the call only (it may be a view of a
#: backend's buffer): return a new array, or this one changed in place, and keep no reference to it.
LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to draw tokens. `temperature=0` is greedy; `seed` makes sampling reproducible."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    #: OpenAI's: minus presence_penalty once, minus frequency_penalty per occurrence, for each generated token
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: (token id, bias) pairs added to the logits; a bias of -100 bans the token (its logit becomes -inf)
    logit_bias: tuple[tuple[int, float], ...] = ()
    #: None: no log-probabilities; k: each token's log-probability and the k most likely alternatives
    logprobs: int | None = None

    def __post_init__(self) -> None:
        # each check names its own setting: a NaN top_p is reported as top_p (NaN fails every comparison)
        checks = [
            (
                "temperature",
                self.temperature,
                math.isfinite(self.temperature) and self.temperature >= 0,
                ">= 0 (0 is greedy)",
            ),
            ("top_k", self.top_k, self.top_k >= 0, ">= 0 (0 disables it)"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "in (0, 1]"),
            ("min_p", self.min_p, 0 <= self.min_p <= 1, "in [0, 1]"),
            (
                "repetition_penalty",
                self.repetition_penalty,
                math.isfinite(self.repetition_penalty) and self.repetition_penalty >= 0.01,
                ">= 0.01 (1 disables it)",
            ),
        ]
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            checks.append((name, value, math.isfinite(value) and -2 <= value <= 2, "in [-2, 2] (0 disables it)"))
        bias_ok = all(0 <= t and math.isfinite(b) and -100 <= b <= 100 for t, b in self.logit_bias)
        checks.append(("logit_bias", self.logit_bias, bias_ok, "(token id >= 0, bias in [-100, 100]) pairs"))
        logprobs_ok = self.logprobs is None or 0 <= self.logprobs <= 20
        checks.append(("logprobs", self.logprobs, logprobs_ok, "None or a count of alternatives in [0, 20]"))
        seed_ok = self.seed is None or (isinstance(self.seed, int | np.integer) and 0 <= self.seed < 2**64)
        checks.append(("seed", self.seed, seed_ok, "None or an integer in [0, 2**64)"))
        for name, value, ok, span in checks:
            if not ok:
                raise GenerationError(
                    f"invalid sampling setting: {name} must be {span}, got {value!r}. Fix: pass a value in that range."
                )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def penalized(self) -> bool:
        """Whether a bias or a penalty changes the logits."""
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
            or bool(self.logit_bias)
        )


class Draw(NamedTuple):
    """A chosen token and, when asked for (`SamplingParams.logprobs`), its log-probability and the top ones."""

    token: int
    logprob: TokenLogprob | None = None


def repetition_penalty(logits: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """Make tokens already seen less likely: positive logits / penalty, negative * penalty."""
    if penalty == 1.0 or history.size == 0:
        return logits
    seen = np.unique(history)
    out = logits.copy()
    values = out[seen]
    out[seen] = np.where(values > 0, values / penalty, values * penalty)
    return out


def presence_frequency_penalty(logits: np.ndarray, counts: np.ndarray, presence: float, frequency: float) -> np.ndarray:
    """OpenAI's penalties: `logits[j] - counts[j] * frequency - (counts[j] > 0) * presence`, where `counts` (V,)
    says how often each token was generated so far (the prompt does not count)."""
    if presence == 0.0 and frequency == 0.0:
        return logits
    return logits - (counts * frequency + (counts > 0) * presence).astype(logits.dtype)


def add_logit_bias(logits: np.ndarray, bias: Sequence[tuple[int, float]]) -> np.ndarray:
    """`logits` with each (token id, bias) added; a bias of -100 bans its token (-inf), as OpenAI says it should."""
    if not bias:
        return logits
    out = logits.copy()  # the input may be a backend's buffer
    for token, value in bias:
        out[token] = -np.inf if value <= -100 else out[token] + value
    return out


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k)[-k]
    return np.where(logits < kth, -np.inf, logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose probability reaches `p`."""
    if p >= 1.0:
        return logits
    order = np.argsort(-logits, kind="stable")
    cumulative = np.cumsum(_softmax(logits)[order])
    keep = int(np.searchsorted(cumulative, p)) + 1  # first index where the mass reaches p
    out = np.full_like(logits, -np.inf)
    out[order[:keep]] = logits[order[:keep]]
    return out


def min_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Drop tokens whose probability is below `p` times the top token's."""
    if p <= 0.0:
        return logits
    probs = _softmax(logits)
    return np.where(probs < p * probs.max(), -np.inf, logits)


class Sampler:
    """Draws one token at a time for one generation (owns its random generator and the counts of the tokens it
    generated). The first call's history is the prompt: the tokens after it are the generated ones."""

    def __init__(self, params: SamplingParams, processors: Sequence[LogitsProcessor] = ()) -> None:
        self.params = params
        self.processors = tuple(processors)
        self.rng = np.random.default_rng(params.seed)
        self._plain_greedy = params.greedy and not self.processors and not params.penalized and params.logprobs is None
        self._counts: np.ndarray | None = None  # (V,) times each token was generated, for the OpenAI penalties
        self._counted = -1  # history length already counted (-1: before the first call)

    def __call__(self, logits: np.ndarray, history: np.ndarray) -> int:
        """The next token id for `logits` (V,) given the ids seen so far."""
        return self.draw(logits, history).token

    def draw(self, logits: np.ndarray, history: np.ndarray, proposal: Offer | None = None) -> Draw:
        """The next token for `logits` (V,) given the ids seen so far, with its log-probability when asked for.
        `proposal`: the token speculative decoding proposed here (a draw accepts it or resamples, see above)."""
        p = self.params
        x = logits.astype(np.float32, copy=False)
        if self._plain_greedy:
            token = int(x.argmax())
            if math.isfinite(x[token]):  # one pass over the logits; NaN or all -inf take the checked path below
                return Draw(token)
        x = self.process(x, history)
        if p.greedy:
            token = int(np.argmax(x))
        else:
            token = self._sample(x, proposal)
        return Draw(token, None if p.logprobs is None else token_logprob(x, token, top=p.logprobs))

    def process(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The logits (V,) after the processors, the bias and the penalties: what is sampled from, and whose
        log-softmax the logprobs report."""
        p = self.params
        x = logits
        for processor in self.processors:
            x = processor(x, history)
        x = add_logit_bias(x, p.logit_bias)
        x = repetition_penalty(x, history, p.repetition_penalty)
        if p.presence_penalty or p.frequency_penalty:
            counts = self._generated_counts(history, x.shape[-1])
            x = presence_frequency_penalty(x, counts, p.presence_penalty, p.frequency_penalty)
        if not np.isfinite(x).any():
            raise GenerationError(
                "no token is allowed: every logit is -inf or NaN. Fix: check the model's weights and any "
                "logits processor, logit_bias or constraint that masks tokens."
            )
        return x

    def _generated_counts(self, history: np.ndarray, vocab: int) -> np.ndarray:
        if self._counts is None:
            self._counts = np.zeros(vocab, np.float32)
        if self._counted < 0:
            self._counted = len(history)  # the prompt
        new = history[self._counted :]
        np.add.at(self._counts, new[new < vocab], 1)
        self._counted = len(history)
        return self._counts

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The distribution (V,) float64 a draw samples from: processed logits `x` after temperature, top-k, top-p
        and min-p (what a draft model's proposals are drawn from too, see `tinylm.speculative`)."""
        p = self.params
        # Shift before dividing (in float64) so a tiny temperature gives -inf, never inf - inf = NaN.
        with np.errstate(over="ignore"):  # a subnormal temperature overflows to -inf on purpose
            x = (x.astype(np.float64) - np.max(x)) / p.temperature
        return _softmax(min_p(top_p(top_k(x, p.top_k), p.top_p), p.min_p))

    def _sample(self, x: np.ndarray, proposal: Offer | None = None) -> int:
        probs = self.probabilities(x)
        if proposal is not None:
            return accept_or_resample(probs, proposal, self.rng)
        return int(self.rng.choice(probs.shape[-1], p=probs))
