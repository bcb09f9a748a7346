"""TensorRT backend (TensorRT 10.x / 11.x Python API). Never imports torch.

Every TensorRT and CUDA call sits in ``TensorRTRuntime`` (the seam): build an engine from ONNX,
deserialize it, allocate/copy device memory, run ``execute_async_v3`` on a dedicated stream. The
backend logic around it (persistent device buffers, key/value ring buffers that a step reads while
it writes the new frame's entries elsewhere, the strided copy of those entries into a ring slot,
batch shapes, the engine cache) is tested with a fake runtime; the real calls need a GPU with
TensorRT and are NOT exercised by the test suite on machines without one.

Precision: TensorRT 10.x builds FP16 from the FP32 ONNX with ``BuilderFlag.FP16`` (weak typing).
TensorRT 11.x only has strongly typed networks: the precision comes from the ONNX types, so an FP16
engine needs an FP16 ONNX, produced with NVIDIA ModelOpt AutoCast (keeping FP32 I/O):
``python -m modelopt.onnx.autocast --onnx_path model.onnx --output_path model_fp16.onnx --keep_io_types``
(then copy the sidecar to ``model_fp16.json`` and update its ``onnx_sha256``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.model.config import AstraConfig
from astra_ros.runtime.base import model_info
from astra_ros.runtime.engine_cache import Profile, ensure_engine, profile_shapes, read_engine
from astra_ros.runtime.kv_pool import BufferPool, Buffers, PooledKV, PooledStreamingBackend
from astra_ros.runtime.sidecar import (
    CACHE_INPUTS,
    ENTRY_OUTPUTS,
    HISTORY_INPUTS,
    RING_INPUTS,
    ModelLoadError,
    OnnxModel,
    host_inputs,
    layer_inputs,
    resolve_shape,
)

log = logging.getLogger("astra_ros.runtime.tensorrt")

DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


class TensorRTRuntime:
    """The thin seam: the only code that calls TensorRT or CUDA. Imported lazily."""

    def __init__(self, device: int = 0):
        import tensorrt as trt

        self.trt = trt
        self.cudart = _cudart()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self._check(self.cudart.cudaSetDevice(device))
        self.device = device
        self.stream = self._check(self.cudart.cudaStreamCreate())  # dedicated stream
        self._keep: list[np.ndarray] = []  # host arrays of in-flight async copies

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def environment(self) -> dict[str, str]:
        prop = self._check(self.cudart.cudaGetDeviceProperties(self.device))
        name = prop.name
        name = name.decode(errors="replace").rstrip("\0") if isinstance(name, bytes) else str(name)
        return {
            "tensorrt_version": self.trt.__version__,
            "gpu_name": name,
            "compute_capability": f"{prop.major}.{prop.minor}",
        }

    def build(self, onnx: OnnxModel, precision: str, profile: Profile) -> bytes:
        trt = self.trt
        onnx_path = onnx.path
        builder = trt.Builder(self.logger)
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 31)
        if precision == "fp16":
            if hasattr(trt.BuilderFlag, "FP16"):  # 10.x weak typing
                config.set_flag(trt.BuilderFlag.FP16)
            else:  # 11.x: strongly typed, precision comes from the ONNX
                log.warning(
                    "TensorRT %s: precision follows the ONNX types; export an FP16 ONNX with "
                    "ModelOpt AutoCast for FP16 kernels",
                    trt.__version__,
                )
        opt = builder.create_optimization_profile()
        shapes = profile_shapes(onnx, profile)
        for i in range(network.num_inputs):
            name = network.get_input(i).name
            opt.set_shape(name, *shapes[name])
        config.add_optimization_profile(opt)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        return bytes(memoryview(blob))

    def load(self, engine: bytes) -> Any:
        runtime = self.trt.Runtime(self.logger)
        cuda_engine = runtime.deserialize_cuda_engine(engine)
        if cuda_engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine (other TensorRT version or GPU?)")
        context = cuda_engine.create_execution_context()
        return (runtime, cuda_engine, context)

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.cudart.cudaMalloc(max(int(nbytes), 1))))

    def free(self, ptr: int) -> None:
        self.cudart.cudaFree(ptr)

    def htod(self, ptr: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self._keep.append(array)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self.stream))

    def dtoh(self, array: np.ndarray, ptr: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, self.stream))
        self.synchronize()

    def execute(self, handle: Any, shapes: dict[str, tuple[int, ...]], addresses: dict[str, int]) -> None:
        context = handle[2]
        for name, shape in shapes.items():
            context.set_input_shape(name, shape)
        for name, ptr in addresses.items():
            context.set_tensor_address(name, ptr)
        if not context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def copy_rows(self, dst: int, dst_pitch: int, src: int, src_pitch: int, width: int, rows: int) -> None:
        """Device-to-device copy of ``rows`` rows of ``width`` bytes (strided on both sides)."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._check(
            self.cudart.cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, kind, self.stream)
        )

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream))
        self._keep.clear()


