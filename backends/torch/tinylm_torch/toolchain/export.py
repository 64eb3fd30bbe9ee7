"""Writing a model out in Hugging Face layout, so `tinylm.load` runs it on every backend.

    config.json               the family's `to_config(spec, original config)` (tinylm.arch.families)
    model.safetensors         the family's `to_checkpoint(canonical weights)`, float32
    tokenizer files           copied from the source model (or the pruned/trained tokenizer)
    generation_config.json    decoders
    modules.json, 1_Pooling/config.json, sentence_bert_config.json, 2_Normalize/   encoders
    README.md                 the generated model card

The folder is written beside `out` and renamed into place, then read back with `ModelFolder` as a check.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinylm.arch import check_weights, family_for
from tinylm.arch.spec import ModelSpec

from .card import ModelCard
from .errors import ToolchainError

__all__ = ["Draft", "save_model", "check_out", "TOKENIZER_FILES"]

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_ENCODER_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


@dataclass(kw_only=True)
class Draft:
    """A model being made: its spec and canonical weights, and where its other files come from.

    Attributes:
        files_from: folder whose tokenizer, generation and sentence-transformers files are copied.
        base_config: the original config.json, updated with the new spec (None: written from the spec).
        tokenizer_from: a folder holding replacement tokenizer files (a pruned or newly trained tokenizer).
        extra_files: name -> bytes written beside the model (e.g. a distillation projection).
    """

    spec: ModelSpec
    weights: dict[str, np.ndarray]
    files_from: Path | None = None
    base_config: dict[str, Any] | None = None
    tokenizer_from: Path | None = None
    extra_files: dict[str, bytes] = dataclasses.field(default_factory=dict)


def check_out(out: Path, *, overwrite: bool) -> None:
    """Fail early (before any training) when `out` exists, is not empty and may not be replaced."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ToolchainError(f"{out} exists and is not empty. Fix: choose a new output folder or pass --overwrite.")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _sentence_transformers(draft: Draft, tmp: Path) -> None:
    src = draft.files_from
    for name in _ENCODER_FILES:
        if src is not None and (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    if not (tmp / "modules.json").is_file():
        _write_json(
            tmp / "modules.json",
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
        )
    pooling_src = src / "1_Pooling" / "config.json" if src is not None else None
    pooling = json.loads(pooling_src.read_text()) if pooling_src is not None and pooling_src.is_file() else {}
    mode = draft.spec.pooling.mode if draft.spec.pooling else "mean"
    if not pooling:
        pooling = {
            "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean",
            "pooling_mode_max_tokens": mode == "max",
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
    pooling["word_embedding_dimension"] = draft.spec.hidden_size
    _write_json(tmp / "1_Pooling" / "config.json", pooling)
    (tmp / "2_Normalize").mkdir(exist_ok=True)
    if not (tmp / "sentence_bert_config.json").is_file():
        _write_json(tmp / "sentence_bert_config.json", {"max_seq_length": draft.spec.max_positions})


def save_model(draft: Draft, out: Path, *, card: ModelCard, overwrite: bool = False) -> Path:
    """Write `draft` to `out` (Hugging Face layout + model card) and check that it reads back."""
    from safetensors.numpy import save_file

    from tinylm.source import ModelFolder

    check_out(out, overwrite=overwrite)
    spec = dataclasses.replace(draft.spec, source_dtype="float32")
    family = family_for({"model_type": (draft.base_config or {}).get("model_type", spec.family)})
    check_weights(spec, draft.weights, where="the model to save")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        config = family.to_config(spec, draft.base_config)
        _write_json(tmp / "config.json", config)
        tensors = family.to_checkpoint(draft.weights, spec)
        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        for name in TOKENIZER_FILES:
            src = draft.tokenizer_from if draft.tokenizer_from is not None else draft.files_from
            if src is not None and (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        if spec.kind == "decoder":
            gen_src = draft.files_from / "generation_config.json" if draft.files_from else None
            gen = json.loads(gen_src.read_text()) if gen_src is not None and gen_src.is_file() else {}
            gen.update({"bos_token_id": spec.bos_token_id, "pad_token_id": spec.pad_token_id})
            gen.setdefault("eos_token_id", list(spec.eos_token_ids) or None)
            _write_json(tmp / "generation_config.json", gen)
        else:
            _sentence_transformers(draft, tmp)
        for name, data in draft.extra_files.items():
            (tmp / name).write_bytes(data)
        (tmp / "README.md").write_text(card.render(spec), encoding="utf-8")
        written = ModelFolder(tmp)  # reads back: config -> spec, weights -> canonical names and shapes
        if dataclasses.replace(written.spec, pooling=None) != dataclasses.replace(spec, pooling=None):
            raise ToolchainError(
                f"the written config.json does not describe the model ({written.spec} != {spec}). "
                "Fix: this is a bug in the family's to_config; please report it."
            )
        written.weights()
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
