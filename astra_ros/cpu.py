"""What this CPU can do, read at run time (the project's machines change from week to week). Torch-free.

``cpu_summary()`` names the CPU and its class for reduced precision: ``amx`` (AMX tiles with bf16,
recent Intel Xeon), ``avx512_bf16`` (AVX-512 with BF16 dot products, e.g. AMD EPYC Zen 4), or
``none`` (AVX2 or plain AVX-512: bf16 would be emulated, slower than fp32).
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The ``flags`` of /proc/cpuinfo (empty where it does not exist, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_class(flags: frozenset[str] | None = None) -> str:
    """``amx``, ``avx512_bf16`` or ``none`` (see the module docstring)."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_tile", "amx_bf16"} <= flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "none"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_summary() -> dict[str, Any]:
    flags = cpu_flags()
    return {
        "model": cpu_model(),
        "machine": platform.machine(),
        "cores": usable_cores(),
        "bf16": bf16_class(flags),
        "flags": [f for f in FLAGS_OF_INTEREST if f in flags],
    }