class TensorRTBackend(PooledStreamingBackend):
    """A TensorRT engine of the step graph; ``runtime`` is the seam (a fake in tests)."""

    def __init__(
        self,
        engine: bytes,
        sidecar: dict[str, Any],
        runtime: Any,
        model_sha: str,
        engine_sha: str,
        **options: Any,
    ):
        model = sidecar["model"]
        config = AstraConfig.from_dict(model["config"])
        self.runtime = runtime
        self.key = sidecar["key"]
        self.max_batch = int(self.key["profile"]["max_batch"])
        self.handle = runtime.load(engine)
        self._dtypes = {e["name"]: DTYPES[e["dtype"]] for e in model["inputs"] + model["outputs"]}
        self._shapes = {e["name"]: e["shape"] for e in model["inputs"] + model["outputs"]}
        self._model_config = config
        self._allocated: list[int] = []
        self._ring_bytes: dict[int, int] = {}  # device pointer -> bytes
        self._layer_names = {name: layer_inputs(name, config.depth) for name in RING_INPUTS}
        self._layer = self._layer_names["cache_keys"][0]  # every layer's own-ring input has this shape
        self._cache_dtype = self._dtypes[self._layer]
        # Persistent I/O buffers sized for max_batch; key/value ring buffers come from the pool, one
        # allocation (depth, B, ...) per ring whose layers are the graph's cache_keys_L inputs (the
        # streams' own frames) or history_keys_L inputs (the live history, one row).
        self._host_inputs = host_inputs(config.robot_state)
        io_names = (*self._host_inputs, "output", *ENTRY_OUTPUTS)
        self._io = {n: self._malloc(self._nbytes(n, self.max_batch, config.max_history)) for n in io_names}
        self._pool = BufferPool(
            self._allocate,
            nbytes=lambda ptrs: len(ptrs) * self._ring_bytes[ptrs[0]],
            release=self._free_ring,
        )
        precision = self.key["precision"]
        info = model_info("tensorrt", model.get("meta") or {}, config, model_sha, engine_sha, precision)
        super().__init__(info, config, **options)

    @classmethod
    def from_onnx(
        cls,
        onnx: OnnxModel,
        engine_cache_dir: str | Path | None = None,
        precision: str = "fp16",
        max_batch: int = 16,
        runtime: Any = None,
        **options: Any,
    ) -> TensorRTBackend:
        """Engine from the cache (built when missing, stale or corrupt), then the backend."""
        runtime = runtime or TensorRTRuntime()
        out_dir = Path(engine_cache_dir) if engine_cache_dir else onnx.path.parent / "cache"
        engine = ensure_engine(onnx, out_dir, runtime, precision, Profile(1, max_batch, max_batch))
        return cls.from_engine(engine, runtime=runtime, **options)

    @classmethod
    def from_engine(cls, path: str | Path, runtime: Any = None, **options: Any) -> TensorRTBackend:
        data, sidecar = read_engine(path)
        runtime = runtime or TensorRTRuntime()
        env = runtime.environment()
        key = sidecar["key"]
        mismatch = [f"{k}: engine {key.get(k)!r}, machine {v!r}" for k, v in env.items() if key.get(k) != v]
        if mismatch:
            raise ModelLoadError(
                f"TensorRT engine {path} was built elsewhere ({'; '.join(mismatch)}); "
                "expected an engine for this machine: rebuild it with astra-build-engine"
            )
        return cls(data, sidecar, runtime, key["onnx_sha256"], sidecar["engine_sha256"], **options)

    # -- buffers ---------------------------------------------------------------------------------

    def _nbytes(self, name: str, batch: int, slots: int, history_slots: int | None = None) -> int:
        shape = self._shape(name, batch, slots, history_slots)
        return int(np.prod(shape)) * np.dtype(self._dtypes[name]).itemsize

    def _shape(self, name: str, batch: int, slots: int, history_slots: int | None = None) -> tuple[int, ...]:
        """``name``'s shape for ``batch`` streams with own rings of ``slots`` frames reading
        ``history_slots`` (default max_history) of the shared history."""
        cfg = self._model_config
        history_slots = cfg.max_history if history_slots is None else history_slots
        return resolve_shape(self._shapes[name], cfg, batch, slots, history_slots)

    def _malloc(self, nbytes: int) -> int:
        ptr = self.runtime.malloc(nbytes)
        self._allocated.append(ptr)
        self._ring_bytes[ptr] = nbytes
        return ptr

    def _free_ring(self, ptrs: tuple[int, ...]) -> None:
        """Free a key/value buffer set the pool released."""
        for ptr in ptrs:
            self.runtime.free(ptr)
            self._allocated.remove(ptr)
            del self._ring_bytes[ptr]

    def close(self) -> None:
        """Free every device buffer (the backend is unusable afterwards)."""
        for ptr in self._allocated:
            self.runtime.free(ptr)
        self._allocated.clear()
        self._ring_bytes.clear()

    def _graph_batch(self, batch: int) -> int:
        if not 1 <= batch <= self.max_batch:
            raise ValueError(
                f"batch={batch}; this engine's profile allows 1..{self.max_batch} "
                "(rebuild with astra-build-engine --max-batch)"
            )
        return batch

    def _allocate(self, batch: int, slots: int, shared: bool) -> tuple[int, ...]:
        """Zeroed device rings (keys, values) of one pooled set."""
        zeros = np.zeros(self._kv_dims(batch, slots, shared), self._cache_dtype)
        rings = tuple(self._malloc(zeros.nbytes) for _ in CACHE_INPUTS)
        for ptr in rings:
            self.runtime.htod(ptr, zeros)
        self.runtime.synchronize()
        return rings

    def _copy_own(self, source: Buffers, target: Buffers) -> None:
        """One strided device copy per tensor: rows = depth x heads x batch."""
        frame = self.config.tokens_per_frame * self.config.head_dim * np.dtype(self._cache_dtype).itemsize
        rows = self.config.depth * self.config.heads * source.batch
        for src, dst in zip(source.payload, target.payload, strict=True):
            width = source.slots * frame
            self.runtime.copy_rows(dst, target.slots * frame, src, width, width, rows)

    def _copy_history(self, source: Buffers, slots: np.ndarray, target: Buffers) -> None:
        """One strided device copy per frame and tensor: rows = depth."""
        width = int(np.prod(self._kv_dims(1, 1, shared=True)[1:])) * np.dtype(self._cache_dtype).itemsize
        for src, dst in zip(source.payload, target.payload, strict=True):
            for i, slot in enumerate(slots):
                self.runtime.copy_rows(
                    dst + i * width,
                    target.slots * width,
                    src + int(slot) * width,
                    source.slots * width,
                    width,
                    self.config.depth,
                )

    def kv_arrays(self, kv: PooledKV) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for ptr in kv.buffers.payload:
            arr = np.empty(self._kv_dims(kv.batch, kv.buffers.slots, kv.buffers.shared), self._cache_dtype)
            self.runtime.dtoh(arr, ptr)
            out.append(arr)
        return out[0], out[1]

    # -- StreamingBackend primitives --------------------------------------------------------------

    def _step(self, frame, previous, level, actions, mask, modality, context, rope, state, with_output=True):
        """One engine: a context write runs all of it (its output is not returned)."""
        own: PooledKV = context.own.kv
        batch, slots = self._check_batch(frame, own), own.buffers.slots
        window = context.window(self.history_limit)
        run, history = window.history, context.history.kv
        inputs = (frame, previous, level, actions, mask, modality, window.own_valid, window.history_valid)
        inputs += (*rope, *(state if self.config.robot_state else ()))
        for name, arr in zip(self._host_inputs, inputs, strict=True):
            self.runtime.htod(self._io[name], np.asarray(arr, self._dtypes[name]))
        addresses = {name: self._io[name] for name in (*self._host_inputs, "output", *ENTRY_OUTPUTS)}
        layer_bytes = self._nbytes(self._layer, batch, slots)
        for kind, ring in zip(CACHE_INPUTS, own.buffers.payload, strict=True):
            addresses.update((n, ring + i * layer_bytes) for i, n in enumerate(self._layer_names[kind]))
        frame_bytes = self._nbytes(self._layer_names["history_keys"][0], 1, 1, 1)  # one history slot
        layer_bytes = history.buffers.slots * frame_bytes
        for kind, ring in zip(HISTORY_INPUTS, history.buffers.payload, strict=True):
            start = ring + run.start * frame_bytes
            addresses.update((n, start + i * layer_bytes) for i, n in enumerate(self._layer_names[kind]))
        reads = run.stop - run.start
        names = (*self._host_inputs, *(n for names in self._layer_names.values() for n in names))
        shapes = {name: self._shape(name, batch, slots, reads) for name in names}
        self.runtime.execute(self.handle, shapes, addresses)
        out = np.empty(self._shape("output", batch, slots), self._dtypes["output"])
        self.runtime.dtoh(out, self._io["output"])  # synchronizes the stream
        output = out.astype(np.float32, copy=False) if with_output else None
        return output, batch  # the entries stay in the new_keys/values buffers

    def _store(self, kv: PooledKV, entries: int, slot: int) -> None:
        """Copy the last step's ``new_keys`` / ``new_values`` (``entries`` = its batch) into slot
        ``slot`` of the own rings ``kv``: one strided device copy per tensor, rows = depth x heads x
        batch."""
        cfg = self.config
        width = cfg.tokens_per_frame * cfg.head_dim * np.dtype(self._cache_dtype).itemsize  # one frame, head
        pitch = kv.buffers.slots * width  # one head's whole ring
        rows = cfg.depth * cfg.heads * entries
        for dst, name in zip(kv.buffers.payload, ENTRY_OUTPUTS, strict=True):
            self.runtime.copy_rows(dst + slot * width, pitch, self._io[name], width, width, rows)

    def _store_history(self, kv: PooledKV, entries: int, slot: int) -> None:
        """Copy the last (batch-1) step's ``new_keys`` / ``new_values`` into slot ``slot`` of the
        shared history ``kv``: one strided device copy per tensor, rows = depth."""
        cfg = self.config
        width = cfg.heads * cfg.tokens_per_frame * cfg.head_dim * np.dtype(self._cache_dtype).itemsize
        for dst, name in zip(kv.buffers.payload, ENTRY_OUTPUTS, strict=True):
            self.runtime.copy_rows(
                dst + slot * width, kv.buffers.slots * width, self._io[name], width, width, cfg.depth
            )
