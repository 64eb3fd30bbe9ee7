"""The architecture description: `ModelSpec`, the families, canonical weights, rotary tables."""

from .families import FAMILIES, Family, family_for
from .layout import check_weights, expected_shapes
from .spec import ModelSpec, NormSpec, PoolingSpec, RopeSpec

__all__ = [
    "FAMILIES",
    "Family",
    "family_for",
    "check_weights",
    "expected_shapes",
    "ModelSpec",
    "NormSpec",
    "PoolingSpec",
    "RopeSpec",
]
