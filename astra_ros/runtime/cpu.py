"""What this CPU computes natively, read at run time, and the one table ``backend: auto`` follows on
a machine without a GPU runtime. Torch-free.

The CPU class comes from the instruction-set flags the kernel reports (``/proc/cpuinfo`` on Linux):

- ``amx``: AMX tiles with bf16 (Intel Sapphire Rapids and later);
- ``avx512_bf16``: AVX-512 with bf16 dot products (AMD Zen 4 and later, Intel Cooper Lake);
- ``avx512``: AVX-512 without bf16 arithmetic;
- ``avx2``: AVX2 only;
- ``other``: anything else, or flags that cannot be read (other systems, other architectures).

``AUTO_CPU`` lists, per class, the (backend, precision) choices fastest first, each measured no
worse than fp32 within the quality tolerance of docs/evaluation.md (what was measured on which
class, and what was not: docs/runtimes.md). ``load_backend(..., backend="auto")`` takes the first
whose runtime is installed and whose graph the model has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CPU_CLASSES = ("amx", "avx512_bf16", "avx512", "avx2", "other")

# fastest first: (backend, precision); the last entry of each is ONNX Runtime fp32, which needs nothing
AUTO_CPU: dict[str, tuple[tuple[str, str], ...]] = {
    "amx": (("openvino", "bf16"), ("openvino", "fp32"), ("onnxruntime", "fp32")),
    "avx512_bf16": (("openvino", "bf16"), ("openvino", "fp32"), ("onnxruntime", "fp32")),
    "avx512": (("openvino", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "fp32")),
    "avx2": (("openvino", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "fp32")),
    "other": (("onnxruntime", "fp32"),),
}


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set flags that decide the CPU class (all False when unknown)."""

    avx2: bool = False
    avx512: bool = False  # AVX-512 foundation
    avx512_bf16: bool = False
    amx_bf16: bool = False  # AMX tiles with bf16

    @classmethod
    def from_flags(cls, flags: set[str]) -> CpuFeatures:
        return cls(
            avx2="avx2" in flags,
            avx512="avx512f" in flags,
            avx512_bf16="avx512_bf16" in flags,
            amx_bf16={"amx_bf16", "amx_tile"} <= flags,
        )

    @property
    def cpu_class(self) -> str:
        if self.amx_bf16:
            return "amx"
        if self.avx512_bf16:
            return "avx512_bf16"
        if self.avx512:
            return "avx512"
        return "avx2" if self.avx2 else "other"

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (without it bf16 is emulated, slower than fp32)."""
        return self.amx_bf16 or self.avx512_bf16


def read_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The ``flags`` of the first processor in ``cpuinfo`` (empty when it cannot be read)."""
    for line in _cpuinfo_lines(cpuinfo):
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's features (read once per process)."""
    return CpuFeatures.from_flags(read_flags())


def cpu_summary() -> dict[str, object]:
    """The machine in words, for benchmark records: model name, usable cores, class and bf16."""
    model = next(
        (
            line.partition(":")[2].strip()
            for line in _cpuinfo_lines()
            if line.partition(":")[0].strip() == "model name"
        ),
        "unknown CPU",
    )
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    features = cpu_features()
    return {"model": model, "cores": cores, "class": features.cpu_class, "native_bf16": features.native_bf16}


def _cpuinfo_lines(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    try:
        return cpuinfo.read_text().splitlines()
    except OSError:
        return []
