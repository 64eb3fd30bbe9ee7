"""The whole model, composed from a `ModelSpec` and its canonical weights (read top-down):

    embed (* embed_scale) (+ positions + token types) -> [embed_norm] -> N x block -> [final_norm] -> lm_head

    pre-norm block:   x = x + r * attn(attn_norm(x));  x = x + r * mlp(mlp_norm(x))   (r: residual_scale)
    post-norm block:  x = attn_norm(x + attn(x));  x = mlp_norm(x + mlp(x))      (BERT)
    sandwich/output:  the sublayers' outputs normalised (attn_post_norm, mlp_post_norm) before the add,
                      with (sandwich) or without (output) the input norms

Two ways in: `step` (decoders: appends to a `KVCache`, returns logits) and `hidden` (encoders: the
last hidden states of a padded batch, no cache). Everything a family varies is read from the spec;
nothing here compares a family's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tinylm.arch.rope import cos_sin, switch_length
from tinylm.arch.spec import ModelSpec

from .cache import KVCache, causal_mask
from .layers import ACTIVATIONS, attend, linear, norm, rms_norm, rotate

__all__ = ["Frame", "Transformer"]


@dataclass(frozen=True)
class Frame:
    """What every layer needs for one call, computed once: positions [start, start + T), the rotary
    tables (T, rd) or None, the attention mask (bool, broadcastable to (B, nh, T, S)), the cache or None."""

    start: int
    cos: np.ndarray | None
    sin: np.ndarray | None
    mask: np.ndarray
    cache: KVCache | None = None


class Transformer:
    """A decoder or an encoder described by `spec`, over `weights` with canonical names (see `weights.py`)."""

    def __init__(self, spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> None:
        self.spec = spec
        self.w = weights

    # entry points ---------------------------------------------------------------------------------

    def step(self, ids: np.ndarray, cache: KVCache, *, last_only: bool = True) -> np.ndarray:
        """Append ids (B, T) to `cache`; float32 logits (B, V) for the last position, or (B, T, V)."""
        start, end = cache.length, cache.length + ids.shape[1]
        frames = [
            Frame(
                start,
                *self._rope(start, end, self.spec.rope_kind(i)),
                causal_mask(start, end, self.spec.window(i)),
                cache,
            )
            for i in range(self.spec.num_layers)
        ]  # each layer's rotary table (or none) and sliding window (or none)
        x = self._blocks(self._embed(ids, start, None), frames)  # (B, T, H)
        cache.commit(end)  # only now: a call that raised leaves the cache as it was
        if last_only:
            return self._head(x[:, -1])  # (B, V)
        return self._head(x)  # (B, T, V)

    def hidden(self, ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """Last hidden states (B, T, H) of a padded batch; padding keys are masked out."""
        mask = attention_mask.astype(bool)[:, None, None, :]  # (B, 1, 1, S): every query sees every real key
        frames = [
            Frame(0, *self._rope(0, ids.shape[1], self.spec.rope_kind(i)), mask) for i in range(self.spec.num_layers)
        ]
        x = self._blocks(self._embed(ids, 0, token_type_ids), frames)  # (B, T, H)
        return self._norm(x, "final_norm") if self.spec.final_norm else x

    # pieces ---------------------------------------------------------------------------------------

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return norm(x, self.spec.norm, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"))

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return linear(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"))

    def _rope(self, start: int, end: int, kind: str | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """cos, sin (T, rd) for positions [start, end) from the `kind` table (`ModelSpec.rope_kind`), with the
        checkpoint's scaling (tinylm.arch.rope); a sequence longer than longrope's switch length reads the long
        table at every position."""
        if kind is None:
            return None, None
        rope = self.spec.rope_of(kind)  # type: ignore[arg-type]
        switch = switch_length(rope)
        return cos_sin(rope, np.arange(start, end), long=switch is not None and end > switch)

    def _embed(self, ids: np.ndarray, start: int, token_type_ids: np.ndarray | None) -> np.ndarray:
        s, w = self.spec, self.w
        x = w["embed.weight"][ids]  # (B, T, H)
        if s.embed_scale != 1.0:
            x = x * np.float32(s.embed_scale)  # rounded to float32 first, as the checkpoints' own code does
        if s.learned_positions:
            first = start + s.position_offset
            x = x + w["pos_embed.weight"][first : first + ids.shape[1]]  # (T, H) broadcast over B
        if s.type_vocab_size:
            types = token_type_ids if token_type_ids is not None else np.zeros_like(ids)
            x = x + w["type_embed.weight"][types]  # (B, T, H)
        return self._norm(x, "embed_norm") if s.embed_norm else x

    def _blocks(self, x: np.ndarray, frames: list[Frame]) -> np.ndarray:
        for i, frame in enumerate(frames):
            x = self._block(x, i, frame)
        return x

    def _block(self, x: np.ndarray, i: int, frame: Frame) -> np.ndarray:
        p = f"layers.{i}"
        if self.spec.norm_placement == "post":
            x = self._norm(x + self._attention(x, i, frame), f"{p}.attn_norm")
            return self._norm(x + self._mlp(x, i), f"{p}.mlp_norm")
        mix = self._conv if self.spec.mixer(i) == "conv" else self._attention
        x = x + self._out(mix(self._in(x, f"{p}.attn_norm"), i, frame), f"{p}.attn_post_norm")
        return x + self._out(self._mlp(self._in(x, f"{p}.mlp_norm"), i), f"{p}.mlp_post_norm")

    def _in(self, x: np.ndarray, name: str) -> np.ndarray:
        """A sublayer's input: normalised, unless the spec norms only the outputs (OLMo 2)."""
        return self._norm(x, name) if self.spec.input_norms else x

    def _out(self, y: np.ndarray, name: str) -> np.ndarray:
        """A sublayer's output as the residual adds it: normalised where the spec says, times residual_scale."""
        y = self._norm(y, name) if self.spec.output_norms else y
        return y * np.float32(self.spec.residual_scale) if self.spec.residual_scale != 1.0 else y

    def _attention(self, x: np.ndarray, i: int, frame: Frame) -> np.ndarray:
        s, p = self.spec, f"layers.{i}.attn"
        B, T, _ = x.shape
        q, k = self._linear(x, f"{p}.q"), self._linear(x, f"{p}.k")  # (B, T, nh*hd), (B, T, nkv*hd)
        whole = s.qk_norm and s.qk_norm_over == "all"
        if whole:  # OLMo 2: an RMS norm over the whole projection
            q = rms_norm(q, self.w[f"{p}.q_norm.weight"], s.norm.eps)
            k = rms_norm(k, self.w[f"{p}.k_norm.weight"], s.norm.eps)
        q = q.reshape(B, T, s.num_heads, s.head_dim)  # (B, T, nh, hd)
        k = k.reshape(B, T, s.num_kv_heads, s.head_dim)  # (B, T, nkv, hd)
        v = self._linear(x, f"{p}.v").reshape(B, T, s.num_kv_heads, s.head_dim)  # (B, T, nkv, hd)
        if s.qk_norm and not whole:  # Qwen3: an RMS norm over each head, before rotary
            q = rms_norm(q, self.w[f"{p}.q_norm.weight"], s.norm.eps)
            k = rms_norm(k, self.w[f"{p}.k_norm.weight"], s.norm.eps)
        if frame.cos is not None and frame.sin is not None:
            q, k = rotate(q, frame.cos, frame.sin), rotate(k, frame.cos, frame.sin)
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, heads, T, hd)
        if frame.cache is not None:
            k, v = frame.cache.store(i, k, v, frame.start)  # (B, nkv, S, hd): everything so far
        y = attend(q, k, v, frame.mask, s.scale, s.attn_softcap)  # (B, nh, T, hd)
        return self._linear(y.transpose(0, 2, 1, 3).reshape(B, T, s.q_size), f"{p}.o")  # (B, T, H)

    def _conv(self, x: np.ndarray, i: int, frame: Frame) -> np.ndarray:
        """LFM2's gated short convolution: out(c * conv(b * u)), b, c, u = split(in(x)), causal over time."""
        p, B, T, H = f"layers.{i}.conv", *x.shape
        b, c, u = np.split(self._linear(x, f"{p}.in"), 3, axis=-1)  # (B, T, H) each
        bu = (b * u).transpose(0, 2, 1)  # (B, H, T)
        kernel = self.w[f"{p}.kernel.weight"]  # (H, K)
        K = kernel.shape[1]
        if frame.cache is not None:
            window = frame.cache.conv_window(i, bu)  # (B, H, K - 1 + T): the cached inputs first
        else:
            window = np.concatenate([np.zeros((B, H, K - 1), bu.dtype), bu], axis=-1)
        y = sum(window[:, :, j : j + T] * kernel[:, j, None] for j in range(K))  # (B, H, T)
        if f"{p}.kernel.bias" in self.w:
            y = y + self.w[f"{p}.kernel.bias"][:, None]
        return self._linear(c * y.transpose(0, 2, 1), f"{p}.out")  # (B, T, H)

    def _mlp(self, x: np.ndarray, i: int) -> np.ndarray:
        p, act = f"layers.{i}.mlp", ACTIVATIONS[self.spec.activation]
        if self.spec.gated_mlp:
            h = act(self._linear(x, f"{p}.gate")) * self._linear(x, f"{p}.up")  # (B, T, I)
        else:
            h = act(self._linear(x, f"{p}.up"))  # (B, T, I)
        return self._linear(h, f"{p}.down")  # (B, T, H)

    def _head(self, x: np.ndarray) -> np.ndarray:
        """Final norm and LM head: (..., H) -> float32 logits (..., V); tied heads reuse the embedding."""
        if self.spec.final_norm:
            x = self._norm(x, "final_norm")
        head = self.w["embed.weight"] if self.spec.tie_embeddings else self.w["lm_head.weight"]  # (V, H)
        logits = linear(x, head)
        if self.spec.logits_scaling != 1.0:
            logits = logits / np.float32(self.spec.logits_scaling)
        if self.spec.logits_softcap is not None:
            logits = np.tanh(logits / self.spec.logits_softcap) * self.spec.logits_softcap
        return np.ascontiguousarray(logits, dtype=np.float32)
