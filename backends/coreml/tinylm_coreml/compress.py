"""Weight precisions, applied to the converted fp16 model with `coremltools.optimize.coreml`.

    fp16    fp16 weights, fp16 compute (the default)
    int8    int8 linear weights, symmetric, one scale per output channel            (iOS 16+)
    int4    int4 linear weights, symmetric, one scale per block of 32 inputs        (iOS 18+), or with
            the option int4="palettize": a 16-entry lookup table per group of 16 output channels,
            fitted by a 1-D k-means in numpy (no scikit-learn needed)                (iOS 18+)

Every matrix above 2048 elements is compressed (linear layers, embeddings, the LM head); the rotary
cos/sin tables are left in fp16 (they are positions, not weights, and int8 would shift every angle).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compress", "target_for", "kmeans_lut"]

_BLOCK = 32
_GROUP = 16


def target_for(precision: str, stateful: bool) -> str:
    """The lowest deployment target the program and its compressed weights need."""
    return "iOS18" if stateful or precision == "int4" else "iOS16"


def kmeans_lut(weight: np.ndarray, nbits: int = 4, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A 2**nbits-entry lookup table for `weight` and each element's index (uint8, flattened).

    Lloyd's k-means in one dimension over the distinct values weighted by their counts (fp16 weights have
    at most 65536 of them), started from quantiles: deterministic and cheap for any tensor size."""
    flat = weight.reshape(-1)
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    k = 1 << nbits
    v = values.astype(np.float64)
    centers = np.quantile(np.repeat(v, counts), (np.arange(k) + 0.5) / k) if len(v) > k else np.resize(v, k)
    for _ in range(iterations):
        edges = (centers[1:] + centers[:-1]) / 2
        cluster = np.searchsorted(edges, v)  # (distinct,) nearest center (centers stay sorted)
        mass = np.bincount(cluster, weights=counts, minlength=k)
        total = np.bincount(cluster, weights=counts * v, minlength=k)
        centers = np.where(mass > 0, total / np.maximum(mass, 1), centers)
        centers.sort()
    cluster = np.searchsorted((centers[1:] + centers[:-1]) / 2, v)
    return centers.astype(weight.dtype), cluster[inverse.reshape(-1)].astype(np.uint8)


def _rotary_tables(model: Any) -> list[str]:
    """Names of the rotary tables' const ops in the converted program (read from its public spec)."""
    main = model.get_spec().mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    return [op.outputs[0].name for op in block.operations if op.type == "const" and "rope_" in op.outputs[0].name]


def _config(precision: str, int4: str, keep: list[str]) -> Any:
    import coremltools.optimize.coreml as cto

    if precision == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    elif int4 == "block":
        op = cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=_BLOCK
        )
    else:
        op = cto.OpPalettizerConfig(
            mode="custom", lut_function=kmeans_lut, granularity="per_grouped_channel", group_size=_GROUP
        )
    return cto.OptimizationConfig(global_config=op, op_name_configs=dict.fromkeys(keep))


def compress(model: Any, precision: str, int4: str) -> tuple[Any, dict[str, Any]]:
    """The model with its weights at `precision` (`int4`: the int4 method, see `options.INT4_METHODS`), and a
    description of what was done."""
    if precision == "fp16":
        return model, {"weights": "fp16"}
    import coremltools.optimize.coreml as cto

    config = _config(precision, int4, _rotary_tables(model))
    if precision == "int8":
        return cto.linear_quantize_weights(model, config=config), {
            "weights": "int8",
            "method": "linear_symmetric per output channel",
        }
    if int4 == "block":
        return cto.linear_quantize_weights(model, config=config), {
            "weights": "int4",
            "method": f"linear_symmetric per block of {_BLOCK} inputs",
        }
    return cto.palettize_weights(model, config=config), {
        "weights": "int4",
        "method": f"4-bit palettization, k-means lookup table per {_GROUP} output channels",
    }
