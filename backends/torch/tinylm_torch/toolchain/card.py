"""The generated model card (README.md): what was made, by which command, from which data, measured how."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tinylm.arch import expected_shapes
from tinylm.arch.spec import ModelSpec

__all__ = ["ModelCard", "parameter_count", "command_line", "data_rows"]


def parameter_count(spec: ModelSpec) -> int:
    return sum(math.prod(shape) for shape in expected_shapes(spec).values())


def _number(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def data_rows(role: str, paths: Sequence[Any], records: int | str) -> list[dict[str, Any]]:
    """One row for a set of files read together (records counted over all of them)."""
    return [{"role": role, "path": "`, `".join(str(p) for p in paths), "records": records}] if paths else []


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (`tinylm <subcommand> ...`), or the Python call when not run from the CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "tinylm " + shlex.join(args) if args else "(Python API)"


@dataclass(kw_only=True)
class ModelCard:
    title: str
    task: str  # "train", "finetune", "distill", "prune"
    command: str
    base_model: str | None = None
    data: list[dict[str, Any]] = field(default_factory=list)  # {"role": "train", "path": ..., "records": n}
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def render(self, spec: ModelSpec) -> str:
        params = parameter_count(spec)
        pipeline = "sentence-similarity" if spec.kind == "encoder" else "text-generation"
        front = ["---", "library_name: tinylm", f"pipeline_tag: {pipeline}", f"tags: [tinylm, {self.task}]"]
        if self.base_model:
            front.append(f"base_model: {self.base_model}")
        front.append("---")
        lines = [*front, "", f"# {self.title}", ""]
        lines.append(
            f"A {spec.family} {spec.kind} with {params / 1e6:.2f}M parameters ({spec.num_layers} layers, hidden "
            f"{spec.hidden_size}, {spec.num_heads} heads / {spec.num_kv_heads} kv heads, MLP {spec.intermediate_size}, "
            f"vocabulary {spec.vocab_size}), made by `tinylm {self.task}`"
            + (f" from `{self.base_model}`." if self.base_model else ".")
        )
        lines += ["", "```python", "import tinylm", "m = tinylm.load('path/to/this/folder')"]
        lines.append("m.embed(['hello world'])" if spec.kind == "encoder" else "print(m.generate('Hello').text)")
        lines += ["```", "", "## Command", "", "```", self.command, "```"]
        if self.data:
            lines += ["", "## Data", "", "| role | file | records |", "|---|---|---|"]
            lines += [f"| {d.get('role', '')} | `{d.get('path', '')}` | {d.get('records', '')} |" for d in self.data]
        if self.metrics:
            lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
            for k, v in self.metrics.items():
                lines.append(f"| {k} | {_number(v)} |")
        if self.training:
            lines += ["", "## Training", ""]
            lines += [f"- {k}: {v}" for k, v in self.training.items()]
        if self.notes:
            lines += ["", "## Notes", ""]
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"
