"""TensorRT engine cache. Torch-free and TensorRT-free: engines are built behind the ``EngineBuilder``
seam (``tensorrt_backend.TensorRTRuntime``; ``astra-build-engine`` is ``runtime/build_engine.py``).

An engine is valid for exactly one key: ONNX sha256 + TensorRT version + GPU name + compute
capability + precision + optimization profile (batch min/opt/max). Each engine
``<stem>-<precision>.engine`` has a sidecar ``<engine>.json`` holding the key, the engine's own
sha256 and everything the runtime needs (config, meta, I/O of the ONNX sidecar). A cached engine
with another key is rebuilt, with a log line saying which fields changed and how long the rebuild
took; an engine whose bytes do not match its recorded sha256 (corrupt, truncated) is rebuilt.
Engines are never committed (.gitignore).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from astra_ros.files import atomic_write
from astra_ros.hashing import file_sha256
from astra_ros.runtime.sidecar import ModelLoadError, OnnxModel, read_sidecar, resolve_shape

log = logging.getLogger("astra_ros.runtime.engine_cache")

ENGINE_FORMAT = "astra_ros.trt_engine"
PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class Profile:
    """Optimization profile over the batch axis (the streams' own rings take 1..max_history slots:
    ``profile_shapes``)."""

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"profile {self}; expected 1 <= min_batch <= opt_batch <= max_batch")


def profile_shapes(onnx: OnnxModel, profile: Profile) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The (min, opt, max) shape of each graph input: batch from ``profile``; the streams' own rings and
    the shared history a step reads 1 to max_history slots (opt: max_history)."""
    cfg, most = onnx.config, onnx.config.max_history
    points = ((profile.min_batch, 1), (profile.opt_batch, most), (profile.max_batch, most))
    return {
        entry["name"]: tuple(resolve_shape(entry["shape"], cfg, b, slots, slots) for b, slots in points)
        for entry in onnx.payload["inputs"]
    }


class EngineBuilder(Protocol):
    """The seam around TensorRT: ``TensorRTRuntime`` in production, a fake in tests."""

    def environment(self) -> dict[str, str]:
        """``tensorrt_version``, ``gpu_name``, ``compute_capability`` of this machine."""

    def build(self, onnx: OnnxModel, precision: str, profile: Profile) -> bytes:
        """A serialized engine for the ONNX graph (input shapes: ``profile_shapes``)."""


def cache_key(
    onnx_sha256: str, environment: dict[str, str], precision: str, profile: Profile
) -> dict[str, Any]:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt_version": str(environment["tensorrt_version"]),
        "gpu_name": str(environment["gpu_name"]),
        "compute_capability": str(environment["compute_capability"]),
        "precision": precision,
        "profile": asdict(profile),
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def engine_path(out_dir: str | Path, onnx: OnnxModel, precision: str) -> Path:
    return Path(out_dir) / f"{onnx.path.stem}-{precision}.engine"


def sidecar_of(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def stale_reason(engine: Path, key: dict[str, Any]) -> str | None:
    """Why the engine at ``engine`` cannot be used for ``key`` (None: it can)."""
    sidecar = sidecar_of(engine)
    if not engine.is_file():
        return "no cached engine"
    if not sidecar.is_file():
        return f"engine {engine.name} has no sidecar {sidecar.name}"
    try:
        recorded = read_sidecar(sidecar, "engine")
    except ModelLoadError as err:
        return str(err)
    old = recorded.get("key")
    if not isinstance(old, dict):
        return f"sidecar {sidecar.name} has no cache key"
    if old != key:
        changed = [f"{k} {old.get(k)!r} -> {key[k]!r}" for k in key if old.get(k) != key[k]]
        return "cache key changed: " + "; ".join(changed)
    sha = file_sha256(engine)
    if sha != recorded.get("engine_sha256"):
        recorded_sha = str(recorded.get("engine_sha256"))[:12]
        return f"engine file corrupt (sha256 {sha[:12]} != recorded {recorded_sha})"
    return None


def ensure_engine(
    onnx: OnnxModel,
    out_dir: str | Path,
    builder: EngineBuilder,
    precision: str = "fp16",
    profile: Profile | None = None,
) -> Path:
    """The cached engine for this key, building (and logging why) when missing, stale or corrupt."""
    profile = profile or Profile()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(onnx.sha256, builder.environment(), precision, profile)
    engine = engine_path(out_dir, onnx, precision)
    reason = stale_reason(engine, key)
    if reason is None:
        log.info("using cached engine %s (key %s)", engine, key_digest(key)[:12])
        return engine
    log.warning("building TensorRT engine %s: %s (this takes a while)", engine, reason)
    started = time.perf_counter()
    data = builder.build(onnx, precision, profile)
    seconds = time.perf_counter() - started
    with atomic_write(engine) as f:
        f.write(data)
    payload = {
        "format": ENGINE_FORMAT,
        "key": key,
        "key_sha256": key_digest(key),
        "engine_file": engine.name,
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "build_seconds": round(seconds, 2),
        "rebuild_reason": reason,
        "onnx_file": onnx.path.name,
        "model": {
            k: onnx.payload.get(k) for k in ("config", "meta", "inputs", "outputs", "opset", "checkpoint")
        },
    }
    with atomic_write(sidecar_of(engine), "w") as f:
        f.write(json.dumps(payload, indent=2) + "\n")
    log.warning("built %s in %.1f s", engine, seconds)
    return engine


def read_engine(engine: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Engine bytes and sidecar, after checking the bytes against the recorded sha256."""
    engine = Path(engine)
    if not engine.is_file():
        raise ModelLoadError(
            f"TensorRT engine {engine} does not exist; expected a file from astra-build-engine"
        )
    sidecar = sidecar_of(engine)
    if not sidecar.is_file():
        raise ModelLoadError(
            f"TensorRT engine {engine} has no sidecar; expected {sidecar} (written by astra-build-engine)"
        )
    payload = read_sidecar(sidecar, "engine")
    if payload.get("format") != ENGINE_FORMAT:
        raise ModelLoadError(
            f"sidecar {sidecar} has format={payload.get('format')!r}; expected {ENGINE_FORMAT!r}"
        )
    data = engine.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != payload.get("engine_sha256"):
        raise ModelLoadError(
            f"TensorRT engine {engine} has sha256 {sha[:16]}...; its sidecar expects "
            f"{str(payload.get('engine_sha256'))[:16]}... (corrupt: rebuild with astra-build-engine)"
        )
    return data, payload
