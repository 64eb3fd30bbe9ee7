"""tinylm-torch: the PyTorch (CPU) backend of tinylm.

The model is built from a `tinylm.arch.ModelSpec` alone, in composition order:

    norms.py -> rope.py -> attention.py -> mlp.py -> block.py -> transformer.py
    cache.py (static KV cache, the per-call `Frame`)   weights.py (canonical numpy <-> module)
    session.py (the tinylm `Session`)   quantize.py (int8)   plugin.py (the registered `Backend`)

Importing this package does not import torch; `plugin.TorchBackend.open` does.
Training code builds the same module with `tinylm_torch.weights.build_transformer(spec, weights)`
and calls it as `model(ids) -> logits (B, T, V)`; `toolchain/` is the small-model toolchain on top of it
(`tinylm train/finetune/distill/prune/eval`, added to the CLI by `plugin.register_commands`).
"""

__all__: list[str] = []
