"""ONNX Runtime backend for tinylm (registered through the `tinylm` entry-point group)."""
