"""`tinylm distill`: teacher -> student.

Decoders: KL between temperature-softened teacher and student logits (times T^2), mixed with the
next-token cross-entropy: loss = alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE. Both models must
share the tokenizer (`TokenizerMismatch` otherwise).

Encoders: sentence-embedding distillation, loss = ||e_s - e_t||^2 on L2-normalised embeddings
(= 2 - 2 cos). Teacher embeddings are computed once. When the student is narrower than the teacher,
the targets are the teacher's embeddings projected on their top principal components (PCA, written
beside the student as `distill_projection.safetensors` so `tinylm eval` can compare them).

The student is an existing model, or the teacher with a subset of its layers (default: half of them,
evenly spaced, first and last kept).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinylm.source import ModelFolder

from .card import ModelCard, command_line, data_rows, parameter_count
from .common import RunOptions, check_counts, checkpoint_dir, fingerprint_of, loop_config, open_source, setup
from .data import Record, record_texts, training_records
from .errors import DataError, TokenizerMismatch, ToolchainError
from .export import Draft, check_out, save_model
from .loop import LoopResult
from .surgery import keep_layers, spaced_layers

__all__ = ["DistillConfig", "DistillResult", "distill", "distill_draft", "kd_loss", "student_from_teacher"]

PROJECTION_FILE = "distill_projection.safetensors"


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    student: str | None = None  # an existing student model; else the teacher's layers below
    layers: tuple[int, ...] = ()  # teacher layers the student starts from
    num_layers: int | None = None  # or: this many, evenly spaced (default: half)
    temperature: float = 2.0
    alpha: float = 0.5
    max_length: int = 128
    fields: tuple[str, ...] = ()
    max_records: int | None = None
    val_data: tuple[Path, ...] = ()
    val_fraction: float = 0.05
    run: RunOptions = field(default_factory=lambda: RunOptions(lr=2e-4, batch_size=32))

    def __post_init__(self) -> None:
        check_counts(self, ("num_layers", "max_length", "max_records"), DataError)


@dataclass(kw_only=True)
class DistillResult:
    out: Path | None
    loop: LoopResult
    parameters_teacher: int
    parameters_student: int
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, targets), weighted mean.
    Logits (B, T, V), targets and weights (B, T)."""
    t = temperature
    log_s = torch.log_softmax(student.float() / t, dim=-1)
    log_t = torch.log_softmax(teacher.float() / t, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1) * t * t  # (B, T)
    ce = torch.nn.functional.cross_entropy(student.flatten(0, 1).float(), targets.flatten(), reduction="none")
    per_token = alpha * kl + (1 - alpha) * ce.view_as(kl)
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


