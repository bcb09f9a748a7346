"""``load_backend``: one call from a model file to a ready WorldModelBackend. Torch-free at import.

=============  ==========================================================================
model_path     backends
=============  ==========================================================================
``*.pt``       torch (``auto`` = torch); onnxruntime/tensorrt need ``astra-export`` first
``*.onnx``     ``auto``: tensorrt (engine from the cache) > onnxruntime-gpu > the CPU table
               (``runtime.cpu.AUTO_CPU``: by CPU class, e.g. openvino bf16 on AVX512-BF16/AMX);
               openvino, onnxruntime; needs its sidecar (``<name>.json`` or ``model.json`` naming
               it), sha256-checked
``*.engine``   tensorrt (sidecar ``<name>.engine.json`` from astra-build-engine)
``copy_last``  the model-free CopyLastBackend
=============  ==========================================================================
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from astra_ros.runtime import availability
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.sidecar import ModelLoadError, OnnxModel, load_onnx_model

__all__ = ["BACKENDS", "ModelLoadError", "load_backend"]

log = logging.getLogger("astra_ros.runtime.loader")

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt", "copy_last")
OPTIONS = (
    "steps",
    "context_noise",
    "guidance_scale",
    "seed",
    "engine_cache_dir",
    "precision",
    "max_history",
    "threads",
    "device",
)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ENGINE_SUFFIXES = (".engine", ".plan")


def _sampler_options(options: dict[str, Any]) -> dict[str, Any]:
    out = {k: options[k] for k in ("steps", "context_noise", "guidance_scale") if options.get(k) is not None}
    if options.get("seed") is not None:
        out["seed"] = int(options["seed"])
    return out


def _check_history(path: Path, model_history: int, wanted: int | None) -> None:
    if wanted and not 1 <= int(wanted) <= model_history:
        raise ModelLoadError(
            f"max_history={wanted} but {path} was built with max_history={model_history}; "
            f"expected 1..{model_history} (or leave max_history unset)"
        )


def _limit_history(backend: Any, path: Path, wanted: int | None) -> None:
    """A cache shorter than the model's: the backend attends to the newest ``wanted`` frames."""
    _check_history(path, backend.config.max_history, wanted)
    if wanted:
        backend.limit_history(int(wanted))


def _check_precision(path: Path, backend: str, precision: str | None, allowed: tuple[str, ...]) -> None:
    if precision not in (None, "", "auto", *allowed):
        raise ModelLoadError(
            f"precision={precision!r} for {backend} backend with {path}; "
            f"expected one of {('auto',) + allowed}"
        )


