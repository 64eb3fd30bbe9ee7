"""The backend-neutral description of a model: what every backend lowers to its runtime.

A `ModelSpec` is read once from `config.json` by the family's module (`tinylm.arch.families`).
It describes a transformer as a stack of identical blocks built from a handful of concepts:

    embed -> [embed_norm] -> N x block -> [final_norm] -> lm_head        (decoder)
    embed (+ positions + token types) -> embed_norm -> N x block          (encoder)

    pre-norm block:   x = x + r * attn(norm(x));  x = x + r * mlp(norm(x))   (r = residual_scale, Granite)
    post-norm block:  x = norm(x + attn(x));  x = norm(x + mlp(x))        (BERT)
    sandwich block:   x = x + norm'(attn(norm(x)));  x = x + norm'(mlp(norm(x)))   (Gemma 2, Gemma 3)
    output block:     x = x + norm'(attn(x));  x = x + norm'(mlp(x))      (OLMo 2)

    logits = lm_head(x) / logits_scaling                                    (Granite)

Weights use the canonical names of `tinylm.arch.layout` whatever the checkpoint called them; the
family's `sanitize` maps checkpoint names there (fused qkv split, GPT-2 Conv1D transposed, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ModelSpec", "NormSpec", "RopeSpec", "PoolingSpec", "Activation"]

Activation = Literal["silu", "gelu", "gelu_tanh", "relu"]


@dataclass(frozen=True, kw_only=True)
class NormSpec:
    """A normalisation layer: `rms` (x / rms(x) * w) or `layer` (mean/var, w and b).

    `weight_offset` is added to the weight before use (Gemma stores `w - 1`).
    """

    kind: Literal["rms", "layer"]
    eps: float
    bias: bool = False
    weight_offset: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RopeSpec:
    """Rotary position embedding, applied to the first `rotary_dim` dims of each head
    in the "rotate half" layout (pairs (i, i + rotary_dim/2)).

    `scaling` is the checkpoint's `rope_scaling` dict (normalised: `rope_type` key), or None.
    `tinylm.arch.rope` turns it into frequencies; backends only consume cos/sin tables.
    """

    theta: float
    rotary_dim: int
    max_positions: int
    scaling: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class PoolingSpec:
    """How an encoder turns token states into one sentence vector (sentence-transformers)."""

    mode: Literal["mean", "cls", "max", "last"] = "mean"
    normalize: bool = True


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Everything a backend needs to know to build and run one model.

    Shapes: H = hidden_size, nh = num_heads, nkv = num_kv_heads, hd = head_dim,
    I = intermediate_size, V = vocab_size.
    """

    family: str
    kind: Literal["decoder", "encoder"]
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_positions: int
    norm: NormSpec
    norm_placement: Literal["pre", "post", "sandwich", "output"] = "pre"
    activation: Activation = "silu"
    gated_mlp: bool = True
    mlp_bias: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: bool = False
    qk_norm_over: Literal["head", "all"] = "head"
    rope: RopeSpec | None = None
    learned_positions: bool = False
    position_offset: int = 0
    type_vocab_size: int = 0
    embed_scale: float = 1.0
    embed_norm: bool = False
    final_norm: bool = True
    tie_embeddings: bool = False
    attn_scale: float | None = None
    residual_scale: float = 1.0
    logits_scaling: float = 1.0
    sliding_window: int | None = None
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    pooling: PoolingSpec | None = None
    source_dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")

    @property
    def causal(self) -> bool:
        """Decoders attend to the past only; encoders attend both ways."""
        return self.kind == "decoder"

    @property
    def input_norms(self) -> bool:
        """Whether each sublayer normalises its input (`attn_norm`, `mlp_norm` before attention and MLP)."""
        return self.norm_placement in ("pre", "sandwich")

    @property
    def output_norms(self) -> bool:
        """Whether each sublayer's output is normalised before the residual add (`attn_post_norm`,
        `mlp_post_norm`)."""
        return self.norm_placement in ("sandwich", "output")

    @property
    def scale(self) -> float:
        """The factor applied to q·k before softmax."""
        return self.attn_scale if self.attn_scale is not None else self.head_dim**-0.5

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (used in cache keys and `tinylm info`)."""
        from dataclasses import asdict

        return asdict(self)
