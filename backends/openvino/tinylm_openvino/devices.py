"""OpenVINO devices under tinylm's names, and the properties a model is compiled with.

`TINYLM_DEVICE` / `device=` take OpenVINO's names, listed in lower case as every backend lists its devices
and matched case-insensitively by the core: cpu, gpu (the first GPU; gpu.0, gpu.1, ... where several are
present), npu, and auto (OpenVINO picks, CPU first while the GPU compiles). The core raises
`DeviceUnavailable` listing these when the requested one is absent. This module speaks OpenVINO's own
upper-case spelling; the plugin lowers it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from tinylm.errors import CapabilityError

from .options import BuildOptions

__all__ = ["core", "present", "default", "native", "compile_properties", "check_device", "execution_type"]


@lru_cache(maxsize=1)
def core() -> Any:
    """The process's `openvino.Core` (created once: it loads the device plugins)."""
    from .runtime import openvino

    return openvino().Core()


def present() -> list[str]:
    """Devices OpenVINO sees here, CPU first, then GPUs (with a plain "GPU" alias), NPU, AUTO."""
    found = list(core().available_devices)  # e.g. ["CPU", "GPU.0", "GPU.1", "NPU"]
    names = [d for d in found if d == "CPU"]
    gpus = [d for d in found if d.startswith("GPU")]
    if gpus and "GPU" not in gpus:
        names.append("GPU")  # OpenVINO's name for the first GPU
    names += gpus + [d for d in found if d not in names and not d.startswith("GPU")]
    return [*names, "AUTO"] if names else ["CPU"]


def default() -> str:
    """`present()[0]` without loading every device plugin: "CPU" when the CPU plugin answers. Listing the devices
    loads the GPU and NPU plugins too, which probe for their hardware (0.01 s here, with neither; more where a GPU
    driver is installed), though a load that names no device runs on the CPU."""
    try:
        core().get_property("CPU", "FULL_DEVICE_NAME")
    except RuntimeError:  # no CPU plugin in this OpenVINO build
        return present()[0]
    return "CPU"


def native(device: str) -> list[str]:
    """tinylm's precisions that `device` runs at full speed, from its OPTIMIZATION_CAPABILITIES: fp32 and the int8/
    int4 weight formats (executed in f32) everywhere; fp16 where it lists FP16; bf16 where it lists BF16 and, on a
    CPU, the CPU has AMX's bf16 tiles: with AVX512-BF16 alone (AMD Zen 4) the CPU plugin's bf16 measured no faster
    than f32 on an embedder, and without either it is emulated (docs/choosing-a-backend.md, "Embedders"). A device
    that does not answer (AUTO) gets the ones every device has."""
    try:
        caps = set(core().get_property(device.upper(), "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        caps = set()
    bf16 = "BF16" in caps and (not device.upper().startswith("CPU") or "amx_bf16" in cpu_flags())
    return ["fp32", "int8", "int4"] + (["bf16"] if bf16 else []) + (["fp16"] if "FP16" in caps else [])


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (/proc/cpuinfo on Linux; empty where it cannot tell)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_device(device: str) -> None:
    """NPU compiles static shapes only; the models built here have dynamic batch and sequence lengths."""
    if device.upper().startswith("NPU"):
        raise CapabilityError(
            "device 'NPU' needs static shapes (fixed batch, prompt and KV-cache lengths), and tinylm-openvino "
            "builds dynamic-shape stateful models, which the NPU compiler rejects. "
            "Fix: use device='cpu' or 'gpu' (or 'auto'), or run the model on NPU with openvino-genai's "
            "LLMPipeline, which reshapes an exported model to static prefill/decode shapes."
        )


def execution_type(device: str, wanted: str | None) -> str | None:
    """The INFERENCE_PRECISION_HINT to set: `wanted`, except f16 on a CPU without FP16 arithmetic,
    which falls back to the device's default (bf16 on CPUs with AVX512-BF16/AMX, else f32)."""
    if wanted != "f16" or not device.upper().startswith("CPU"):
        return wanted
    caps = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "f16" if "FP16" in caps else None


def compile_properties(device: str, opts: BuildOptions, num_threads: int, cache_dir: str | None) -> dict[str, Any]:
    """Properties for `compile_model`: latency-oriented, the precision's execution and KV-cache types."""
    props: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if device.upper().startswith(("CPU", "AUTO")):
        props["NUM_STREAMS"] = "1"
        props["INFERENCE_NUM_THREADS"] = str(max(1, int(num_threads)))
    hint = execution_type(device, opts.plan.execution)
    if hint:
        props["INFERENCE_PRECISION_HINT"] = hint
    if opts.kv_cache and device.upper().startswith("CPU"):
        props["KV_CACHE_PRECISION"] = opts.kv_cache
    if cache_dir:
        props["CACHE_DIR"] = cache_dir
    return props
