"""Choosing the next token from logits (numpy): penalties, warpers, then greedy or a seeded draw.

Order, as in `transformers`: repetition penalty, temperature, top-k, top-p, min-p. A temperature
of 0 means greedy (argmax after the penalty). Extra logits processors — callables
`(logits (V,), history (n,)) -> logits` — run first; structured output plugs in there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import GenerationError

__all__ = ["SamplingParams", "LogitsProcessor", "Sampler"]

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


def repetition_penalty(logits: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """Make tokens already seen less likely: positive logits / penalty, negative * penalty."""
    if penalty == 1.0 or history.size == 0:
        return logits
    seen = np.unique(history)
    out = logits.copy()
    values = out[seen]
    out[seen] = np.where(values > 0, values / penalty, values * penalty)
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
    """Draws one token at a time for one generation (owns its random generator)."""

    def __init__(self, params: SamplingParams, processors: Sequence[LogitsProcessor] = ()) -> None:
        self.params = params
        self.processors = tuple(processors)
        self.rng = np.random.default_rng(params.seed)
        self._plain_greedy = params.greedy and not self.processors and params.repetition_penalty == 1.0

    def __call__(self, logits: np.ndarray, history: np.ndarray) -> int:
        """The next token id for `logits` (V,) given the ids seen so far."""
        p = self.params
        x = logits.astype(np.float32, copy=False)
        if self._plain_greedy:
            token = int(x.argmax())
            if math.isfinite(x[token]):  # one pass over the logits; NaN or all -inf take the checked path below
                return token
        for processor in self.processors:
            x = processor(x, history)
        x = repetition_penalty(x, history, p.repetition_penalty)
        if not np.isfinite(x).any():
            raise GenerationError(
                "no token is allowed: every logit is -inf or NaN. Fix: check the model's weights and any "
                "logits processor or constraint that masks tokens."
            )
        if p.greedy:
            return int(np.argmax(x))
        # Shift before dividing (in float64) so a tiny temperature gives -inf, never inf - inf = NaN.
        with np.errstate(over="ignore"):  # a subnormal temperature overflows to -inf on purpose
            x = (x.astype(np.float64) - np.max(x)) / p.temperature
        x = min_p(top_p(top_k(x, p.top_k), p.top_p), p.min_p)
        probs = _softmax(x)
        return int(self.rng.choice(probs.shape[-1], p=probs))
