"""Copy a trained model folder into the core distribution as a bundled model, weights in float16 (or int8).

    python recipes/bundle.py /work/artifacts/support-assistant support-assistant
    python recipes/bundle.py TEACHER_FOLDER support-embedder --int8

Writes `tinylm/models/NAME/`: the config (dtype float16), tokenizer and pooling files of SRC and
`model.safetensors` cast to float16 (`--int8`: every matrix stored as int8 with a float16 scale
per output row, compressed-tensors' int-quantized layout that tinylm widens to float32 on load;
vectors and position tables stay float16); the model card (`README.md`) is written by hand beside it and
kept. `--default-system TEXT` makes the chat template add that system message when a conversation has
none (the assistant was trained with one), as Qwen's templates do. Then loads both folders with the
torch backend and prints the largest logit (or embedding) difference the cast causes, and the
folder's size (the bundle budget is 25 MB per model).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "tinylm" / "models"
SKIP = {"model.safetensors", "README.md", "config.json"}
PROBE = ["Where is my order? It has not arrived yet.", "How do I change my shipping address?"]


def add_default_system(tokenizer_config: Path, text: str) -> None:
    """Prefix the chat template so conversations without a system message get `text` as one."""
    config = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    template = config["chat_template"]
    literal = json.dumps(text)  # a double-quoted string literal Jinja reads the same way
    prefix = (
        "{% if not messages or messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n' + " + literal + " + '<|im_end|>\\n' }}{% endif %}"
    )
    if not template.startswith(prefix):
        config["chat_template"] = prefix + template
    tokenizer_config.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _int8_target(name: str, w: np.ndarray) -> bool:
    """Matrices stored as int8: projections and the token table, not the small position/type tables."""
    return not name.endswith(("position_embeddings.weight", "token_type_embeddings.weight"))


def bundle(src: Path, name: str, *, int8: bool = False) -> Path:
    from safetensors.numpy import load_file, save_file

    from tinylm.compressed import QUANTIZATION_CONFIG, quantize_int8

    dest = MODELS / name
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in SKIP or item.name.startswith("."):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    config.pop("_name_or_path", None)
    config.pop("torch_dtype", None)
    config["dtype"] = "float16"
    config.pop("quantization_config", None)
    if int8:
        config["quantization_config"] = QUANTIZATION_CONFIG
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tensors = load_file(str(src / "model.safetensors"))
    tensors = {k: v for k, v in tensors.items() if not k.endswith("position_ids")}  # a buffer, not a weight
    if int8:
        tensors = quantize_int8(tensors, _int8_target)
    half = {k: np.ascontiguousarray(v if v.dtype == np.int8 else v.astype(np.float16)) for k, v in tensors.items()}
    save_file(half, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def compare(src: Path, dest: Path) -> float:
    """Largest absolute difference between the float32 source and the float16 bundle (torch backend)."""
    import tinylm

    with tinylm.load(src, backend="torch") as a, tinylm.load(dest, backend="torch") as b:
        if a.spec.kind == "encoder":
            return float(np.abs(np.asarray(a.embed(PROBE)) - np.asarray(b.embed(PROBE))).max())
        diffs = []
        for text in PROBE:
            ids = a.tokenizer.encode(text)
            diffs.append(np.abs(np.asarray(a.logits(ids)) - np.asarray(b.logits(ids))).max())
        return float(max(diffs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the trained model folder (Hugging Face layout)")
    parser.add_argument("name", help="the bundled name, e.g. support-assistant")
    parser.add_argument("--default-system", default=None, help="system message for chats that have none")
    parser.add_argument("--int8", action="store_true", help="store matrices as int8 with per-row scales")
    args = parser.parse_args()
    dest = bundle(args.src, args.name, int8=args.int8)
    if args.default_system is not None:
        add_default_system(dest / "tokenizer_config.json", args.default_system)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"{dest}: {size / 1e6:.1f} MB; largest difference from the float32 source {compare(args.src, dest):.2e}")


if __name__ == "__main__":
    main()
