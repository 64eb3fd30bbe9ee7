"""The building blocks, as functions on arrays: norms, linear, activations, rotary, attention.

Each one is the textbook formula; `ModelSpec` (`tinylm.arch.spec`) says which ones a family uses.
Shapes: B batch, T new tokens, S attended tokens, H hidden, nh/nkv query/key-value heads, hd head dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tinylm.arch.spec import Activation, NormSpec

__all__ = ["rms_norm", "layer_norm", "norm", "linear", "ACTIVATIONS", "rotate", "attend"]

# norms ---------------------------------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight, over the last axis."""
    mean_square = np.mean(np.square(x), axis=-1, keepdims=True)  # (..., 1)
    return x / np.sqrt(mean_square + eps) * weight


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * weight (+ bias), over the last axis."""
    centred = x - np.mean(x, axis=-1, keepdims=True)
    y = centred / np.sqrt(np.mean(np.square(centred), axis=-1, keepdims=True) + eps) * weight
    return y + bias if bias is not None else y


def norm(x: np.ndarray, spec: NormSpec, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The norm `spec` describes (weights already hold any `weight_offset`, see `weights.py`)."""
    if spec.kind == "rms":
        return rms_norm(x, weight, spec.eps)
    return layer_norm(x, weight, bias, spec.eps)


# linear and activations ------------------------------------------------------------------------


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (..., in) @ weight.T (+ bias) -> (..., out); weight is (out, in) as `torch.nn.Linear` stores it."""
    flat = x.reshape(-1, x.shape[-1])  # (N, in): one 2-D BLAS call whatever the leading axes
    y = (flat @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
    return y + bias if bias is not None else y


_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf: math.erf per element, exact but slow


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * (0.5 + 0.5 * np.tanh(0.5 * x))  # x * sigmoid(x), without exp overflow for large |x|


#: `ModelSpec.activation` -> its function (a table, not an if/elif chain).
ACTIVATIONS: dict[Activation, Callable[[np.ndarray], np.ndarray]] = {
    "silu": _silu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}

# rotary positions -------------------------------------------------------------------------------


def rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary embedding of x (B, T, heads, hd) with tables (T, rd) from `tinylm.arch.rope.cos_sin`.

    Rotate-half layout: dims i and i + rd/2 form a pair; dims past rd pass through (partial rotary).
    """
    rd = cos.shape[-1]
    half = rd // 2
    rot, rest = x[..., :rd], x[..., rd:]
    turned = np.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)  # rotate_half(rot)
    c, s = cos[:, None, :], sin[:, None, :]  # (T, 1, rd): broadcast over batch and heads
    return np.concatenate([rot * c + turned * s, rest], axis=-1)


# attention ---------------------------------------------------------------------------------------


def attend(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, scale: float, softcap: float | None = None
) -> np.ndarray:
    """softmax(q k^T * scale, where mask) v, with grouped key-value heads.

    q (B, nh, T, hd); k, v (B, nkv, S, hd); mask bool, broadcastable to (B, nh, T, S), True where a
    query may attend. Query head h reads key-value head h // (nh / nkv), so the heads of one group are
    folded into the query axis instead of repeating k and v. Returns (B, nh, T, hd).
    """
    B, nh, T, hd = q.shape
    nkv, S = k.shape[1], k.shape[2]
    grouped = q.reshape(B, nkv, nh // nkv * T, hd)  # (B, nkv, g*T, hd)
    scores = (grouped @ k.swapaxes(-1, -2)).reshape(B, nh, T, S) * scale  # (B, nh, T, S)
    if softcap is not None:  # Gemma 2: cap * tanh(scores / cap), before the mask
        scores = np.tanh(scores / softcap) * softcap
    scores = np.where(mask, scores, np.finfo(scores.dtype).min)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)  # (B, nh, T, S)
    out = weights.reshape(B, nkv, nh // nkv * T, S) @ v  # (B, nkv, g*T, hd)
    return out.reshape(B, nh, T, hd)
