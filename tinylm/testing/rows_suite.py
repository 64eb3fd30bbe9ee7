"""The rows tests of a backend whose sessions hold several sequences (`Capabilities(rows=True)`, issue #24),
driven through the rows contract (`tinylm.testing.row_check`) against the same model decoding alone.

    class TestMyRows(RowsSuite):
        backend = "mine"

Variants cover rotary (llama; qwen3 with per-head q/k norms; phi3-partial-rotary, whose 8 rotary dims run
outside fused attention ops), learned positions (gpt2), a sliding window (mistral-window5) and longrope's switch
(phi3-longrope: the core's wrapper re-runs a row that crosses it), plus rows joining and leaving, prompts sharing
prefixes, steps that leave rows out, one row at full context, int8/int4 rows against the same precision alone,
greedy tokens against transformers and typed errors. The `model_folder` fixture comes from `tinylm.testing.fixtures`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

import tinylm
from tinylm.errors import CapabilityError, GenerationError, PromptTooLong
from tinylm.testing.conformance import greedy_check, reference
from tinylm.testing.row_check import RowsDriver, open_rows

__all__ = ["RowsSuite", "ROWS_VARIANTS", "prompt_ids"]

ROWS_VARIANTS = ("llama", "qwen3", "phi3-partial-rotary", "gpt2", "mistral-window5", "phi3-longrope")


def prompt_ids(vocab: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, vocab, n).astype(np.int64)


_prompt = prompt_ids


class RowsSuite:
    """Subclass with `backend = "<name>"` (and `quantized_atol` where int8/int4 logits may move more than fp32's
    bound, e.g. with activations quantized on the fly)."""

    backend: ClassVar[str]
    quantized_atol: ClassVar[float] = 1e-4  # the bound of int8/int4 rows against the same precision alone

    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls, model_folder):
        models: dict[tuple, tinylm.Model] = {}

        def get(variant: str, precision: str = "fp32", **options) -> tinylm.Model:
            key = (variant, precision, tuple(sorted(options.items())))
            if key not in models:
                models[key] = tinylm.load(model_folder(variant), backend=cls.backend, precision=precision, **options)
            return models[key]

        yield get
        for m in models.values():
            m.close()

    @pytest.mark.parametrize("variant", ROWS_VARIANTS)
    def test_ragged_rows_equal_each_prompt_alone(self, variant, loaded):
        model = loaded(variant)
        v = model.spec.vocab_size
        rows = open_rows(model, 4)
        assert rows.max_rows == 4
        driver = RowsDriver(rows)
        driver.add([_prompt(v, n, seed) for seed, n in enumerate((5, 17, 1, 9))])
        for _ in range(10):
            driver.step()
        driver.check(model._live())

    def test_rows_join_and_leave_between_steps(self, loaded):
        model = loaded("llama")
        v = model.spec.vocab_size
        driver = RowsDriver(open_rows(model, 3))
        a, b = driver.add([_prompt(v, 7, 1), _prompt(v, 3, 2)])
        driver.step()
        driver.step()
        driver.add([_prompt(v, 12, 3)])  # joins with the others mid-stream
        driver.step()
        driver.drop(a)  # the last slot's cache moves into a's place
        driver.step()
        (d,) = driver.add([_prompt(v, 4, 4)])
        assert d == a  # a dropped row's id is reused
        for _ in range(3):
            driver.step()
        driver.drop(d)
        driver.drop(b)
        driver.step()
        driver.check(model._live())

    @pytest.mark.parametrize("variant", ROWS_VARIANTS)
    def test_prompts_sharing_a_prefix_equal_each_alone(self, variant, loaded):
        """Prompts sharing a head (a system prompt), one extending another, one asked again after its row was
        dropped, one shorter than every held prefix, a conversation's next turn (a row's prompt, the tokens it was
        fed, more): a backend may copy the keys of a prompt prefix a slot already holds (`RowSlots.shared_prefix`)
        instead of running it again; every row still equals its prompt alone."""
        model = loaded(variant)
        v = model.spec.vocab_size
        head = _prompt(v, 9, 70)
        p = [np.concatenate([head, _prompt(v, n, 71 + n)]) for n in (4, 7, 2)]
        driver = RowsDriver(open_rows(model, 3))
        a, b = driver.add([p[0], p[1]])  # b shares a's head
        driver.step()
        driver.drop(a)  # b moves into a's slot; its own slot still holds it
        _, d = driver.add([p[2], np.concatenate([p[1], _prompt(v, 3, 80)])])  # a third sharer; one extending b
        driver.step()
        driver.step()
        driver.drop(d)
        driver.drop(b)
        (e, f) = driver.add([p[0], head[:5]])  # asked again (held by a dropped row); shorter than every held one
        driver.step()
        driver.step()
        driver.drop(f)
        again = driver.live[e]
        driver.add([np.concatenate([again.prompt, again.fed, _prompt(v, 4, 81)])])  # its next turn: prompt, reply
        driver.step()
        driver.check(model._live())

    def test_a_step_of_some_rows_leaves_the_others_untouched(self, loaded):
        model = loaded("qwen3")
        v = model.spec.vocab_size
        driver = RowsDriver(open_rows(model, 4))
        ids = driver.add([_prompt(v, n, s) for s, n in enumerate((6, 2, 11, 4))])
        driver.step()
        driver.step([ids[2], ids[0]])  # rows 1 (between them) and 3 wait: 1 runs along with a placeholder
        driver.step([ids[3]])
        driver.step([ids[1], ids[3]])
        driver.step()
        driver.check(model._live())

    def test_a_row_at_full_context_does_not_disturb_the_others(self, loaded):
        model = loaded("llama", max_length=40)
        v = model.spec.vocab_size
        assert model._live().capacity == 40
        driver = RowsDriver(open_rows(model, 3, options={"max_length": 40}))
        ids = driver.add([_prompt(v, 5, 1), _prompt(v, 36, 2), _prompt(v, 3, 3)])
        for _ in range(4):
            driver.step()
        full = ids[1]
        assert driver.session.row_length(full) == 40
        with pytest.raises(PromptTooLong, match="Fix"):
            driver.step()
        assert driver.session.row_length(ids[0]) == 9  # the refused step appended nothing
        for _ in range(6):
            driver.step([ids[0], ids[2]])  # the full row sits between them: it splits the run
        driver.check(model._live())
        driver.drop(full)
        driver.step()
        driver.check(model._live())

    @pytest.mark.parametrize("precision", ["int8", "int4"])
    def test_quantized_rows_equal_quantized_alone(self, precision, loaded):
        model = loaded("llama", precision)
        v = model.spec.vocab_size
        driver = RowsDriver(open_rows(model, 4))
        driver.add([_prompt(v, n, s) for s, n in enumerate((8, 3, 15))])
        for _ in range(6):
            driver.step()
        driver.add([_prompt(v, 2, 9)])
        for _ in range(4):
            driver.step()
        driver.check(model._live(), atol=self.quantized_atol)

    def test_rows_greedy_tokens_equal_transformers(self, loaded, model_folder):
        model = loaded("llama")
        v = model.spec.vocab_size
        prompts = [_prompt(v, n, s) for s, n in enumerate((8, 3, 13))]
        driver = RowsDriver(open_rows(model, 3))
        driver.add(prompts)
        for _ in range(12):
            driver.step()
        ref = reference(model_folder("llama"))
        for prompt, rec in zip(prompts, driver.records):
            tokens, margins = ref.greedy(prompt, 12)
            assert greedy_check([int(np.argmax(x)) for x in rec.logits[:12]], tokens, margins, 1e-4) is None

    def test_row_errors_are_typed(self, loaded):
        model = loaded("llama")
        v = model.spec.vocab_size
        rows = open_rows(model, 2)
        (a,) = rows.add_rows([_prompt(v, 3, 0)])[0]
        with pytest.raises(CapabilityError, match="Fix"):
            rows.add_rows([_prompt(v, 3, 1), _prompt(v, 3, 2)])  # 3 rows > 2
        with pytest.raises(GenerationError, match=r"not live.*Fix"):
            rows.step_rows([a + 1], np.array([5]))
        with pytest.raises(GenerationError, match=r"twice.*Fix"):
            rows.step_rows([a, a], np.array([5, 5]))
        with pytest.raises(GenerationError, match="outside the vocabulary"):
            rows.step_rows([a], np.array([v]))
        with pytest.raises(PromptTooLong, match="Fix"):
            rows.add_rows([_prompt(v, model.context_length + 1, 3)])
        assert rows.row_length(a) == 3
        rows.drop_row(a)
        with pytest.raises(GenerationError, match="not live"):
            rows.row_length(a)
