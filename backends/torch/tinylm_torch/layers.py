"""`Linear` and `Embedding` that skip random initialisation.

tinylm builds modules to receive checkpoint weights, so drawing random values first is wasted time
(about half a second for a 135M model), and building on the `meta` device instead costs a second
of one-off kernel registration. These allocate uninitialised memory; training from scratch calls
`init_weights(model)` explicitly, as nanoGPT does.
"""

from __future__ import annotations

from torch import nn

__all__ = ["Linear", "Embedding", "init_weights"]


class Linear(nn.Linear):
    def reset_parameters(self) -> None:  # weights come from a checkpoint or from init_weights
        pass


class Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


def init_weights(model: nn.Module, *, std: float = 0.02) -> nn.Module:
    """GPT-style initialisation for training from scratch: N(0, std) weights, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model
