"""The whole model, built from a `ModelSpec` alone:

    embed (* embed_scale) (+ positions + token types) -> [embed_norm] -> N x Block -> [final_norm] -> lm_head
    [/ logits_scaling]

Two ways in:
    model(ids) -> logits (B, T, V)                 cache-free, differentiable: training and scoring
    model.step(ids, cache, last_only=True)         inference: appends to a `KVCache`
    model.step_rows(ids, cache, rows)              inference: one token for each of several rows of a `RowsCache`
    model.hidden(ids, attention_mask, types)       encoders: last hidden states (B, T, H)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.arch.spec import ModelSpec

from .block import Block
from .cache import Frame, KVCache, Rows, RowsCache, make_frame, make_rows_frame
from .layers import Embedding, Linear
from .norms import make_norm
from .rope import Rope

__all__ = ["Transformer"]


class Transformer(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        h = spec.hidden_size
        self.embed = Embedding(spec.vocab_size, h)
        self.pos_embed = Embedding(spec.max_positions + spec.position_offset, h) if spec.learned_positions else None
        self.type_embed = Embedding(spec.type_vocab_size, h) if spec.type_vocab_size else None
        self.embed_norm = make_norm(spec.norm, h) if spec.embed_norm else None
        self.layers = nn.ModuleList(Block(spec, i) for i in range(spec.num_layers))
        self.final_norm = make_norm(spec.norm, h) if spec.final_norm else None
        has_head = spec.kind == "decoder" and not spec.tie_embeddings
        self.lm_head = Linear(h, spec.vocab_size, bias=False) if has_head else None
        self.ropes = {kind: Rope(spec.rope_of(kind)) for kind in spec.rope_kinds}  # "global" [, "local"]
        # the (rotary table, window) of each layer: one Frame per distinct pair is computed per call
        self.kinds = [(spec.rope_kind(i), spec.window(i)) for i in range(spec.num_layers)]

    # pieces ---------------------------------------------------------------------------------

    def _embed(self, ids: torch.Tensor, start: int | torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings (B, T, H) of ids (B, T) at positions from `start` (an int, or (B,) per row, T == 1)."""
        x = self.embed(ids)  # (B, T, H)
        if self.spec.embed_scale != 1.0:
            x = x * torch.tensor(self.spec.embed_scale, dtype=x.dtype)
        if self.pos_embed is not None and isinstance(start, torch.Tensor):
            x = x + self.pos_embed.weight[start + self.spec.position_offset][:, None]  # (B, 1, H)
        elif self.pos_embed is not None:
            offset = start + self.spec.position_offset
            x = x + self.pos_embed.weight[offset : offset + ids.shape[1]]  # (T, H) broadcast over B
        if self.type_embed is not None:
            types = token_type_ids if token_type_ids is not None else torch.zeros_like(ids)
            x = x + self.type_embed(types)
        return self.embed_norm(x) if self.embed_norm is not None else x

    def _blocks(self, x: torch.Tensor, frames: dict[tuple[str | None, int | None], Frame]) -> torch.Tensor:
        for layer, kind in zip(self.layers, self.kinds):
            x = layer(x, frames[kind])
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head: (B, T, H) -> logits (B, T, V)."""
        if self.final_norm is not None:
            x = self.final_norm(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.embed.weight)  # or tied
        if self.spec.logits_scaling != 1.0:
            logits = logits / self.spec.logits_scaling
        if self.spec.logits_softcap is not None:
            logits = torch.tanh(logits / self.spec.logits_softcap) * self.spec.logits_softcap
        return logits

    def _frame(
        self, x: torch.Tensor, start: int, cache: KVCache | None, mask: torch.Tensor | None
    ) -> dict[tuple[str | None, int | None], Frame]:
        """One Frame per distinct (rotary table, window) of the layers."""
        return {
            (rope, window): make_frame(
                self.spec,
                start=start,
                length=x.shape[1],
                rope=self.ropes[rope] if rope is not None else None,
                window=window,
                dtype=x.dtype,
                device=x.device,
                cache=cache,
                attention_mask=mask,
            )
            for rope, window in dict.fromkeys(self.kinds)
        }

    # entry points ---------------------------------------------------------------------------

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T) from position 0, without a cache (differentiable)."""
        x = self._embed(ids, 0, None)  # (B, T, H)
        return self.head(self._blocks(x, self._frame(x, 0, None, None)))

    def hidden(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last hidden states (B, T, H), final norm applied when the spec has one (encoders: embed)."""
        x = self._embed(ids, 0, token_type_ids)  # (B, T, H)
        x = self._blocks(x, self._frame(x, 0, None, attention_mask))
        return self.final_norm(x) if self.final_norm is not None else x

    def step(self, ids: torch.Tensor, cache: KVCache, *, last_only: bool = True) -> torch.Tensor:
        """Append ids (B, T) to `cache`; logits (B, V) for the last position, or (B, T, V)."""
        start = cache.length
        x = self._embed(ids, start, None)  # (B, T, H)
        x = self._blocks(x, self._frame(x, start, cache, None))
        cache.length = start + ids.shape[1]
        if last_only:
            return self.head(x[:, -1])  # (B, V)
        return self.head(x)  # (B, T, V)

    def step_rows(self, ids: torch.Tensor, cache: RowsCache, rows: Rows) -> torch.Tensor:
        """Append one token per row, ids (R, 1), each at its row's own position; logits (R, V)."""
        x = self._embed(ids, rows.positions, None)  # (R, 1, H)
        frames = {
            (rope, window): make_rows_frame(
                self.spec,
                rows=rows,
                rope=self.ropes[rope] if rope is not None else None,
                window=window,
                dtype=x.dtype,
                device=x.device,
                cache=cache,
            )
            for rope, window in dict.fromkeys(self.kinds)
        }
        return self.head(self._blocks(x, frames)[:, -1])  # (R, V)
