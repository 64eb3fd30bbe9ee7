"""Several choices for one prompt (OpenAI's `n`): n generations whose seeds derive from the request's seed.

    for index, chunk in model.stream_choices(prompt, n=3, temperature=0.8, seed=7): ...
    drafts = model.generate_choices(prompt, n=3, temperature=0.8, seed=7)   # [Completion, Completion, Completion]

Choice i is generated with the seed `row_seed(seed, i)`: choice 0 keeps the request's seed (so it is what the
same request with n=1 gives), choice i > 0 gets `numpy.random.SeedSequence([seed, i]).generate_state(1,
numpy.uint64)[0]`. Without a seed every choice draws fresh entropy. Greedy decoding gives n identical choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .options import GenerationOptions

if TYPE_CHECKING:
    from .generation import Chunk
    from .model import Model

__all__ = ["MAX_CHOICES", "check_n", "row_seed", "stream_choices"]

#: The most choices one call may ask for (each is a full generation).
MAX_CHOICES = 16


def row_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice `index` for a request seeded with `seed` (see the module's docstring)."""
    if seed is None or index == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def check_n(n: object) -> int:
    """`n`, a count of choices in [1, MAX_CHOICES] (`InvalidArgument` naming n otherwise)."""
    from .arguments import positive_int
    from .errors import InvalidArgument

    count = positive_int(n, "n", example="n=3")
    if count > MAX_CHOICES:
        raise InvalidArgument("n", f"n must be at most {MAX_CHOICES}, got {count}. Fix: ask for fewer choices.")
    return count


def stream_choices(
    model: Model,
    prompt: str | Sequence[int],
    *,
    n: int,
    options: GenerationOptions,
    response_format: Any = None,
) -> Iterator[tuple[int, Chunk]]:
    """The chunks of `n` choices of `prompt` as (choice index, chunk) pairs; each choice ends with a chunk that
    has its finish_reason. Everything is checked here, before the first pair (`Model.stream` checks each).

    This is the one place that turns `n` into generations. On a model that decodes rows together
    (`Model.batches_rows`) the n choices are n rows of its batcher, submitted at once and decoded together; the
    pairs are read out choice after choice. Otherwise (or with `speculative=`) they run one after another through
    `Model.stream`.
    """
    n = check_n(n)
    # speculative decoding runs one sequence at a time: its choices run one after another
    run = model.submit if n > 1 and model.batches_rows and options.speculative is None else model.stream
    rows = [
        run(
            prompt,
            options=dataclasses.replace(options, seed=row_seed(options.seed, i)),
            response_format=response_format,
        )
        for i in range(n)
    ]
    return _one_after_another(rows)


def _one_after_another(rows: list[Iterator[Chunk]]) -> Iterator[tuple[int, Chunk]]:
    try:
        for index, row in enumerate(rows):
            for chunk in row:
                yield index, chunk
    finally:
        for row in rows:  # a consumer that stops early: release every row (the model's lock with it)
            close = getattr(row, "close", None)
            if close is not None:
                close()
