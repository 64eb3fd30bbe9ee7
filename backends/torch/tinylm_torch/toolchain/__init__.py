"""The small-model toolchain on the torch backend: train, finetune, distill, prune, eval.

    from tinylm_torch.toolchain import train, TrainConfig, distill, DistillConfig, prune, PruneConfig
    from tinylm_torch.toolchain.evaluate import EvalOptions, perplexity, retrieval, agreement

Every command writes a Hugging Face-layout folder with a model card that `tinylm.load` runs on every
backend. Modules, one job each:

    data.py        .txt/.jsonl -> records            examples.py   records -> ids + loss weights (chat masks)
    batches.py     deterministic, resumable batches  loop.py       AdamW loop, validation, checkpoints, signals
    checkpoint.py  safetensors + JSON checkpoints    progress.py   the progress line on stderr
    bpe.py         tokenizer training                presets.py    from-scratch sizes and configs
    lora.py        LoRA adapters and merging         surgery.py    layer/head/MLP/vocab slicing of weights
    importance.py  calibration scores                vocab.py      pruned tokenizer files
    embedding.py   pooled sentence vectors (torch)   export.py     HF folder writer; card.py: model card
    train.py finetune.py distill.py prune.py evaluate.py   the commands; cli.py: their parsers

Importing this package imports neither torch nor the commands; attributes load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "train",
    "TrainConfig",
    "finetune",
    "FinetuneConfig",
    "distill",
    "DistillConfig",
    "prune",
    "PruneConfig",
    "RunOptions",
]

_WHERE = {
    "train": "train",
    "TrainConfig": "train",
    "finetune": "finetune",
    "FinetuneConfig": "finetune",
    "distill": "distill",
    "DistillConfig": "distill",
    "prune": "prune",
    "PruneConfig": "prune",
    "RunOptions": "common",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
