"""The toolchain's subcommands, added to `tinylm` through the `register_commands` hook:
train, finetune, distill, prune, eval. Parsers only here; torch is imported when a command runs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_run(p: argparse.ArgumentParser, *, steps: int, lr: float, batch_size: int, checkpoints: bool = True) -> None:
    g = p.add_argument_group("optimisation and bookkeeping")
    g.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    g.add_argument("--batch-size", type=int, default=batch_size)
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
    g.add_argument("--warmup", type=int, default=20, help="linear warmup steps, then cosine decay")
    g.add_argument("--weight-decay", type=float, default=None)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--eval-every", type=int, default=50, help="validate every N steps and at the end (0: never)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument(
        "--autocast",
        choices=["bf16"],
        default=None,
        help="compute in bf16 (weights and optimizer stay fp32); faster on CPUs with AVX512-BF16 or AMX",
    )
    g.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    if checkpoints:
        g.add_argument("--checkpoint-every", type=int, default=50)
        g.add_argument("--checkpoint-dir", type=Path, default=None, help="default: OUT.checkpoint beside OUT")
        g.add_argument("--no-resume", dest="resume", action="store_false", help="ignore an existing checkpoint")
        g.add_argument("--stop-after", type=int, default=None, help="checkpoint and stop after this step")
        g.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint after finishing")


def _run(args: argparse.Namespace, *, weight_decay: float = 0.0) -> Any:
    from .common import RunOptions

    return RunOptions(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        weight_decay=args.weight_decay if args.weight_decay is not None else weight_decay,
        grad_clip=args.grad_clip,
        eval_every=args.eval_every,
        checkpoint_every=getattr(args, "checkpoint_every", 0),
        checkpoint_dir=getattr(args, "checkpoint_dir", None),
        resume=getattr(args, "resume", True),
        stop_after=getattr(args, "stop_after", None),
        keep_checkpoint=getattr(args, "keep_checkpoint", False),
        seed=args.seed,
        threads=args.threads,
        autocast=args.autocast,
        overwrite=args.overwrite,
    )


def _add_data(p: argparse.ArgumentParser, *, val: bool = True) -> None:
    p.add_argument("--field", dest="fields", action="append", default=[], help="JSON field to read as text (repeat)")
    p.add_argument("--max-records", type=int, default=None)
    if val:
        p.add_argument("--val-data", type=Path, nargs="+", default=[], help="held-out files (default: a split)")
        p.add_argument("--val-fraction", type=float, default=0.05, help="held out from the data without --val-data")


def _interrupted(result: Any) -> int:
    print(f"interrupted at step {result.steps if hasattr(result, 'steps') else ''}; rerun the same command to resume.")
    return 130


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        family=args.family,
        size=args.size,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        intermediate_size=args.intermediate_size,
        context=args.context,
        vocab_size=args.vocab_size,
        tokenizer=args.tokenizer,
        fields=tuple(args.fields),
        max_records=args.max_records,
        val_data=tuple(args.val_data),
        val_fraction=args.val_fraction,
        run=_run(args, weight_decay=0.1),
    )
    result = train(args.data, args.out, config)
    if result.interrupted:
        return _interrupted(result)
    ppl = f", validation perplexity {result.val_perplexity:.2f}" if result.val_perplexity else ""
    size = f"{result.parameters / 1e6:.2f}M parameters"
    print(f"wrote {result.out}: {size}, {result.steps} steps in {result.seconds:.0f}s{ppl}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        assistant_only=not args.all_tokens,
        max_length=args.max_length,
        fields=tuple(args.fields),
        max_records=args.max_records,
        val_data=tuple(args.val_data),
        val_fraction=args.val_fraction,
        replay=tuple(args.replay),
        replay_ratio=args.replay_ratio,
        run=_run(args),
    )
    result = finetune(args.model, args.data, args.out, config)
    if result.interrupted:
        return _interrupted(result)
    val = f", validation loss {result.val_loss:.4f}" if result.val_loss is not None else ""
    print(f"wrote {result.out}: {result.steps} steps in {result.seconds:.0f}s{val}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .distill import DistillConfig, distill

    config = DistillConfig(
        student=args.student,
        layers=args.layers or (),
        num_layers=args.num_layers,
        temperature=args.temperature,
        alpha=args.alpha,
        max_length=args.max_length,
        fields=tuple(args.fields),
        max_records=args.max_records,
        val_data=tuple(args.val_data),
        val_fraction=args.val_fraction,
        run=_run(args),
    )
    result = distill(args.teacher, args.data, args.out, config)
    if result.out is None:
        return _interrupted(result.loop)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(
        f"wrote {result.out}: {result.parameters_student / 1e6:.2f}M parameters "
        f"(teacher {result.parameters_teacher / 1e6:.2f}M), {result.loop.steps} steps in {result.loop.seconds:.0f}s; "
        + shown
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .prune import PruneConfig, prune

    config = PruneConfig(
        drop_layers=args.drop_layers or (),
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        vocab_data=tuple(args.vocab_data),
        keep_ascii=not args.no_ascii,
        calibration_data=tuple(args.calibration_data),
        calibration_samples=args.calibration_samples,
        heal_data=tuple(args.heal_data),
        fields=tuple(args.fields),
        max_records=args.max_records,
        max_length=args.max_length,
        temperature=args.temperature,
        alpha=args.alpha,
        run=_run(args),
    )
    result = prune(args.model, args.out, config)
    if result.out is None:
        return _interrupted(result.heal)
    heal = f"; healed {result.heal.steps} steps in {result.heal.seconds:.0f}s" if result.heal else ""
    print(
        f"wrote {result.out}: {result.parameters_before / 1e6:.2f}M -> {result.parameters_after / 1e6:.2f}M "
        f"parameters, layers kept {result.kept_layers}{heal}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from .errors import DataError
    from .evaluate import EvalOptions, agreement, perplexity, retrieval, write_card_section

    report: dict[str, Any] = {"model": str(args.model)}
    options = EvalOptions(
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        fields=args.fields,
        max_records=args.max_records,
    )
    if args.precision:
        report["precision"] = args.precision
    if not (args.data or args.retrieval):
        raise DataError(
            "nothing to evaluate. Fix: pass --data (perplexity, or agreement with --teacher) or --retrieval."
        )
    if args.teacher:
        report["teacher"] = str(args.teacher)
    if args.data and args.teacher:
        report["mean_cosine_with_teacher"] = agreement(args.model, args.teacher, args.data, options)
    elif args.data:
        report["perplexity"] = asdict(perplexity(args.model, args.data, options))
    for path in args.retrieval:
        entry: dict[str, Any] = {"model": asdict(retrieval(args.model, path, options))}
        if args.teacher:  # the reference at its own default precision
            entry["teacher"] = asdict(retrieval(args.teacher, path, replace(options, precision=None)))
            entry["mrr_ratio"] = entry["model"]["mrr"] / entry["teacher"]["mrr"]
        report.setdefault("retrieval", {})[str(path)] = entry
    if args.data:
        report["data"] = [str(p) for p in args.data]
    print(json.dumps(report, indent=2))
    if args.write_card:
        write_card_section(args.model, report)
    return 0


def _add_distill_loss(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=2.0, help="softening of the logits for KL (decoders)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of KL vs cross-entropy (decoders)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example")


def add_commands(subparsers: argparse._SubParsersAction, add_common: Callable[[Any], None]) -> None:
    """Add train, finetune, distill, prune and eval to the `tinylm` command line."""
    from .presets import SCRATCH_FAMILIES, SIZES

    p = subparsers.add_parser("train", help="pre-train a decoder from scratch (tokenizer included)")
    p.add_argument("data", type=Path, nargs="+", help=".txt or .jsonl files")
    p.add_argument("--out", type=Path, required=True, help="the model folder to write")
    p.add_argument("--family", default="llama", choices=SCRATCH_FAMILIES)
    p.add_argument("--size", default="small", choices=list(SIZES))
    p.add_argument("--hidden-size", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--kv-heads", type=int)
    p.add_argument("--intermediate-size", type=int)
    p.add_argument("--context", type=int, default=256, help="tokens per training block (the model's context)")
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary to train")
    p.add_argument("--tokenizer", type=Path, help="a folder with tokenizer.json to use instead of training one")
    _add_data(p)
    _add_run(p, steps=1000, lr=3e-3, batch_size=16)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("finetune", help="continue training on text or chat data (full or LoRA)")
    p.add_argument("model")
    p.add_argument("data", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--lora-rank", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--all-tokens", action="store_true", help="loss on every token of chats, not just the assistant's")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument(
        "--replay",
        type=Path,
        nargs="+",
        default=[],
        help="data the model was trained on before, mixed in so it keeps its old tasks (recommended for a new task)",
    )
    p.add_argument("--replay-ratio", type=float, default=1.0, help="replayed records per new record (default 1.0)")
    _add_data(p)
    _add_run(p, steps=200, lr=1e-4, batch_size=8)
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser(
        "distill", help="teacher -> smaller student (logits for decoders, embeddings for encoders)"
    )
    p.add_argument("teacher")
    p.add_argument("data", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--student", help="an existing student model (default: teacher layers, see --layers)")
    p.add_argument("--layers", type=_ints, help="teacher layers the student starts from, e.g. 0,2,5")
    p.add_argument("--num-layers", type=int, help="keep this many teacher layers, evenly spaced (default: half)")
    _add_distill_loss(p)
    _add_data(p)
    _add_run(p, steps=500, lr=2e-4, batch_size=32)
    p.set_defaults(func=cmd_distill)

    p = subparsers.add_parser("prune", help="structured pruning (layers, heads, MLP, vocabulary) + optional healing")
    p.add_argument("model")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--drop-layers", type=_ints, help="layer indices to drop, e.g. 3,4")
    p.add_argument("--num-layers", type=int, help="keep the N most influential layers")
    p.add_argument("--num-heads", type=int, help="keep N query heads (whole kv groups)")
    p.add_argument("--intermediate-size", type=int, help="keep N MLP channels per layer")
    p.add_argument("--vocab-data", type=Path, nargs="+", default=[], help="keep the tokens these texts use")
    p.add_argument("--no-ascii", action="store_true", help="with --vocab-data: do not keep all ASCII characters")
    p.add_argument("--calibration-data", type=Path, nargs="+", default=[], help="text to measure importance on")
    p.add_argument("--calibration-samples", type=int, default=64)
    p.add_argument("--heal-data", type=Path, nargs="+", default=[], help="text to heal on (distillation)")
    _add_distill_loss(p)
    _add_data(p, val=False)
    _add_run(p, steps=0, lr=2e-4, batch_size=32)
    p.set_defaults(func=cmd_prune)

    p = subparsers.add_parser("eval", help="perplexity; embedding agreement with a teacher; retrieval metrics")
    p.add_argument("model")
    p.add_argument("--data", type=Path, nargs="+", default=[], help="text for perplexity (or for --teacher)")
    p.add_argument("--teacher", help="compare with this model: mean cosine on --data, and its --retrieval metrics")
    p.add_argument("--retrieval", type=Path, nargs="+", default=[], help="retrieval JSONL files")
    p.add_argument("--field", dest="fields", action="append", default=[])
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--write-card", action="store_true", help="append the results to the model card (README.md)")
    add_common(p)
    p.set_defaults(func=cmd_eval)
