"""`GenerationOptions`: the sampling, stop and length settings of one generation, typed and checked once.

    options = GenerationOptions(temperature=0.7, top_k=40, seed=1, stop=["\\n\\n"])
    model.generate("Hi", options=options)       # the same as model.generate("Hi", temperature=0.7, top_k=40, ...)

Every way in builds this one object at its edge: `Model`'s keywords, the CLI's flags (made from the fields below)
and the server's request fields. A wrong type or value raises `InvalidArgument` naming the argument, before
anything runs. `None` means "the model's default": `resolve()` fills it from the model's generation_config.json
(when that samples), else greedy decoding with up to 256 new tokens. Adding an option is one field here, its use
in `resolve()` or the loop, and its test.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arguments import flag, show, text
from .errors import InvalidArgument, ModelFileError

if TYPE_CHECKING:  # numpy loads with the generation loop, not with the CLI's flags
    from .sampling import SamplingParams

__all__ = ["GenerationOptions", "OPTION_NAMES", "DEFAULT_MAX_NEW_TOKENS"]

DEFAULT_MAX_NEW_TOKENS = 256
#: `seed` seeds numpy's generator with a 64-bit unsigned integer (OpenAI's `seed` is a 64-bit integer too).
_SEED_LIMIT = 2**64


def _option(help: str, *, cli: type, repeat: bool = False) -> Any:
    """A field of `GenerationOptions`: None by default; `help`, `cli` (the flag's type) and `repeat` make its
    CLI flag (`--top-k` for top_k)."""
    return field(default=None, metadata={"help": help, "cli": cli, "repeat": repeat})


def _integer(name: str, value: Any, *, minimum: int, below: int | None = None, example: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InvalidArgument(
            name, f"{name} must be an integer, got {show(value)} ({type(value).__name__}). Fix: pass e.g. {example}."
        )
    number = int(value)
    if number < minimum or (below is not None and number >= below):
        if below is None:
            span = f">= {minimum}"
        elif below & (below - 1) == 0:  # a power of two: 2**64
            span = f"in [{minimum}, 2**{below.bit_length() - 1})"
        else:
            span = f"in [{minimum}, {below - 1}]"
        raise InvalidArgument(name, f"{name} must be an integer {span}, got {number}. Fix: pass e.g. {example}.")
    return number


def _real(name: str, value: Any, *, low: float, high: float, open_low: bool = False, example: str, why: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise InvalidArgument(
            name, f"{name} must be a number, got {show(value)} ({type(value).__name__}). Fix: pass e.g. {example}."
        )
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float is out of every range here
        number = math.inf if value > 0 else -math.inf
    inside = (low < number if open_low else low <= number) and number <= high
    if not (math.isfinite(number) and inside):
        span = f"in {'(' if open_low else '['}{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise InvalidArgument(name, f"{name} must be {span} ({why}), got {show(value)}. Fix: pass e.g. {example}.")
    return number


def _bias_item(value: str) -> tuple[int, float]:
    """`--logit-bias ID=BIAS` on the command line: one (token id, bias) pair."""
    token, sep, bias = value.partition("=")
    try:
        if not sep:
            raise ValueError(value)
        return int(token), float(bias)
    except ValueError:
        raise InvalidArgument(
            "logit_bias",
            f"--logit-bias takes TOKEN_ID=BIAS, got {show(value)}. Fix: pass e.g. --logit-bias 50256=-100.",
        ) from None


def _logit_bias(value: Any) -> dict[int, float]:
    """A token id -> bias mapping (or (id, bias) pairs); biases in [-100, 100] as OpenAI documents them."""
    example = "logit_bias={50256: -100}"
    pairs = value.items() if isinstance(value, Mapping) else value
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Iterable):
        raise InvalidArgument(
            "logit_bias", f"logit_bias must map token ids to biases, got {show(value)}. Fix: pass e.g. {example}."
        )
    bias: dict[int, float] = {}
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InvalidArgument(
                "logit_bias", f"logit_bias must map token ids to biases, got {show(value)}. Fix: pass e.g. {example}."
            )
        token = _integer("logit_bias", pair[0], minimum=0, example=example)
        bias[token] = _real("logit_bias", pair[1], low=-100, high=100, example=example, why="-100 bans the token")
    return bias


def _stops(value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value
    if isinstance(items, bytes | bytearray | Mapping) or not isinstance(items, Sequence):
        raise InvalidArgument(
            "stop", f"stop must be a string or a list of strings, got {show(value)}. Fix: pass e.g. stop=['\\n\\n']."
        )
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidArgument(
                "stop", f"stop strings must be non-empty strings, got {show(item)}. Fix: pass e.g. stop=['\\n\\n']."
            )
        text(item, "stop")
    return tuple(items)


def _speculative(value: Any) -> Any:
    """'lookup', a loaded `tinylm.Model` (the draft) or an object with `propose(history, k)` (a
    `tinylm.speculative.Proposer`); the model's own checks (rollback, tokenizer) come when it generates."""
    if isinstance(value, str):
        if value.strip().lower() == "lookup":
            return "lookup"
    else:
        from .model import Model  # only a Python caller passes an object: the model is imported already

        if isinstance(value, Model) or callable(getattr(value, "propose", None)):
            return value
    raise InvalidArgument(
        "speculative",
        f"speculative must be 'lookup', a draft tinylm.Model or a proposer, got {show(value)}. "
        "Fix: pass e.g. speculative='lookup' (or omit it to decode one token at a time).",
    )


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """The settings of one generation besides the prompt (None: the model's default). Checked when built."""

    max_new_tokens: int | None = _option("most tokens to generate (default: generation_config.json, else 256)", cli=int)
    temperature: float | None = _option("0 is greedy; higher is more random", cli=float)
    top_k: int | None = _option("sample from the k most likely tokens (0: all)", cli=int)
    top_p: float | None = _option("sample from the most likely tokens whose probability reaches p (1: all)", cli=float)
    min_p: float | None = _option("drop tokens less likely than min_p times the top token (0: none)", cli=float)
    repetition_penalty: float | None = _option("make tokens already seen less likely (1: off)", cli=float)
    seed: int | None = _option("seed of the random draws (reproducible sampling)", cli=int)
    stop: Sequence[str] | None = _option("stop string (repeatable)", cli=str, repeat=True)
    ignore_eos: bool | None = _option("generate past end-of-sequence tokens (benchmarks)", cli=bool)
    presence_penalty: float | None = _option(
        "lower tokens already generated by this much, once (-2..2; 0: off)", cli=float
    )
    frequency_penalty: float | None = _option(
        "lower tokens already generated by this much per time generated (-2..2; 0: off)", cli=float
    )
    logit_bias: Mapping[int, float] | None = _option(
        "add BIAS to token ID's logit, TOKEN_ID=BIAS (repeatable; -100 bans it, 100 forces it)",
        cli=_bias_item,
        repeat=True,
    )
    logprobs: bool | None = _option("report each generated token's log-probability (Chunk.logprobs)", cli=bool)
    top_logprobs: int | None = _option("with logprobs: also the N most likely tokens at each step (0..20)", cli=int)
    speculative: str | object | None = _option(
        "speculative decoding: 'lookup' (n-grams of the prompt, the text so far and the model's earlier outputs; "
        "greedy proposes only where a pass pays, as measured while it runs), or in Python a draft tinylm.Model with "
        "the same tokenizer or a tinylm.speculative.Proposer; same tokens, fewer passes",
        cli=str,
    )
    num_speculative_tokens: int | None = _option(
        "with speculative: the most tokens proposed per verifying pass (1..32; default 4)", cli=int
    )

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens": lambda v: _integer("max_new_tokens", v, minimum=1, example="max_new_tokens=64"),
            "temperature": lambda v: _real(
                "temperature", v, low=0, high=math.inf, example="temperature=0.7", why="0 is greedy"
            ),
            "top_k": lambda v: _integer("top_k", v, minimum=0, example="top_k=40"),
            "top_p": lambda v: _real("top_p", v, low=0, high=1, open_low=True, example="top_p=0.9", why="1 keeps all"),
            "min_p": lambda v: _real("min_p", v, low=0, high=1, example="min_p=0.05", why="0 keeps all"),
            "repetition_penalty": lambda v: _real(
                "repetition_penalty", v, low=0.01, high=math.inf, example="repetition_penalty=1.1", why="1 is off"
            ),
            "seed": lambda v: _integer("seed", v, minimum=0, below=_SEED_LIMIT, example="seed=42"),
            "stop": _stops,
            "ignore_eos": lambda v: flag(v, "ignore_eos"),
            "presence_penalty": lambda v: _real(
                "presence_penalty", v, low=-2, high=2, example="presence_penalty=0.5", why="0 is off"
            ),
            "frequency_penalty": lambda v: _real(
                "frequency_penalty", v, low=-2, high=2, example="frequency_penalty=0.5", why="0 is off"
            ),
            "logit_bias": _logit_bias,
            "logprobs": lambda v: flag(v, "logprobs"),
            "top_logprobs": lambda v: _integer("top_logprobs", v, minimum=0, below=21, example="top_logprobs=5"),
            "speculative": _speculative,
            "num_speculative_tokens": lambda v: _integer(
                "num_speculative_tokens", v, minimum=1, below=33, example="num_speculative_tokens=6"
            ),
        }
        for name, check in checks.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check(value))
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidArgument(
                "top_logprobs",
                f"top_logprobs={self.top_logprobs} needs logprobs=True (as in OpenAI's API). Fix: pass logprobs=True "
                "too, or drop top_logprobs.",
            )
        if self.num_speculative_tokens is not None and self.speculative is None:
            raise InvalidArgument(
                "num_speculative_tokens",
                f"num_speculative_tokens={self.num_speculative_tokens} needs speculative= too. Fix: pass "
                "speculative='lookup' (or a draft model), or drop num_speculative_tokens.",
            )

    @classmethod
    def of(cls, options: GenerationOptions | None = None, **given: Any) -> GenerationOptions:
        """`options` (or the defaults) with the `given` settings that are not None put over it."""
        if options is not None and not isinstance(options, GenerationOptions):
            raise InvalidArgument(
                "options",
                f"options must be a GenerationOptions, got {type(options).__name__}. "
                "Fix: pass options=tinylm.GenerationOptions(...) or the settings as keywords.",
            )
        unknown = sorted(given.keys() - OPTION_NAMES)
        if unknown:
            raise TypeError(f"unexpected generation option {unknown[0]!r}; the options are {', '.join(OPTION_NAMES)}")
        changes = {k: v for k, v in given.items() if v is not None}
        if options is None:
            return cls(**changes)
        return dataclasses.replace(options, **changes) if changes else options

    def resolve(self, generation_config: Mapping[str, Any]) -> tuple[int, SamplingParams]:
        """(max_new_tokens, SamplingParams): these options over the model's generation_config.json defaults."""
        from .sampling import SamplingParams

        defaults = _config_defaults(generation_config)
        sampled = defaults.get("do_sample", False)

        def pick(name: str, greedy_default: Any) -> Any:
            value = getattr(self, name)
            if value is not None:
                return value
            return defaults.get(name, greedy_default) if sampled else greedy_default

        params = SamplingParams(
            temperature=pick("temperature", 1.0 if sampled else 0.0),
            top_k=pick("top_k", 0),
            top_p=pick("top_p", 1.0),
            min_p=pick("min_p", 0.0),
            # a repetition penalty applies to greedy decoding too
            repetition_penalty=self.repetition_penalty or defaults.get("repetition_penalty") or 1.0,
            seed=self.seed,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            logit_bias=tuple(sorted((self.logit_bias or {}).items())),
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
        )
        return self.max_new_tokens or defaults.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS, params


#: The names of the options, in the order of the fields (Model's keywords and the CLI's flags).
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(GenerationOptions))

#: Keys of generation_config.json that give defaults (the others there, e.g. eos_token_id, are read elsewhere).
_CONFIG_KEYS = ("max_new_tokens", "temperature", "top_k", "top_p", "min_p", "repetition_penalty")


def _config_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults generation_config.json gives, checked like a caller's options (null values are unset).

    Without `do_sample` only the length and the repetition penalty apply (greedy decoding ignores the rest).
    """
    sampled = config.get("do_sample") is True
    used = _CONFIG_KEYS if sampled else ("max_new_tokens", "repetition_penalty")
    given = {k: config[k] for k in used if config.get(k) is not None}
    try:
        checked = GenerationOptions(**given)
    except InvalidArgument as e:
        raise ModelFileError(
            f"the model's generation_config.json sets {e.argument}={show(given[e.argument])}, which tinylm cannot "
            f"use ({e.problem}). Fix: correct or delete {e.argument!r} in generation_config.json."
        ) from None
    defaults: dict[str, Any] = {k: getattr(checked, k) for k in given}
    defaults["do_sample"] = sampled
    return defaults
