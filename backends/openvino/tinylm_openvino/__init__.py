"""tinylm-openvino: the OpenVINO backend of tinylm.

The model is built with OpenVINO's opset API from a `tinylm.arch.ModelSpec` and the canonical numpy weights
alone (never torch), as a stateful model: each layer's keys and values live in OpenVINO state
(ReadValue -> Gather(beam_idx) -> Concat -> Assign, the pattern the CPU plugin fuses into its own
KV-cache attention), not in Python. Modules, in composition order:

    graph.py (constants, names) -> compress.py (fp16/int8/int4 weights) -> layers.py (linear, norms, rope,
    activations) -> attention.py -> transformer.py (the whole model)
    options.py (load/convert options)  devices.py (device names, compile properties)
    convert.py (`prepare`: build and save; the core measures parity)  session.py (the tinylm `Session`)
    opening.py (`open`: read + compile)  plugin.py (the registered `Backend`)

Importing this package imports no openvino; `devices()`, `prepare` and `open` do.
"""

__all__: list[str] = []
