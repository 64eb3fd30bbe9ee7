"""tinylm's benchmark suite. Run each from the repository root as a module (`python -m benchmarks.NAME`):

    peers                the one peer harness: tinylm (through `tinylm bench --json`) against its peers, every
                         backend x precision; writes docs/benchmarks.md, its plot and the per-backend pages
    peers_page           renders those pages from the harness's results
    peer_runs            what runs in each peer's own interpreter (its measuring loop, its converter)
    structured_overhead  structured output's cost per token (docs/structured-output.md)
    serve_load           the server under concurrent streaming clients (docs/server-load.md)
    batch_decode         generate_batch's aggregate decode tokens/s against one after another and against
                         onnxruntime-genai's own batches (docs/batching.md)
    batch_scaling        `tinylm batch` / `tinylm serve` in one process and on Ray (docs/scale-out.md)
    prefix_reuse         held prompt heads: admitting chats and a chat's first token with and without them
                         (docs/batching.md)
    speculative          speculative decoding on the bundled assistant, with the peers' lookup (docs/speculative.md)
    verify_cost          a verifying pass of k tokens in plain decode steps (docs/speculative.md)
    families_quantized   int8/int4 agreement with fp32 per family and backend (docs/families.md)
    ab_commits.sh        two checkouts side by side, interleaved: warm load and decode on onnx/openvino
                         (docs/architecture.md, "Cost of the conversion pipeline")
    toolchain/           the torch toolchain's recipes behind docs/toolchain.md (they use that toolchain)

Any single model: `tinylm bench MODEL`. Measurement goes through tinylm's public API or the `tinylm bench` CLI,
never a backend's modules. One-off experiments are deleted once their answer is in the docs, which keep the
command and the commit it ran at (e.g. "`python benchmarks/onnx_spinning.py ...` at commit 94c2b4d").
"""
