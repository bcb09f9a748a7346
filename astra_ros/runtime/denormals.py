"""Flush subnormal floats to zero on the calling thread (no torch needed).

A softmax produces tiny probabilities (exp of very negative scores) that become subnormal floats,
and x86 arithmetic on them is many times slower. ONNX Runtime flushes them on its own pool threads
(``session.set_denormal_as_zero``, which also flushes the thread that creates the session), but a
thread that calls ``run`` computes its share of every operator too; this sets the same mode there:
FTZ and DAZ in MXCSR, through glibc's ``fegetmode`` / ``fesetmode``. Elsewhere (AArch64 included:
not measured there) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import threading

import numpy as np

log = logging.getLogger("astra_ros.runtime.denormals")

MXCSR_FTZ_DAZ = (1 << 15) | (1 << 6)  # flush-to-zero, denormals-are-zero

_thread = threading.local()

# numpy computes its float limits once per process, on first use; on a thread that flushes (this
# module's, or the one that created an ONNX Runtime session with ``set_denormal_as_zero``) it would
# warn that the smallest subnormal is zero. Computed here, before any flush.
for _dtype in (np.float32, np.float64):
    np.finfo(_dtype)


class _Mode(ctypes.Structure):
    """glibc's ``femode_t`` on x86-64."""

    _fields_ = [("control_word", ctypes.c_ushort), ("reserved", ctypes.c_ushort), ("mxcsr", ctypes.c_uint)]


def flush_denormals() -> bool:
    """Set flush-to-zero on this thread (once); returns whether it is set."""
    if getattr(_thread, "flushed", None) is None:
        _thread.flushed = _set_mode()
    return _thread.flushed


def _set_mode() -> bool:
    name = ctypes.util.find_library("m")
    libm = ctypes.CDLL(name) if name else None
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if not x86 or libm is None or not hasattr(libm, "fesetmode"):
        log.debug("denormals not flushed on this thread (%s)", platform.machine())
        return False
    mode = _Mode()
    libm.fegetmode(ctypes.byref(mode))
    mode.mxcsr |= MXCSR_FTZ_DAZ
    return libm.fesetmode(ctypes.byref(mode)) == 0
