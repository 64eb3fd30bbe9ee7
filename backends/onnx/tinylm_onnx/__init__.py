"""tinylm-onnx: the ONNX Runtime backend of tinylm.

The graph is built from a `tinylm.arch.ModelSpec` and the canonical numpy weights alone (never torch),
in composition order:

    graph.py (builder) -> quantize.py -> linear.py -> norms.py -> rope.py -> lowering.py (shared context)
    -> attention.py -> mlp.py -> transformer.py (the whole graph)
    convert.py (`prepare`: build and save; the core measures parity)   options.py (load/convert options)
    runtime.py (sessions)   session.py (the tinylm `Session`, KV cache bound in place)   opening.py (`open`)
    plugin.py (the registered `Backend`)

Importing this package imports neither onnxruntime nor onnx; `prepare` imports both, `open` only onnxruntime.
"""

__all__: list[str] = []
