"""Vocabulary pruning of an embedding model's tokenizer: keep the tokens a corpus uses.

Kept: every token the corpus tokenizes to, every special/added token, the unknown token and (by
default) the ASCII single characters with their `##` continuations, so unseen English words still
split into pieces rather than collapsing to [UNK]. Ids are renumbered in their old order, so
specials keep low ids. tokenizer.json (model vocab, added tokens, post-processor, padding),
tokenizer_config.json (added_tokens_decoder) and vocab.txt are rewritten consistently.

WordPiece's greedy longest-match picks, over a subset of its vocabulary, the same tokens for any text
whose tokens were all kept, so such texts embed exactly as before.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import PruneError

__all__ = ["corpus_token_ids", "ids_to_keep", "write_pruned_tokenizer"]

_SUPPORTED = ("WordPiece", "WordLevel")


def _load(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    kind = data.get("model", {}).get("type")
    if kind not in _SUPPORTED:
        raise PruneError(
            f"{folder}: vocabulary pruning supports {' and '.join(_SUPPORTED)} tokenizers (BERT-style), not {kind}: "
            "BPE merges refer to the tokens they build. Fix: prune layers, heads or MLP width of this model instead."
        )
    return data


def corpus_token_ids(folder: Path, texts: Iterable[str], *, max_length: int | None = None) -> set[int]:
    """Ids the tokenizer of `folder` produces on `texts` (special tokens included)."""
    from tokenizers import Tokenizer

    _load(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    if max_length:
        tok.enable_truncation(max_length)
    used: set[int] = set()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 512:
            used.update(i for e in tok.encode_batch(batch) for i in e.ids)
            batch = []
    used.update(i for e in tok.encode_batch(batch) for i in e.ids)
    return used


def ids_to_keep(folder: Path, used: set[int], *, keep_ascii: bool = True) -> list[int]:
    """`used` plus the special tokens, the unknown token and (optionally) ASCII characters, sorted."""
    data = _load(folder)
    vocab: dict[str, int] = data["model"]["vocab"]
    keep = set(used) | {t["id"] for t in data.get("added_tokens", [])}
    unk = data["model"].get("unk_token")
    if unk in vocab:
        keep.add(vocab[unk])
    if keep_ascii:
        prefix = data["model"].get("continuing_subword_prefix") or "##"
        for ch in string.printable.strip():
            for token in (ch, ch.lower(), prefix + ch, prefix + ch.lower()):
                if token in vocab:
                    keep.add(vocab[token])
    return sorted(keep)


def _remap_processor(proc: Any, mapping: dict[int, int]) -> Any:
    if not isinstance(proc, dict):
        return proc
    kind = proc.get("type")
    if kind == "TemplateProcessing":
        for entry in proc.get("special_tokens", {}).values():
            entry["ids"] = [mapping[i] for i in entry["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, old = proc[key]
            proc[key] = [token, mapping[old]]
    elif kind == "Sequence":
        proc["processors"] = [_remap_processor(p, mapping) for p in proc.get("processors", [])]
    return proc


def write_pruned_tokenizer(src: Path, dst: Path, keep: list[int]) -> dict[int, int]:
    """Write the tokenizer files of `src`, restricted to the ids `keep`, into `dst`; returns old -> new ids."""
    data = _load(src)
    mapping = {old: new for new, old in enumerate(sorted(keep))}
    model = data["model"]
    model["vocab"] = {
        tok: mapping[i] for tok, i in sorted(model["vocab"].items(), key=lambda kv: kv[1]) if i in mapping
    }
    for token in data.get("added_tokens", []):
        token["id"] = mapping[token["id"]]
    data["post_processor"] = _remap_processor(data.get("post_processor"), mapping)
    if isinstance(data.get("padding"), dict) and "pad_id" in data["padding"]:
        data["padding"]["pad_id"] = mapping.get(data["padding"]["pad_id"], 0)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    config_path = src / "tokenizer_config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            config["added_tokens_decoder"] = {str(mapping[int(k)]): v for k, v in decoder.items() if int(k) in mapping}
        (dst / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    for name in ("special_tokens_map.json",):
        if (src / name).is_file():
            (dst / name).write_bytes((src / name).read_bytes())
    if (src / "vocab.txt").is_file():  # the slow tokenizer's vocabulary, one token per line in id order
        tokens = sorted(model["vocab"].items(), key=lambda kv: kv[1])
        (dst / "vocab.txt").write_text("".join(t + "\n" for t, _ in tokens), encoding="utf-8")
    return mapping
