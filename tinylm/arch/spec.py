"""The backend-neutral description of a model: what every backend lowers to its runtime.

A `ModelSpec` is read once from `config.json` by the family's module (`tinylm.arch.families`).
It describes a transformer as a stack of identical blocks built from a handful of concepts:

    embed -> [embed_norm] -> N x block -> [final_norm] -> lm_head        (decoder)
    embed (+ positions + token types) -> embed_norm -> N x block [-> final_norm]   (encoder)

    pre-norm block:   x = x + r * attn(norm(x));  x = x + r * mlp(norm(x))   (r = residual_scale, Granite)
    post-norm block:  x = norm(x + attn(x));  x = norm(x + mlp(x))        (BERT)
    sandwich block:   x = x + norm'(attn(norm(x)));  x = x + norm'(mlp(norm(x)))   (Gemma 2, Gemma 3)
    output block:     x = x + norm'(attn(x));  x = x + norm'(mlp(x))      (OLMo 2)

    hybrid block:     x = x + mixer(norm(x));  x = x + mlp(norm(x))      mixer: attention or conv (LFM2)
    a layer in `no_attn_norm_layers` feeds attention x itself (ModernBERT's layer 0: the embedding norm's output)

    logits = lm_head(x) / logits_scaling                                    (Granite)
    logits = cap * tanh(logits / cap)        cap = logits_softcap             (Gemma 2)
    attention scores s = q.k * scale -> cap * tanh(s / cap), cap = attn_softcap, before the mask (Gemma 2)

Each layer's mixer (`ModelSpec.mixer(i)`: "attention" or "conv") says which state it keeps between calls
(`ModelSpec.states(i)`): attention keeps keys and values (`KVState`, growing with the sequence), a gated short
convolution keeps its last kernel - 1 inputs (`ConvState`, a fixed size). Backends lower each state kind they
hold and declare them (`Capabilities.states`); a model needing a kind a backend lacks is refused at load. The next
hybrid (a Mamba-style SSM) adds a mixer whose states are a `ConvState` and an SSM state beside it.

Weights use the canonical names of `tinylm.arch.layout` whatever the checkpoint called them; the
family's `sanitize` maps checkpoint names there (fused qkv split, GPT-2 Conv1D transposed, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

__all__ = [
    "ModelSpec",
    "NormSpec",
    "RopeSpec",
    "PoolingSpec",
    "ConvSpec",
    "KVState",
    "ConvState",
    "LayerState",
    "Activation",
    "Mixer",
]

Activation = Literal["silu", "gelu", "gelu_tanh", "relu"]
Mixer = Literal["attention", "conv"]  # what mixes positions in a layer (a Mamba-style "ssm" would join here)


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
class ConvSpec:
    """A gated short causal convolution mixer (LFM2), on x (B, T, H):

        b, c, u = split(in(x), 3)                 in: (3H, H) rows b | c | u  (+ bias)
        y = out(c * conv(b * u))                   conv: depthwise causal over time, kernel (H, kernel) (+ bias)

    Its state between calls is the last kernel - 1 inputs of `conv` (`ConvState`); zeros at the start."""

    kernel: int
    bias: bool = False


@dataclass(frozen=True)
class KVState:
    """Attention's state: keys and values, (heads, head_dim) each per cached position (grows with the sequence)."""

    heads: int
    head_dim: int
    kind: ClassVar[str] = "kv"


@dataclass(frozen=True)
class ConvState:
    """A causal convolution's state: its last `width` = kernel - 1 inputs, (channels, width) per sequence (fixed
    size). After a call over T tokens it holds the inputs at positions [T - width, T) (zeros before position 0);
    reset() zeroes it."""

    channels: int
    width: int
    kind: ClassVar[str] = "conv"


