"""`tinylm finetune`: assistant-only loss masks on chat data; LoRA merges exactly."""

from __future__ import annotations

import numpy as np
import torch
from tinylm_torch.toolchain.examples import Codec
from tinylm_torch.toolchain.lora import LoRALinear, add_lora, merge_lora
from tinylm_torch.weights import build_transformer, to_canonical

from tinylm.cli import main
from tinylm.source import ModelFolder

from .conftest import assert_runs_everywhere, write_chat_jsonl

CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Where is my parcel?"},
    {"role": "assistant", "content": "It ships on Monday."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You are welcome."},
]


def test_assistant_only_mask_on_chatml(model_folder):
    codec = Codec(model_folder("llama"))  # ChatML template, eos <|im_end|>
    example = codec.chat(CONVERSATION)
    rendered = codec.tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=False)
    assert codec.hf.decode(example.ids.tolist(), skip_special_tokens=False) == rendered
    masked = example.ids[example.weights > 0].tolist()
    # exactly the two replies, each with its end-of-turn token, and nothing of the prompts or role headers
    assert (
        codec.hf.decode(masked, skip_special_tokens=False) == "It ships on Monday.<|im_end|>You are welcome.<|im_end|>"
    )
    runs = np.flatnonzero(np.diff(np.concatenate([[0], example.weights, [0]])))  # starts/ends of masked runs
    assert len(runs) == 4  # two contiguous spans
    first = codec.hf.decode(example.ids[: runs[0]].tolist(), skip_special_tokens=False)
    assert first.endswith("<|im_start|>assistant\n")


def test_all_tokens_when_asked(model_folder):
    codec = Codec(model_folder("llama"))
    assert codec.chat(CONVERSATION, assistant_only=False).weights.all()


def test_lora_merge_equals_the_unmerged_forward(model_folder):
    source = ModelFolder(model_folder("llama"))
    model = build_transformer(source.spec, source.weights())
    names = add_lora(model, rank=4, alpha=8.0)
    assert len(names) == 4 * source.spec.num_layers
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.endswith((".a", ".b"))
    }
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, LoRALinear):  # a trained adapter: B no longer zero
            module.b.data = torch.randn(module.b.shape, generator=gen) * 0.1
    ids = torch.from_numpy(np.random.default_rng(0).integers(3, source.spec.vocab_size, (2, 12)))
    with torch.no_grad():
        before = model(ids)
        merge_lora(model)
        after = model(ids)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert to_canonical(model).keys() == source.weights().keys()


def test_lora_finetune_on_chat_writes_a_model_that_runs(model_folder, tmp_path):
    data = write_chat_jsonl(tmp_path / "chat.jsonl")
    out = tmp_path / "ft"
    args = ["finetune", str(model_folder("llama")), str(data), "--out", str(out), "--lora-rank", "4"]
    assert main([*args, "--steps", "3", "--batch-size", "4", "--lr", "1e-2", "--eval-every", "3"]) == 0
    card = (out / "README.md").read_text()
    assert "LoRA r=4" in card and "assistant turns only" in card
    before = ModelFolder(model_folder("llama")).weights()
    after = ModelFolder(out).weights()
    assert not np.allclose(after["layers.0.attn.q.weight"], before["layers.0.attn.q.weight"])  # merged in
    np.testing.assert_array_equal(after["embed.weight"], before["embed.weight"])  # not adapted
    assert_runs_everywhere(out)


def test_replay_mixes_earlier_data_into_the_run(tmp_path):
    """--replay draws replay_ratio old records per new record, reproducibly (with replacement past the pool)."""
    import json

    import pytest
    from tinylm_torch.toolchain.errors import ToolchainError
    from tinylm_torch.toolchain.finetune import FinetuneConfig, replayed

    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({"text": f"old {i}"}) + "\n" for i in range(10)))
    config = FinetuneConfig(replay=(old,), replay_ratio=0.5)
    drawn = replayed(config, 8, seed=0)
    assert len(drawn) == 4 and len({r.text for r in drawn}) == 4  # without replacement while the pool suffices
    assert all(r.text.startswith("old ") for r in drawn)
    assert drawn == replayed(config, 8, seed=0) and drawn != replayed(config, 8, seed=1)
    assert len(replayed(FinetuneConfig(replay=(old,), replay_ratio=3.0), 8, seed=0)) == 24  # with replacement
    assert replayed(FinetuneConfig(), 8, seed=0) == []
    with pytest.raises(ToolchainError, match="--replay-ratio"):
        replayed(FinetuneConfig(replay=(old,), replay_ratio=0.0), 8, seed=0)


def test_finetune_with_replay_records_both_sets_in_the_card(model_folder, tmp_path):
    new = write_chat_jsonl(tmp_path / "new.jsonl", n=12, seed=1)
    old = write_chat_jsonl(tmp_path / "old.jsonl", n=30, seed=2)
    out = tmp_path / "ft"
    args = ["finetune", str(model_folder("llama")), str(new), "--out", str(out), "--replay", str(old)]
    assert main([*args, "--replay-ratio", "2", "--steps", "2", "--batch-size", "4", "--eval-every", "0"]) == 0
    card = (out / "README.md").read_text()
    assert "replay" in card and "old.jsonl" in card
