"""`tinylm prune`: structured pruning that keeps a valid model of the same family, then optional healing.

    layers      --drop-layers 3,4 (explicit) or --num-layers N (keep the N most influential blocks)
    heads       --num-heads N: keep N query heads, as whole kv groups (a kv head with its query heads)
    MLP width   --intermediate-size N: keep the N most important channels of every layer
    vocabulary  --vocab-data FILES: keep the tokens those texts use (embedding models, WordPiece)
    healing     --steps N > 0: distill from the unpruned model (`distill.distill_draft`) on --heal-data

Importance (layers, heads, channels) is measured on calibration data (`importance.measure`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .card import ModelCard, command_line, data_rows, parameter_count
from .common import RunOptions, check_counts, checkpoint_dir, fingerprint_of, open_source, setup
from .data import read_records, record_texts, split_holdout
from .distill import DistillConfig, distill_draft
from .errors import PruneError
from .export import Draft, check_out, save_model
from .loop import LoopResult
from .surgery import check_representable, keep_kv_groups, keep_layers, keep_mlp_channels, keep_vocab

__all__ = ["PruneConfig", "PruneResult", "prune", "prune_draft"]


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    drop_layers: tuple[int, ...] = ()
    num_layers: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None
    vocab_data: tuple[Path, ...] = ()
    keep_ascii: bool = True
    calibration_data: tuple[Path, ...] = ()
    calibration_samples: int = 64
    heal_data: tuple[Path, ...] = ()
    fields: tuple[str, ...] = ()
    max_records: int | None = None
    max_length: int = 128
    temperature: float = 2.0
    alpha: float = 0.5
    val_fraction: float = 0.05
    run: RunOptions = field(default_factory=lambda: RunOptions(steps=0, lr=2e-4, batch_size=32))

    def __post_init__(self) -> None:
        counts = ("num_layers", "num_heads", "intermediate_size", "calibration_samples", "max_length", "max_records")
        check_counts(self, counts, PruneError)


@dataclass(kw_only=True)
class PruneResult:
    out: Path | None
    parameters_before: int
    parameters_after: int
    kept_layers: list[int]
    heal: LoopResult | None = None
    checkpoint: Path | None = None


def _calibration_batches(source, texts: list[str], max_length: int, batch_size: int = 8):
    """(ids, mask, types) batches of the calibration texts, tokenized by the source model."""
    from .embedding import encode_texts, pad_batch

    enc = encode_texts(source.tokenizer, texts, max_length=max_length)
    pad = source.spec.pad_token_id if source.spec.pad_token_id is not None else 0
    for start in range(0, len(texts), batch_size):
        yield pad_batch(enc, list(range(start, min(start + batch_size, len(texts)))), pad)


def _top(scores: np.ndarray, k: int) -> list[int]:
    return sorted(np.argsort(-scores, kind="stable")[:k].tolist())


def prune_draft(source, config: PruneConfig, *, tmp: Path) -> tuple[Draft, list[int]]:
    """The pruned model (not yet healed) and the source layers it kept. Tokenizer files go under `tmp`."""
    from tinylm_torch.weights import build_transformer

    from .importance import measure

    spec, weights = source.spec, {k: np.asarray(v) for k, v in source.weights().items()}
    layers = list(range(spec.num_layers))
    needs_scores = config.num_layers is not None or config.num_heads is not None or config.intermediate_size
    scores = None
    if needs_scores:
        paths = config.calibration_data or config.heal_data or config.vocab_data
        if not paths:
            raise PruneError(
                "importance-based pruning needs calibration text. Fix: pass --calibration-data (or --heal-data)."
            )
        records = read_records(paths, fields=config.fields, limit=config.calibration_samples)
        texts = record_texts(records)[: config.calibration_samples]
        net = build_transformer(spec, weights)
        scores = measure(net, _calibration_batches(source, texts, min(config.max_length, spec.max_positions)))
        del net
    if config.drop_layers:
        layers = [i for i in layers if i not in set(config.drop_layers)]
    if config.num_layers is not None:
        if not 1 <= config.num_layers <= len(layers):
            raise PruneError(f"cannot keep {config.num_layers} of {len(layers)} layers. Fix: pick 1..{len(layers)}.")
        layers = sorted(sorted(layers, key=lambda i: -scores.layers[i])[: config.num_layers])
    if layers != list(range(spec.num_layers)):
        weights, spec = keep_layers(weights, spec, layers)
    if config.num_heads is not None:
        g = spec.num_heads // spec.num_kv_heads
        if config.num_heads % g or not 0 < config.num_heads <= spec.num_heads:
            raise PruneError(
                f"--num-heads {config.num_heads}: heads go in kv groups of {g} ({spec.num_kv_heads} groups). "
                f"Fix: choose a multiple of {g} up to {spec.num_heads}."
            )
        keep = {new: _top(scores.groups[old], config.num_heads // g) for new, old in enumerate(layers)}
        weights, spec = keep_kv_groups(weights, spec, keep)
        check_representable(spec, source.config, what=f"--num-heads {config.num_heads}")
    if config.intermediate_size is not None:
        if not 0 < config.intermediate_size <= spec.intermediate_size:
            raise PruneError(f"--intermediate-size must be in 1..{spec.intermediate_size}. Fix: pick a smaller width.")
        keep = {new: _top(scores.channels[old], config.intermediate_size) for new, old in enumerate(layers)}
        weights, spec = keep_mlp_channels(weights, spec, keep)
    tokenizer_from = None
    if config.vocab_data:
        from .vocab import corpus_token_ids, ids_to_keep, write_pruned_tokenizer

        if spec.kind != "encoder":
            raise PruneError(
                "vocabulary pruning is for embedding models (a decoder must be able to generate every token). "
                "Fix: drop --vocab-data, or prune an encoder."
            )
        texts = record_texts(read_records(config.vocab_data, fields=config.fields))
        used = corpus_token_ids(source.path, texts, max_length=source.tokenizer.max_length)
        keep_ids = ids_to_keep(source.path, used, keep_ascii=config.keep_ascii)
        weights, spec, _ = keep_vocab(weights, spec, keep_ids)
        tokenizer_from = tmp / "tokenizer"
        write_pruned_tokenizer(source.path, tokenizer_from, keep_ids)
    check_representable(spec, source.config, what="the pruned model")
    draft = Draft(
        spec=spec,
        weights={k: np.ascontiguousarray(v) for k, v in weights.items()},
        files_from=source.path,
        base_config=source.config,
        tokenizer_from=tokenizer_from,
    )
    return draft, layers


def prune(model: str | Path, out: Path, config: PruneConfig, *, command: str | None = None) -> PruneResult:
    """Prune `model` as `config` says, heal it if `config.run.steps` > 0, and write it to `out`."""
    run = config.run
    check_out(out, overwrite=run.overwrite)
    setup(run)
    source = open_source(model)
    tmp = Path(tempfile.mkdtemp(prefix="tinylm-prune-"))
    try:
        draft, layers = prune_draft(source, config, tmp=tmp)
        result = PruneResult(
            out=None,
            parameters_before=parameter_count(source.spec),
            parameters_after=parameter_count(draft.spec),
            kept_layers=layers,
        )
        metrics: dict[str, object] = {
            "parameters (before)": result.parameters_before,
            "parameters (after)": result.parameters_after,
            "kept layers": ", ".join(map(str, layers)),
        }
        data = []
        if run.steps > 0:
            if not config.heal_data:
                raise PruneError("healing (--steps > 0) needs --heal-data. Fix: pass text to distill on.")
            records = read_records(config.heal_data, fields=config.fields, limit=config.max_records)
            records, val_records = split_holdout(records, config.val_fraction)
            dconfig = DistillConfig(
                temperature=config.temperature, alpha=config.alpha, max_length=config.max_length, run=run
            )
            ckpt = checkpoint_dir(out, run)
            fingerprint = fingerprint_of(config, {"model": str(source.path)})
            draft, heal = distill_draft(
                source, draft, records, val_records, dconfig, ckpt=ckpt, fingerprint=fingerprint, label="heal"
            )
            result.heal, result.checkpoint = heal, ckpt
            if heal.interrupted:
                return result
            metrics["heal steps"] = heal.steps
            metrics["heal seconds"] = round(heal.seconds, 1)
            if heal.val_loss is not None:
                key = "held-out mean cosine with the unpruned model" if draft.spec.kind == "encoder" else "held-out CE"
                metrics[key] = 1 - heal.val_loss / 2 if draft.spec.kind == "encoder" else heal.val_loss
            data = data_rows("heal (train split)", config.heal_data, len(records))
            data += data_rows("heal (held-out split)", config.heal_data, len(val_records))
        data += data_rows("vocabulary", config.vocab_data, "all")
        data += data_rows("calibration", config.calibration_data, config.calibration_samples)
        card = ModelCard(
            title=f"{out.name}: pruned from {Path(str(model)).name}",
            task="prune",
            command=command or command_line(),
            base_model=str(model),
            data=data,
            metrics=metrics,
            training={"seed": run.seed, "threads": run.threads or "default"},
        )
        result.out = save_model(draft, out, card=card, overwrite=run.overwrite)
        if result.checkpoint is not None and not run.keep_checkpoint:
            shutil.rmtree(result.checkpoint, ignore_errors=True)
            result.checkpoint = None
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