LayerState = KVState | ConvState


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
    attn_softcap: float | None = None
    logits_softcap: float | None = None
    sliding_window: int | None = None
    layer_windows: tuple[int | None, ...] = ()
    nope_layers: tuple[int, ...] = ()
    no_attn_norm_layers: tuple[int, ...] = ()
    local_rope: RopeSpec | None = None
    mixers: tuple[Mixer, ...] = ()  # per layer; () when every layer is attention
    conv: ConvSpec | None = None  # the conv mixers' shape (LFM2)
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    pooling: PoolingSpec | None = None
    source_dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
        if self.layer_windows and (len(self.layer_windows) != self.num_layers or self.sliding_window is not None):
            raise ValueError("layer_windows needs one entry per layer, and sliding_window=None (it is per layer)")
        if self.no_attn_norm_layers and self.norm_placement not in ("pre", "sandwich"):
            raise ValueError("no_attn_norm_layers applies to blocks with input norms (pre or sandwich placement)")
        if self.mixers and len(self.mixers) != self.num_layers:
            raise ValueError(f"mixers has {len(self.mixers)} entries for {self.num_layers} layers")
        if ("conv" in self.mixers) != (self.conv is not None):
            raise ValueError("conv (the ConvSpec) is set exactly when some layer's mixer is 'conv'")

    # per-layer mixers and the state each keeps between calls (the KV cache is one kind among them)

    def mixer(self, layer: int) -> Mixer:
        """What mixes positions in `layer`: "attention" (keys and values cached) or "conv" (LFM2's short conv)."""
        return self.mixers[layer] if self.mixers else "attention"

    def states(self, layer: int) -> tuple[LayerState, ...]:
        """The state `layer` keeps between forward calls, one entry per kind (a Mamba layer would keep two)."""
        if self.mixer(layer) == "conv":
            assert self.conv is not None
            return (ConvState(channels=self.hidden_size, width=self.conv.kernel - 1),)
        return (KVState(heads=self.num_kv_heads, head_dim=self.head_dim),)

    @property
    def state_kinds(self) -> tuple[str, ...]:
        """The state kinds some layer keeps ("kv", "conv"), in a fixed order: what a backend must hold."""
        used = {st.kind for i in range(self.num_layers) for st in self.states(i)}
        return tuple(k for k in ("kv", "conv") if k in used)

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """The layers whose mixer is attention (every layer but LFM2's conv ones); their KV slots in this order."""
        return tuple(i for i in range(self.num_layers) if self.mixer(i) == "attention")

    @property
    def conv_layers(self) -> tuple[int, ...]:
        """The layers whose mixer is a short convolution; their conv-state slots in this order."""
        return tuple(i for i in range(self.num_layers) if self.mixer(i) == "conv")

    # per-layer attention: a model mixes layers with and without a sliding window, with and without rotary
    # positions, and (Gemma 3) with a rotary base of their own on the sliding layers.

    def window(self, layer: int) -> int | None:
        """The sliding window of `layer`, or None. Decoders: a query at q sees keys k with q - window < k <= q.
        Encoders: the window's total width, centred on the query: it sees keys with |q - k| <= window // 2
        (ModernBERT's `local_attention`)."""
        return self.layer_windows[layer] if self.layer_windows else self.sliding_window

    def has_attn_norm(self, layer: int) -> bool:
        """Whether `layer` has an `attn_norm` (none in output-norm blocks, nor on `no_attn_norm_layers`)."""
        return self.norm_placement != "output" and layer not in self.no_attn_norm_layers

    def rope_kind(self, layer: int) -> Literal["global", "local"] | None:
        """Which rotary table `layer` uses: `rope` ("global"), `local_rope` ("local": the sliding layers of a
        model that has one), or None (no rotary positions: NoPE layers, learned positions, conv layers)."""
        if self.rope is None or layer in self.nope_layers or self.mixer(layer) != "attention":
            return None
        return "local" if self.local_rope is not None and self.window(layer) is not None else "global"

    def rope_of(self, kind: Literal["global", "local"]) -> RopeSpec:
        """The rotary spec behind a `rope_kind`."""
        rope = self.local_rope if kind == "local" else self.rope
        assert rope is not None
        return rope

    def with_layers(self, keep: Sequence[int]) -> ModelSpec:
        """The spec of the layers `keep` (in that order, renumbered from 0), their per-layer attributes kept."""
        windows = tuple(self.layer_windows[i] for i in keep) if self.layer_windows else ()
        return replace(
            self,
            num_layers=len(keep),
            layer_windows=windows if any(w is not None for w in windows) else (),
            nope_layers=tuple(new for new, old in enumerate(keep) if old in self.nope_layers),
            no_attn_norm_layers=tuple(new for new, old in enumerate(keep) if old in self.no_attn_norm_layers),
            mixers=tuple(self.mixers[i] for i in keep) if self.mixers else (),
            conv=self.conv if any(self.mixer(i) == "conv" for i in keep) else None,
        )

    @property
    def rope_kinds(self) -> tuple[Literal["global", "local"], ...]:
        """The rotary tables some layer uses, in a fixed order."""
        used = {self.rope_kind(i) for i in range(self.num_layers)}
        return tuple(k for k in ("global", "local") if k in used)  # type: ignore[return-value]

    @property
    def windows(self) -> tuple[int | None, ...]:
        """The distinct windows of the layers (None: full attention), in layer order."""
        return tuple(dict.fromkeys(self.window(i) for i in range(self.num_layers)))

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
