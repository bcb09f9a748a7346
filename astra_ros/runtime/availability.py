"""Which optional runtimes this machine can import. Torch-free; imports nothing of astra_ros."""

from __future__ import annotations

import importlib.util


def tensorrt_available() -> bool:
    """True when ``import tensorrt`` works (the bindings alone fail without libnvinfer)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt  # noqa: F401
    except Exception:  # ImportError, OSError from a missing libnvinfer, ...
        return False
    return True


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None
