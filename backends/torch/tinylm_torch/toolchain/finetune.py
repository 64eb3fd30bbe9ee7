"""`tinylm finetune`: continue training a model on text or chat data, fully or with LoRA.

Chat records are rendered with the model's chat template and, by default, only the assistant turns
carry loss (`examples.assistant_spans`). LoRA adapters are merged into the weights before saving, so
the output is a plain model of the same family.

Replay: training on a new task alone makes a small model forget the old ones (the bundled assistant,
LoRA-tuned on one new intent, fell from 96% to 31% on-intent replies on the others). `replay` names the
data the model was trained on before; `replay_ratio` records of it (drawn with the run's seed, with
replacement when there are fewer) are mixed in per new record.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .card import ModelCard, command_line, data_rows
from .common import RunOptions, checkpoint_dir, fingerprint_of, loop_config, open_source, setup
from .data import read_records, training_records
from .errors import ToolchainError
from .export import Draft, check_out, save_model
from .lora import TARGETS
from .train import TrainResult

__all__ = ["FinetuneConfig", "finetune", "replayed"]


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = TARGETS
    assistant_only: bool = True
    max_length: int = 512
    fields: tuple[str, ...] = ()
    max_records: int | None = None
    val_data: tuple[Path, ...] = ()
    val_fraction: float = 0.05
    replay: tuple[Path, ...] = ()  # earlier training data mixed in against forgetting
    replay_ratio: float = 1.0  # replayed records per new record
    run: RunOptions = field(default_factory=lambda: RunOptions(lr=1e-4, batch_size=8))


def finetune(model: str | Path, data: list[Path], out: Path, config: FinetuneConfig, *, command: str | None = None):
    """Fine-tune `model` on `data`; write the result to `out`. Returns a `TrainResult`."""
    from tinylm_torch.weights import build_transformer, to_canonical

    from .batches import Batcher
    from .examples import Codec
    from .lm import lm_step, mean_nll
    from .loop import run_loop
    from .lora import add_lora, merge_lora

    run = config.run
    check_out(out, overwrite=run.overwrite)
    setup(run)
    source = open_source(model)
    if source.spec.kind != "decoder":
        raise ToolchainError(
            f"{source.path} is an encoder; finetune trains decoders on next-token loss. "
            "Fix: use `tinylm distill` to train an embedding model."
        )
    ckpt = checkpoint_dir(out, run)
    records, val_records = training_records(data, config)
    new_records = len(records)
    records = records + replayed(config, new_records, seed=run.seed)
    limit = min(config.max_length, source.spec.max_positions)
    codec = Codec(source.path, max_length=limit)
    examples = [codec.record(r, assistant_only=config.assistant_only) for r in records]
    val_examples = [codec.record(r, assistant_only=config.assistant_only) for r in val_records]
    net = build_transformer(source.spec, source.weights())
    if config.lora_rank:
        add_lora(net, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
    batcher = Batcher(len(examples), run.batch_size, seed=run.seed)
    result = run_loop(
        model=net,
        step_loss=lm_step(net, examples, batcher, codec.pad_id),
        validate=lambda: mean_nll(net, val_examples, codec.pad_id, batch_size=run.batch_size),
        config=loop_config(run, label="finetune", ckpt=ckpt),
        fingerprint=fingerprint_of(config, {"model": str(source.path), "data": [str(p) for p in data]}),
        position=batcher.position,
    )
    outcome = TrainResult.from_loop(
        result, parameters=sum(p.numel() for p in net.parameters() if p.requires_grad), checkpoint=ckpt
    )
    if result.interrupted:
        return outcome
    if config.lora_rank:
        merge_lora(net)
    metrics = outcome.card_metrics()
    mode = f"LoRA r={config.lora_rank}, alpha={config.lora_alpha} (merged)" if config.lora_rank else "full"
    card = ModelCard(
        title=f"{out.name}: {source.path.name} fine-tuned",
        task="finetune",
        command=command or command_line(),
        base_model=str(source.path),
        data=data_rows("train", data, new_records)
        + data_rows("replay", config.replay, len(records) - new_records)
        + data_rows("validation", config.val_data or data, len(val_records)),
        metrics=metrics,
        training={
            "mode": mode,
            "loss": "assistant turns only" if config.assistant_only else "all tokens",
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "seed": run.seed,
        },
    )
    draft = Draft(spec=source.spec, weights=to_canonical(net), files_from=source.path, base_config=source.config)
    outcome.out = save_model(draft, out, card=card, overwrite=run.overwrite)
    if not run.keep_checkpoint:
        shutil.rmtree(ckpt, ignore_errors=True)
        outcome.checkpoint = None
    return outcome


def replayed(config: FinetuneConfig, new_records: int, *, seed: int) -> list:
    """`replay_ratio * new_records` records of `config.replay`, drawn with `seed` (empty without replay data)."""
    import random

    if not config.replay:
        return []
    if not config.replay_ratio > 0:
        raise ToolchainError(
            f"replay ratio {config.replay_ratio} mixes in nothing. Fix: pass a positive --replay-ratio (1.0: one "
            "replayed record per new one), or leave out --replay."
        )
    pool = read_records(config.replay, fields=config.fields)
    n = round(config.replay_ratio * new_records)
    rng = random.Random(seed)
    return rng.sample(pool, n) if n <= len(pool) else [rng.choice(pool) for _ in range(n)]
