"""tinylm-numpy-example: a complete tinylm backend in plain numpy, written as a template for plugin authors.

    plugin.py       the `Backend` object and the `register_backends` hook (what tinylm discovers)
    session.py      the `Session`: input checks, the KV cache's lifetime, forward and embed
    transformer.py  the model, composed from the `ModelSpec`: embeddings -> blocks -> head
    layers.py       the building blocks: norms, linear, activations, rotary, grouped-query attention
    cache.py        the KV cache and the causal (sliding-window) mask
    weights.py      canonical checkpoint tensors -> the arrays the layers use

Nothing here is imported by `import tinylm`; tinylm imports `tinylm_numpy.plugin` the first time it
needs its backend registry, and `plugin.py` imports the rest only when a model is opened.
"""
