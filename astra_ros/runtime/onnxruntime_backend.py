"""ONNX Runtime backend: the exported step graph behind StreamingBackend. Never imports torch.

CPU by default; the CUDA (and TensorRT) execution providers are used when this onnxruntime build
has them. The cache stays in ORT-owned buffers (OrtValues on the provider's device) between
calls through I/O binding: a step binds the input cache of one slot and writes the updated cache
into another slot (see ``pingpong``), so nothing is copied back to numpy except the frame output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.runtime.base import model_info
from astra_ros.runtime.pingpong import BufferPool, PooledCache, PooledStreamingBackend, Slot
from astra_ros.runtime.sidecar import ModelLoadError, OnnxModel, load_onnx_model

log = logging.getLogger("astra_ros.runtime.onnxruntime")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
STEP_INPUTS = ("frame", "previous", "level", "actions", "action_mask", "modality")
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def has_gpu_provider() -> bool:
    try:
        return any(p in available_providers() for p in GPU_PROVIDERS)
    except ImportError:
        return False


def pad_batch(x: np.ndarray, batch: int, axis: int = 0) -> np.ndarray:
    """Pad ``x`` along ``axis`` to ``batch`` rows by repeating its first row (fixed-batch graphs)."""
    have = x.shape[axis]
    if have == batch:
        return x
    first = np.take(x, [0], axis=axis)
    return np.concatenate([x, np.repeat(first, batch - have, axis=axis)], axis=axis)


class OnnxRuntimeBackend(PooledStreamingBackend):
    """``threads``: intra-op threads (None: ORT's default); ``providers``: explicit provider list."""

    def __init__(
        self,
        model: OnnxModel,
        threads: int | None = None,
        inter_threads: int = 1,
        providers: list[str] | None = None,
        device_id: int = 0,
        engine_cache_dir: str | None = None,
        precision: str = "fp32",
        **options: Any,
    ):
        import onnxruntime as ort

        self.model = model
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = int(inter_threads)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]
        provider_args: list[Any] = []
        for p in providers:
            if p == "TensorrtExecutionProvider":
                trt_options: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": precision == "fp16"}
                if engine_cache_dir:
                    trt_options.update(
                        trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache_dir)
                    )
                provider_args.append((p, trt_options))
            elif p == "CUDAExecutionProvider":
                provider_args.append((p, {"device_id": device_id}))
            else:
                provider_args.append(p)
        try:
            self.session = ort.InferenceSession(str(model.path), so, providers=provider_args)
        except Exception as err:  # onnxruntime raises its own exception types for bad graphs
            raise ModelLoadError(f"ONNX Runtime cannot load {model.path}: {err}") from err
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"
        self.device_id = device_id
        self._types = {i.name: NUMPY_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        missing = {"cache_keys", "cache_values", "cache_length", *STEP_INPUTS} - set(self._types)
        if missing:
            raise ModelLoadError(
                f"{model.path} lacks inputs {sorted(missing)}; expected an astra-export step graph"
            )
        cfg = model.config
        self._cache_shape = (cfg.depth, cfg.heads, cfg.max_history * cfg.tokens_per_frame, cfg.head_dim)
        self._graph_batch = model.batch
        self._pool = BufferPool(self._allocate)
        info = model_info("onnxruntime", model.meta, cfg, model.sha256, "-", self._precision())
        super().__init__(info, cfg, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, verify_parity: bool = True, **options: Any) -> OnnxRuntimeBackend:
        """Load ``path`` after checking its sha256 against the sidecar (and, with ``verify_parity``,
        that the export's parity check passed)."""
        model = load_onnx_model(path)
        parity = model.payload.get("parity")
        if verify_parity and parity is not None and not parity.get("passed", False):
            raise ModelLoadError(f"{path}: the export's parity check failed ({parity}); re-export it")
        return cls(model, **options)

    def _precision(self) -> str:
        return "fp16" if self._types.get("cache_keys") == np.float16 else "fp32"

    # -- buffers ---------------------------------------------------------------------------------

    def _ortvalue(self, array: np.ndarray) -> Any:
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)

    def _cache_dims(self, batch: int) -> tuple[int, ...]:
        d, h, t, k = self._cache_shape
        return (d, batch, h, t, k)

    def _allocate(self, batch: int) -> tuple[Any, Any, Any]:
        shape = self._cache_dims(batch)
        dtype = self._types["cache_keys"]
        # Fresh host arrays per buffer: on CPU the OrtValue shares their memory.
        return (
            self._ortvalue(np.zeros(shape, dtype)),
            self._ortvalue(np.zeros(shape, dtype)),
            self._ortvalue(np.zeros(batch, np.int64)),
        )

    def _slot_batch(self, batch: int) -> int:
        if self._graph_batch is None:
            return batch
        if batch > self._graph_batch:
            raise ValueError(
                f"batch={batch} but {self.model.path} was exported with a fixed batch of "
                f"{self._graph_batch}; expected at most {self._graph_batch} (or export --batch dynamic)"
            )
        return self._graph_batch

    def _upload(self, slot: Slot, keys: np.ndarray, values: np.ndarray, length: np.ndarray) -> None:
        gb = slot.batch
        dtype = self._types["cache_keys"]
        for ov, arr in zip(
            slot.payload,
            (
                pad_batch(keys, gb, 1).astype(dtype),
                pad_batch(values, gb, 1).astype(dtype),
                pad_batch(length, gb).astype(np.int64),
            ),
            strict=True,
        ):
            ov.update_inplace(np.ascontiguousarray(arr))

    def cache_arrays(self, cache: PooledCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Host copies of a cache (logical batch only)."""
        keys, values, length = (ov.numpy() for ov in cache.slot.payload)
        b = cache.batch
        return keys[:, :b], values[:, :b], length[:b]

    # -- StreamingBackend primitive ---------------------------------------------------------------

    def _step(self, frame, previous, level, actions, mask, modality, cache: PooledCache):
        batch, gb = frame.shape[0], self._step_batch(frame, cache)
        binding = self.session.io_binding()
        feeds = {}
        for name, arr in zip(STEP_INPUTS, (frame, previous, level, actions, mask, modality), strict=True):
            feeds[name] = np.ascontiguousarray(pad_batch(arr, gb).astype(self._types[name], copy=False))
            binding.bind_cpu_input(name, feeds[name])
        for name, ov in zip(("cache_keys", "cache_values", "cache_length"), cache.slot.payload, strict=True):
            binding.bind_ortvalue_input(name, ov)
        target = self._pool.acquire(gb, exclude=cache.slot)
        assert target is not cache.slot
        binding.bind_output("output", "cpu")
        for name, ov in zip(
            ("cache_keys_out", "cache_values_out", "cache_length_out"), target.payload, strict=True
        ):
            binding.bind_ortvalue_output(name, ov)
        self.session.run_with_iobinding(binding)
        out = binding.get_outputs()[0].numpy()[:batch].astype(np.float32, copy=False)
        return out, PooledCache(target, batch)
