"""`tinylm train`: pre-train a decoder of a chosen family and size from scratch.

data (.txt / .jsonl) -> byte-level BPE tokenizer (trained unless given) -> packed blocks of `context`
-> Transformer(spec) initialised N(0, 0.02) -> AdamW loop (validation, checkpoints, resume) -> HF folder
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

from .card import ModelCard, command_line, data_rows, parameter_count
from .common import RunOptions, check_counts, checkpoint_dir, fingerprint_of, loop_config, setup
from .data import record_texts, training_records
from .errors import DataError
from .export import Draft, check_out, save_model
from .loop import LoopResult
from .presets import SIZES, Size, scratch_spec

__all__ = ["TrainConfig", "TrainResult", "train"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What to train. Sizes: a preset of `presets.SIZES`, any field overridden by the explicit ones."""

    family: str = "llama"
    size: str = "small"
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    intermediate_size: int | None = None
    context: int = 256
    vocab_size: int = 4096
    tokenizer: Path | None = None
    fields: tuple[str, ...] = ()
    max_records: int | None = None
    val_data: tuple[Path, ...] = ()
    val_fraction: float = 0.05
    val_blocks: int = 64
    run: RunOptions = field(default_factory=lambda: RunOptions(lr=3e-3, weight_decay=0.1))

    def __post_init__(self) -> None:
        sizes = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size")
        check_counts(self, (*sizes, "context", "vocab_size", "val_blocks", "max_records"), DataError)


@dataclass(kw_only=True)
class TrainResult(LoopResult):
    """The training loop's outcome (steps, losses, time, history) and what train/finetune add to it."""

    out: Path | None  # None when the run stopped early (resume it by running again)
    parameters: int
    checkpoint: Path | None = None

    @property
    def val_perplexity(self) -> float | None:
        return math.exp(self.val_loss) if self.val_loss is not None else None

    @classmethod
    def from_loop(cls, result: LoopResult, *, parameters: int, checkpoint: Path | None) -> TrainResult:
        """The outcome of a training loop run, before the model is written (`out` is set then)."""
        loop = {f.name: getattr(result, f.name) for f in fields(LoopResult)}
        return cls(**loop, out=None, parameters=parameters, checkpoint=checkpoint)

    def card_metrics(self) -> dict[str, float]:
        """The losses a model card reports."""
        metrics = {"train loss (last batch)": self.train_loss}
        if self.val_loss is not None:
            metrics.update({"validation loss": self.val_loss, "validation perplexity": math.exp(self.val_loss)})
        return metrics


def _size(config: TrainConfig) -> Size:
    if config.size not in SIZES:
        raise DataError(f"unknown size {config.size!r}. Fix: use one of {', '.join(SIZES)}.")
    base = SIZES[config.size]
    return Size(
        hidden=config.hidden_size or base.hidden,
        layers=config.num_layers or base.layers,
        heads=config.num_heads or base.heads,
        kv_heads=config.num_kv_heads or base.kv_heads,
        intermediate=config.intermediate_size or base.intermediate,
    )


def train(data: list[Path], out: Path, config: TrainConfig, *, command: str | None = None) -> TrainResult:
    """Train a new model on `data` and write it to `out` (Hugging Face layout, with a model card)."""
    from tinylm_torch.layers import init_weights
    from tinylm_torch.transformer import Transformer
    from tinylm_torch.weights import to_canonical

    from .batches import Batcher
    from .bpe import train_bpe
    from .examples import Codec, pack
    from .lm import lm_step, mean_nll
    from .loop import run_loop

    run = config.run
    check_out(out, overwrite=run.overwrite)
    setup(run)
    ckpt = checkpoint_dir(out, run)
    records, val_records = training_records(data, config)
    if config.tokenizer is not None:
        tok_dir = config.tokenizer
    else:
        tok_dir = ckpt / "tokenizer"
        if not (tok_dir / "tokenizer.json").is_file():  # a resumed run keeps the tokenizer it trained
            train_bpe(record_texts(records), tok_dir, vocab_size=config.vocab_size, max_length=config.context)
    codec = Codec(tok_dir)
    blocks = pack([codec.record(r, assistant_only=False) for r in records], config.context)
    val_blocks = pack([codec.record(r, assistant_only=False) for r in val_records], config.context)
    val_blocks = val_blocks[: config.val_blocks]
    tok = codec.tokenizer
    spec = scratch_spec(
        config.family,
        _size(config),
        vocab_size=codec.hf.get_vocab_size(),
        max_positions=config.context,
        bos=tok.bos_token_id,
        eos=tok.eos_token_id,
        pad=tok.pad_token_id,
    )
    model = init_weights(Transformer(spec))
    batcher = Batcher(len(blocks), run.batch_size, seed=run.seed)
    result = run_loop(
        model=model,
        step_loss=lm_step(model, blocks, batcher, codec.pad_id),
        validate=lambda: mean_nll(model, val_blocks, codec.pad_id, batch_size=run.batch_size),
        config=loop_config(run, label="train", ckpt=ckpt),
        fingerprint=fingerprint_of(config, {"data": [str(p) for p in data]}),
        position=batcher.position,
        keep=("tokenizer",),
    )
    params = parameter_count(spec)
    outcome = TrainResult.from_loop(result, parameters=params, checkpoint=ckpt)
    if result.interrupted:
        return outcome
    metrics = outcome.card_metrics()
    card = ModelCard(
        title=f"{out.name}: a {config.family} model trained from scratch",
        task="train",
        command=command or command_line(),
        data=data_rows("train", data, len(records))
        + data_rows("validation", config.val_data or data, len(val_records)),
        metrics=metrics,
        training={
            "steps": result.steps,
            "tokens": result.tokens,
            "seconds": round(result.seconds, 1),
            "batch size x context": f"{run.batch_size} x {config.context}",
            "seed": run.seed,
            "threads": run.threads or "default",
            "tokenizer": str(config.tokenizer) if config.tokenizer else f"byte-level BPE, {spec.vocab_size} tokens",
        },
        notes=[] if config.val_data else [f"validation: the last {config.val_fraction:.0%} of the records"],
    )
    draft = Draft(spec=spec, weights=to_canonical(model), files_from=tok_dir)
    outcome.out = save_model(draft, out, card=card, overwrite=run.overwrite)
    if not run.keep_checkpoint:
        shutil.rmtree(ckpt, ignore_errors=True)
        outcome.checkpoint = None
    return outcome