def student_from_teacher(teacher: ModelFolder, config: DistillConfig) -> Draft:
    """The teacher with a subset of its layers (the student's starting point)."""
    spec = teacher.spec
    layers = list(config.layers) or spaced_layers(spec.num_layers, config.num_layers or max(1, spec.num_layers // 2))
    weights, new_spec = keep_layers(teacher.weights(), spec, layers)
    return Draft(
        spec=new_spec,
        weights={k: np.array(v) for k, v in weights.items()},
        files_from=teacher.path,
        base_config=teacher.config,
    )


def _same_tokenizer(teacher: ModelFolder, student_tok: Path, student_vocab: int) -> None:
    from tokenizers import Tokenizer

    a = Tokenizer.from_file(str(teacher.path / "tokenizer.json")).get_vocab()
    b = Tokenizer.from_file(str(student_tok / "tokenizer.json")).get_vocab()
    if a != b or teacher.spec.vocab_size != student_vocab:
        raise TokenizerMismatch(
            f"teacher {teacher.path.name} and the student use different tokenizers ({len(a)} vs {len(b)} tokens); "
            "logit distillation compares next-token distributions token by token. "
            "Fix: start the student from the teacher (--layers / --num-layers), or pick a teacher of the same "
            "tokenizer family."
        )


def _decoder_setup(
    teacher: ModelFolder, draft: Draft, records: Sequence[Record], val_records: Sequence[Record], config: DistillConfig
) -> tuple[Callable[[int], tuple[torch.Tensor, int]], Callable[[], float], torch.nn.Module, Callable[[int], int]]:
    from tinylm_torch.weights import build_transformer

    from .batches import Batcher, collate
    from .examples import Codec
    from .lm import mean_nll

    tok_dir = draft.tokenizer_from or draft.files_from or teacher.path
    _same_tokenizer(teacher, tok_dir, draft.spec.vocab_size)
    codec = Codec(tok_dir, max_length=min(config.max_length, draft.spec.max_positions, teacher.spec.max_positions))
    examples = [codec.record(r, assistant_only=False) for r in records]
    val_examples = [codec.record(r, assistant_only=False) for r in val_records]
    teacher_net = build_transformer(teacher.spec, teacher.weights()).eval()
    student = build_transformer(draft.spec, draft.weights)
    run = config.run
    batcher = Batcher(len(examples), run.batch_size, seed=run.seed)

    def step_loss(step: int) -> tuple[torch.Tensor, int]:
        x, y, w = collate([examples[i] for i in batcher.indices(step)], codec.pad_id)  # (B, T)
        with torch.no_grad():
            t_logits = teacher_net(x)  # (B, T, V)
        loss = kd_loss(student(x), t_logits, y, w, temperature=config.temperature, alpha=config.alpha)
        return loss, int((w > 0).sum())

    return step_loss, lambda: mean_nll(student, val_examples, codec.pad_id), student, batcher.position


def pca_components(embeddings: torch.Tensor, width: int) -> torch.Tensor:
    """The top `width` principal directions (width, H) of (N, H) embeddings (uncentred, as cosine needs)."""
    _, _, vh = torch.linalg.svd(embeddings.double(), full_matrices=False)  # vh: (H, H)
    return vh[:width].float()


def _encoder_setup(
    teacher: ModelFolder, draft: Draft, texts: Sequence[str], val_texts: Sequence[str], config: DistillConfig
) -> tuple[Callable[[int], tuple[torch.Tensor, int]], Callable[[], float], torch.nn.Module, Callable[[int], int]]:
    from tinylm.tokenizer import Tokenizer
    from tinylm_torch.weights import build_transformer

    from .batches import Batcher
    from .embedding import embed_all, encode_texts, pad_batch, pooled

    teacher_net = build_transformer(teacher.spec, teacher.weights()).eval()
    t_tok = teacher.tokenizer
    t_pad = teacher.spec.pad_token_id or 0
    teacher_emb = embed_all(teacher_net, encode_texts(t_tok, texts, max_length=config.max_length), t_pad)  # (N, Ht)
    teacher_val = embed_all(teacher_net, encode_texts(t_tok, val_texts, max_length=config.max_length), t_pad)
    del teacher_net
    if draft.spec.hidden_size != teacher.spec.hidden_size:
        components = pca_components(teacher_emb, draft.spec.hidden_size)  # (Hs, Ht)
        teacher_emb = torch.nn.functional.normalize(teacher_emb @ components.T, dim=-1)
        teacher_val = torch.nn.functional.normalize(teacher_val @ components.T, dim=-1)
        from safetensors.torch import save

        draft.extra_files[PROJECTION_FILE] = save({"components": components.contiguous()})
    s_folder = draft.tokenizer_from or draft.files_from or teacher.path
    s_tok = Tokenizer(s_folder, max_length=config.max_length)
    s_pad = draft.spec.pad_token_id or 0
    enc = encode_texts(s_tok, texts, max_length=config.max_length)
    val_enc = encode_texts(s_tok, val_texts, max_length=config.max_length)
    student = build_transformer(draft.spec, draft.weights)
    run = config.run
    batcher = Batcher(len(texts), run.batch_size, seed=run.seed)

    def step_loss(step: int) -> tuple[torch.Tensor, int]:
        rows = batcher.indices(step).tolist()
        ids, mask, types = pad_batch(enc, rows, s_pad)  # (B, T)
        e = pooled(student, ids, mask, types)  # (B, H)
        loss = ((e - teacher_emb[rows]) ** 2).sum(-1).mean()  # 2 - 2 cos on unit vectors
        return loss, int(mask.sum())

    def validate() -> float:
        e = embed_all(student, val_enc, s_pad)
        return float(((e - teacher_val) ** 2).sum(-1).mean())

    return step_loss, validate, student, batcher.position


def distill_draft(
    teacher: ModelFolder,
    draft: Draft,
    records: Sequence[Record],
    val_records: Sequence[Record],
    config: DistillConfig,
    *,
    ckpt: Path | None,
    fingerprint: dict[str, Any],
    label: str = "distill",
) -> tuple[Draft, LoopResult]:
    """Train `draft` to imitate `teacher` on `records`; returns the trained draft and the loop's result."""
    from tinylm_torch.weights import to_canonical

    from .loop import run_loop

    if teacher.spec.kind != draft.spec.kind:
        raise ToolchainError(
            f"teacher is a {teacher.spec.kind} and the student a {draft.spec.kind}. Fix: distill like into like."
        )
    if teacher.spec.kind == "encoder":
        texts, val_texts = record_texts(records), record_texts(val_records)
        step_loss, validate, student, position = _encoder_setup(teacher, draft, texts, val_texts, config)
    else:
        step_loss, validate, student, position = _decoder_setup(teacher, draft, records, val_records, config)
    result = run_loop(
        model=student,
        step_loss=step_loss,
        validate=validate,
        config=loop_config(config.run, label=label, ckpt=ckpt),
        fingerprint=fingerprint,
        position=position,
    )
    trained = Draft(
        spec=draft.spec,
        weights=to_canonical(student),
        files_from=draft.files_from,
        base_config=draft.base_config,
        tokenizer_from=draft.tokenizer_from,
        extra_files=draft.extra_files,
    )
    return trained, result


def distill(teacher: str | Path, data: list[Path], out: Path, config: DistillConfig, *, command: str | None = None):
    """Distill `teacher` into a student (see the module docs); write it to `out`. Returns a `DistillResult`."""
    run = config.run
    check_out(out, overwrite=run.overwrite)
    setup(run)
    source = open_source(teacher)
    if config.student:
        s = open_source(config.student)
        draft = Draft(spec=s.spec, weights=s.weights(), files_from=s.path, base_config=s.config)
    else:
        draft = student_from_teacher(source, config)
    ckpt = checkpoint_dir(out, run)
    records, val_records = training_records(data, config)
    fingerprint = fingerprint_of(config, {"teacher": str(source.path), "data": [str(p) for p in data]})
    trained, result = distill_draft(source, draft, records, val_records, config, ckpt=ckpt, fingerprint=fingerprint)
    outcome = DistillResult(
        out=None,
        loop=result,
        parameters_teacher=parameter_count(source.spec),
        parameters_student=parameter_count(draft.spec),
        checkpoint=ckpt,
    )
    if result.interrupted:
        return outcome
    metrics: dict[str, float] = {"train loss (last batch)": result.train_loss}
    if result.val_loss is not None:
        if source.spec.kind == "encoder":
            metrics["held-out mean cosine with the teacher"] = 1 - result.val_loss / 2
        else:
            metrics["held-out loss (CE)"] = result.val_loss
            metrics["held-out perplexity"] = math.exp(result.val_loss)
    outcome.metrics = metrics
    card = ModelCard(
        title=f"{out.name}: distilled from {Path(str(teacher)).name}",
        task="distill",
        command=command or command_line(),
        base_model=str(teacher),
        data=data_rows("train", data, len(records))
        + data_rows("validation", config.val_data or data, len(val_records)),
        metrics={
            **metrics,
            "parameters (teacher)": outcome.parameters_teacher,
            "parameters (student)": outcome.parameters_student,
        },
        training={
            "loss": "embedding MSE (2 - 2 cos)"
            if source.spec.kind == "encoder"
            else f"{config.alpha} * T^2 * KL (T={config.temperature}) + {1 - config.alpha} * CE",
            "student init": config.student or f"teacher layers {list(config.layers) or 'evenly spaced'}",
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "seed": run.seed,
            "threads": run.threads or "default",
        },
    )
    outcome.out = save_model(trained, out, card=card, overwrite=run.overwrite)
    if not run.keep_checkpoint:
        shutil.rmtree(ckpt, ignore_errors=True)
        outcome.checkpoint = None
    return outcome