def load_backend(model_path: str, backend: str = "auto", **options: Any) -> WorldModelBackend:
    """Open ``model_path`` with ``backend``; see the module docstring.

    Options: steps, context_noise, guidance_scale, seed, engine_cache_dir, precision ('auto', 'fp32',
    'fp16', 'bf16': OpenVINO on a CPU with native bf16, 'int8': an .onnx whose sidecar records an int8
    graph, on ONNX Runtime CPU), max_history
    (at most the model's: attend to the newest frames only), threads, device (torch: 'auto'/'cpu'/'cuda').
    Raises ModelLoadError (a ValueError) naming the path and what was expected.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ModelLoadError(f"unknown load_backend options {unknown}; expected a subset of {list(OPTIONS)}")
    if backend not in BACKENDS:
        raise ModelLoadError(f"backend={backend!r}; expected one of {list(BACKENDS)}")
    if str(model_path) == "copy_last" or backend == "copy_last":
        if str(model_path) != "copy_last":
            raise ModelLoadError(f"backend='copy_last' takes model_path='copy_last'; got {model_path!r}")
        from astra_ros.runtime.copy_last import CopyLastBackend

        return CopyLastBackend(max_history=int(options.get("max_history") or 8))
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"model file {path} does not exist; expected a .pt checkpoint, "
            ".onnx (with its .json sidecar) or .engine file"
        )
    if not path.is_file():
        raise ModelLoadError(f"model path {path} is not a file; expected a .pt, .onnx or .engine file")
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        return _load_checkpoint(path, backend, options)
    if suffix == ".onnx":
        return _load_onnx(path, backend, options)
    if suffix in ENGINE_SUFFIXES:
        return _load_engine(path, backend, options)
    raise ModelLoadError(f"model file {path} has unknown type {suffix!r}; expected .pt, .onnx or .engine")


def _load_checkpoint(path: Path, backend: str, options: dict[str, Any]) -> WorldModelBackend:
    if backend in ("onnxruntime", "tensorrt"):
        raise ModelLoadError(
            f"backend={backend!r} needs an exported model but {path} is a PyTorch checkpoint; run "
            f"`astra-export --checkpoint {path} --out {path.with_suffix('.onnx')}` and load the .onnx"
        )
    if not availability.torch_available():
        raise ModelLoadError(
            f"{path} is a PyTorch checkpoint but torch is not installed; "
            "expected an .onnx or .engine file on this deployment"
        )
    from astra_ros.model.checkpoint import CheckpointError
    from astra_ros.runtime.torch_backend import TorchBackend, resolve_device

    _check_precision(path, "torch", options.get("precision"), ("fp32", "bf16"))
    if options.get("threads"):
        import torch

        torch.set_num_threads(int(options["threads"]))
    try:
        device = resolve_device(options.get("device") or "auto")
    except ValueError as err:
        raise ModelLoadError(f"{path}: {err}") from err
    try:
        precision = "fp32" if options.get("precision") in (None, "", "auto") else options["precision"]
        result = TorchBackend.from_checkpoint(
            path, device=device, precision=precision, **_sampler_options(options)
        )
    except CheckpointError as err:
        raise ModelLoadError(str(err)) from err
    except ValueError as err:  # a precision this device cannot run
        raise ModelLoadError(f"{path}: {err}") from err
    _limit_history(result, path, options.get("max_history"))
    if backend == "auto":
        log.info("backend auto -> torch (%s is a PyTorch checkpoint, device %s)", path, device)
    return result


def _load_onnx(path: Path, backend: str, options: dict[str, Any]) -> WorldModelBackend:
    if backend == "torch":
        raise ModelLoadError(
            f"backend='torch' needs the .pt checkpoint but {path} is an ONNX graph; "
            "expected a .pt file (or use backend onnxruntime/tensorrt/auto)"
        )
    model = load_onnx_model(path)  # sha256 verified here, before any session or engine
    _check_history(path, model.config.max_history, options.get("max_history"))
    precision = options.get("precision") or "auto"
    sampler = _sampler_options(options)
    int8 = precision == "int8"  # ONNX Runtime's CPU provider runs the quantized graph; TensorRT has none
    if backend == "tensorrt" or (backend == "auto" and availability.tensorrt_available() and not int8):
        if not availability.tensorrt_available():
            raise ModelLoadError(
                f"backend='tensorrt' for {path}, but `import tensorrt` fails on this "
                "machine; expected TensorRT 10.x/11.x (or use backend auto/onnxruntime)"
            )
        from astra_ros.runtime.tensorrt_backend import TensorRTBackend

        try:
            result = TensorRTBackend.from_onnx(
                model,
                engine_cache_dir=options.get("engine_cache_dir"),
                precision="fp16" if precision == "auto" else precision,
                **sampler,
            )
        except Exception as err:
            if backend == "tensorrt":
                raise
            log.warning("backend auto: TensorRT failed for %s (%s); falling back to onnxruntime", path, err)
        else:
            _limit_history(result, path, options.get("max_history"))
            if backend == "auto":
                log.info("backend auto -> tensorrt for %s (%s)", path, result.info.model_id)
            return result
    parity = model.payload.get("parity")
    if parity is not None and not parity.get("passed", False):
        raise ModelLoadError(
            f"{path}: the export's parity check failed ({parity}); expected a passing export"
        )
    reason = ""
    if backend == "auto":
        backend, precision, reason = _auto_cpu(model, precision)
    if backend == "openvino":
        return _load_openvino(model, precision, options, sampler, reason)
    if not availability.onnxruntime_available():
        raise ModelLoadError(
            f"{path} needs onnxruntime (or TensorRT, OpenVINO), none is installed; "
            "expected `pip install onnxruntime` or onnxruntime-gpu"
        )
    from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    _check_precision(path, "onnxruntime", precision, ("fp32", "fp16", "int8"))
    result = OnnxRuntimeBackend(
        model,
        threads=options.get("threads"),
        engine_cache_dir=options.get("engine_cache_dir"),
        precision="fp32" if precision == "auto" else precision,
        **sampler,
    )
    _limit_history(result, path, options.get("max_history"))
    if reason:
        kind = "gpu" if result.device == "cuda" else "cpu"
        log.info(
            "backend auto -> onnxruntime-%s %s for %s (%s; providers %s)",
            kind,
            result.info.precision,
            path,
            reason,
            result.providers,
        )
    return result


def _auto_cpu(model: OnnxModel, precision: str) -> tuple[str, str, str]:
    """(backend, precision, reason) for ``backend: auto`` without TensorRT: ONNX Runtime on its GPU
    provider when it has one, else the first entry of this CPU class's ``AUTO_CPU`` row whose runtime
    is installed and whose graph the model has (an explicit ``precision`` keeps only its entries)."""
    from astra_ros.runtime.cpu import AUTO_CPU, cpu_features

    trt = "TensorRT not importable" if not availability.tensorrt_available() else "TensorRT failed"
    if availability.onnxruntime_available():
        from astra_ros.runtime.onnxruntime_backend import has_gpu_provider

        if has_gpu_provider():
            return "onnxruntime", precision, f"{trt}; GPU provider"
    cpu = cpu_features().cpu_class
    skipped = []
    for backend, choice in AUTO_CPU[cpu]:
        if precision not in ("auto", choice):
            continue
        if backend == "openvino" and not availability.openvino_available():
            skipped.append(f"{backend} {choice}: not installed")
        elif backend == "openvino" and model.batch is not None:
            skipped.append(f"{backend} {choice}: fixed-batch export")
        elif choice not in model.precisions and choice not in ("fp32", "bf16"):
            skipped.append(f"{backend} {choice}: no {choice} graph in {model.sidecar.name}")
        else:
            return backend, choice, "; ".join([trt, f"CPU class {cpu}", *skipped])
    return "onnxruntime", precision, "; ".join([trt, f"CPU class {cpu}", *skipped])


def _load_openvino(
    model: OnnxModel, precision: str, options: dict[str, Any], sampler: dict[str, Any], reason: str
) -> WorldModelBackend:
    if not availability.openvino_available():
        raise ModelLoadError(
            f"backend='openvino' for {model.path}, but `import openvino` fails on this machine; "
            "expected `pip install openvino` (or use backend auto/onnxruntime)"
        )
    from astra_ros.runtime.cpu import cpu_features
    from astra_ros.runtime.openvino_backend import OpenVinoBackend

    _check_precision(model.path, "openvino", precision, ("bf16", "fp32"))
    if precision == "auto":
        precision = "bf16" if cpu_features().native_bf16 else "fp32"
    result = OpenVinoBackend(model, threads=options.get("threads"), precision=precision, **sampler)
    _limit_history(result, model.path, options.get("max_history"))
    if reason:
        log.info("backend auto -> openvino %s for %s (%s)", precision, model.path, reason)
    return result


def _load_engine(path: Path, backend: str, options: dict[str, Any]) -> WorldModelBackend:
    if backend not in ("auto", "tensorrt"):
        raise ModelLoadError(
            f"backend={backend!r} cannot run the TensorRT engine {path}; expected "
            "backend tensorrt/auto, or load the .onnx it was built from"
        )
    if not availability.tensorrt_available():
        raise ModelLoadError(
            f"{path} is a TensorRT engine but `import tensorrt` fails on this machine; "
            "expected TensorRT 10.x/11.x, or load the .onnx with onnxruntime"
        )
    from astra_ros.runtime.tensorrt_backend import TensorRTBackend

    result = TensorRTBackend.from_engine(path, **_sampler_options(options))
    _limit_history(result, path, options.get("max_history"))
    if backend == "auto":
        log.info("backend auto -> tensorrt (%s is an engine)", path)
    return result
