"""ONNX Runtime backend: the exported step graph behind StreamingBackend. Never imports torch.

CPU by default; the CUDA (and TensorRT) execution providers are used when this onnxruntime build
has them. The key/value ring buffers are host arrays bound through I/O binding as OrtValues: on
CPU they share the arrays' memory, so storing a frame's keys/values is a slice assignment in place
and nothing else is copied; on a GPU provider the buffers live on the device and are refreshed
from the host arrays after each store. Each ring buffer is one host array ``(depth, B, ...)`` bound
as one OrtValue per layer: the streams' own rings as the graph's ``cache_keys_L`` inputs, the live
history (one row, whatever the graph batch) as its ``history_keys_L`` inputs. A step's ``new_keys`` /
``new_values`` go to output buffers that belong to the cache's pooled set (``OrtBuffers``), so they
are reused and released with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from astra_ros.runtime.base import model_info
from astra_ros.runtime.denormals import flush_denormals
from astra_ros.runtime.kv_pool import (
    BufferPool,
    Buffers,
    PooledKV,
    PooledStreamingBackend,
    store_frame,
    store_history_frame,
)
from astra_ros.runtime.sidecar import (
    CACHE_INPUTS,
    ENTRY_OUTPUTS,
    HISTORY_INPUTS,
    RING_INPUTS,
    ModelLoadError,
    OnnxModel,
    host_inputs,
    layer_inputs,
    load_onnx_model,
)

log = logging.getLogger("astra_ros.runtime.onnxruntime")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
PRECISIONS = ("fp32", "fp16", "int8")
# One intra-op thread: on 2 cores shared with other work it was faster than one per core for a
# 64-candidate plan (1.3x) and for a live 1-candidate prediction (3-4x) (astra-bench plan,
# docs/benchmarks.md); a second pool thread mostly waits for a core.
DEFAULT_THREADS = 1
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def has_gpu_provider() -> bool:
    try:
        return any(p in available_providers() for p in GPU_PROVIDERS)
    except ImportError:
        return False


def session_options(threads: int | None = None, inter_threads: int = 1) -> Any:
    """ONNX Runtime session options used everywhere a step graph runs.

    Denormals are flushed to zero on ONNX Runtime's pool threads (``runtime.denormals`` says why;
    the backend flushes the calling thread too).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = int(inter_threads)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


class OrtBuffers(NamedTuple):
    """One pooled set: the key and value rings (host array, one OrtValue per layer) and, for own
    rings, the step's ``new_keys`` / ``new_values`` outputs (host array, its CPU OrtValue)."""

    rings: list[tuple[np.ndarray, list[Any]]]
    entries: list[tuple[np.ndarray, Any]]


def pad_batch(x: np.ndarray, batch: int, axis: int = 0) -> np.ndarray:
    """Pad ``x`` along ``axis`` to ``batch`` rows by repeating its first row (fixed-batch graphs)."""
    have = x.shape[axis]
    if have == batch:
        return x
    first = np.take(x, [0], axis=axis)
    return np.concatenate([x, np.repeat(first, batch - have, axis=axis)], axis=axis)


class Graph(NamedTuple):
    """A session and the ``(name, numpy dtype)`` of each input it declares (what a step feeds)."""

    session: Any
    inputs: list[tuple[str, Any]]


class OnnxRuntimeBackend(PooledStreamingBackend):
    """``threads``: intra-op threads (None or 0: ``DEFAULT_THREADS``); ``providers``: explicit provider list;
    ``precision``: ``fp32``, ``int8`` (the sidecar's int8 graph, on the CPU provider) or ``fp16`` (the
    fp32 graph; the TensorRT provider builds fp16); ``write_only``: context frames are written through
    the write-only variant of the graph (``runtime.write_graph``), else through the full step."""

    def __init__(
        self,
        model: OnnxModel,
        threads: int | None = None,
        inter_threads: int = 1,
        providers: list[str] | None = None,
        device_id: int = 0,
        engine_cache_dir: str | None = None,
        precision: str = "fp32",
        write_only: bool = True,
        **options: Any,
    ):
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ModelLoadError(f"precision={precision!r} for {model.path}; expected one of {PRECISIONS}")
        self.model = model
        self.graph_precision = "int8" if precision == "int8" else "fp32"
        path, sha = model.graph(self.graph_precision)
        so = session_options(threads or DEFAULT_THREADS, inter_threads)
        available = ort.get_available_providers()
        if providers is None:
            gpu = [p for p in GPU_PROVIDERS if p in available and self.graph_precision == "fp32"]
            providers = gpu + ["CPUExecutionProvider"]
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
        cfg = model.config
        self._layer_names = {name: layer_inputs(name, cfg.depth) for name in RING_INPUTS}
        self._host_inputs = host_inputs(cfg.robot_state)
        fed = {*self._host_inputs, *(n for names in self._layer_names.values() for n in names)}

        def open_graph(graph: str | bytes, what: str) -> Graph:
            try:
                session = ort.InferenceSession(graph, so, providers=provider_args)
            except Exception as err:  # onnxruntime raises its own exception types for bad graphs
                raise ModelLoadError(f"ONNX Runtime cannot load {what}: {err}") from err
            inputs = [(i.name, NUMPY_TYPES.get(i.type, np.float32)) for i in session.get_inputs()]
            unknown = sorted({name for name, _ in inputs} - fed)
            if unknown:
                raise ModelLoadError(f"{what} has inputs {unknown} this runtime does not feed")
            return Graph(session, inputs)

        step = open_graph(str(path), str(path))
        self.session = step.session
        self._types = dict(step.inputs)
        missing = fed - set(self._types)
        if missing:
            raise ModelLoadError(
                f"{path} lacks inputs {sorted(missing)}; expected an astra-export step graph"
            )
        # with_output -> the graph that runs: context writes need the keys/values only
        self._graphs = {True: step, False: step}
        if write_only:
            from astra_ros.runtime.write_graph import write_only_graph

            self._graphs[False] = open_graph(write_only_graph(path), f"the write-only graph of {path}")
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"
        self.device_id = device_id
        self._cache_dtype = self._types[self._layer_names["cache_keys"][0]]  # every ring input has it
        self._entry_shape = (cfg.depth, cfg.heads, cfg.tokens_per_frame, cfg.head_dim)
        self._fixed_batch = model.batch
        self._pool = BufferPool(self._allocate)
        self._shrink = ort.RunOptions()  # steps of several candidates give their arena memory back
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        info = model_info("onnxruntime", model.meta, cfg, sha, "-", self._precision())
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
        if self.graph_precision == "int8":
            return "int8"
        return "fp16" if self._cache_dtype == np.float16 else "fp32"

    # -- buffers ---------------------------------------------------------------------------------

    def _ortvalue(self, array: np.ndarray, device: bool) -> Any:
        """``array`` as an OrtValue: on the provider's device (``device``) or on CPU, where it shares
        the array's memory."""
        import onnxruntime as ort

        where = self.device if device else "cpu"
        return ort.OrtValue.ortvalue_from_numpy(array, where, self.device_id if device else 0)

    def _buffer(self, shape: tuple[int, ...]) -> tuple[np.ndarray, Any]:
        """A host output array and its (CPU) OrtValue."""
        array = np.zeros(shape, self._cache_dtype)
        return array, self._ortvalue(array, device=False)

    def _allocate(self, batch: int, slots: int, shared: bool) -> OrtBuffers:
        """Rings ``(depth, ...)`` with one OrtValue per layer on the provider's device (own rings: and
        a step's entries)."""
        rings = []
        for _ in CACHE_INPUTS:
            array = np.zeros(self._kv_dims(batch, slots, shared), self._cache_dtype)
            rings.append((array, [self._ortvalue(layer, device=True) for layer in array]))
        d, h, n, k = self._entry_shape
        entries = [] if shared else [self._buffer((d, h, batch, n, k)) for _ in ENTRY_OUTPUTS]
        return OrtBuffers(rings, entries)

    def _graph_batch(self, batch: int) -> int:
        if self._fixed_batch is None:
            return batch
        if batch > self._fixed_batch:
            raise ValueError(
                f"batch={batch} but {self.model.path} was exported with a fixed batch of "
                f"{self._fixed_batch}; expected at most {self._fixed_batch} (or export --batch dynamic)"
            )
        return self._fixed_batch

    def _copy_own(self, source: Buffers, target: Buffers) -> None:
        for (host, _), (into, layers) in zip(source.payload.rings, target.payload.rings, strict=True):
            into[:, :, :, : host.shape[3]] = host
            self._sync(into, layers)

    def _copy_history(self, source: Buffers, slots: np.ndarray, target: Buffers) -> None:
        for (host, _), (into, layers) in zip(source.payload.rings, target.payload.rings, strict=True):
            into[...] = host[:, slots]
            self._sync(into, layers)

    def _sync(self, host: np.ndarray, layers: list[Any]) -> None:
        """Make the per-layer OrtValues hold ``host`` (a no-op on CPU, where they share memory)."""
        if self.device != "cpu":
            for layer, ov in zip(host, layers, strict=True):
                ov.update_inplace(np.ascontiguousarray(layer))

    def kv_arrays(self, kv: PooledKV) -> tuple[np.ndarray, np.ndarray]:
        """Host copies of the keys and values (own rings: the logical batch only)."""
        rows = slice(None) if kv.buffers.shared else slice(0, kv.batch)
        keys, values = (host[:, :, rows].copy() for host, _ in kv.buffers.payload.rings)
        return keys, values

    # -- StreamingBackend primitives --------------------------------------------------------------

    def _step(self, frame, previous, level, actions, mask, modality, context, rope, state, with_output=True):
        own: PooledKV = context.own.kv
        batch, gb = frame.shape[0], self._check_batch(frame, own)
        graph = self._graphs[with_output]
        buffers: OrtBuffers = own.buffers.payload
        window = context.window(self.history_limit)
        values = (frame, previous, level, actions, mask, modality, window.own_valid, window.history_valid)
        values += (*rope, *(state if self.config.robot_state else ()))
        host = dict(zip(self._host_inputs, values, strict=True))
        rings = {  # graph input -> the OrtValue of its layer
            name: ov
            for payload, kinds in (
                (buffers, CACHE_INPUTS),
                (context.history.kv.buffers.payload, HISTORY_INPUTS),
            )
            for (_, layers), kind in zip(payload.rings, kinds, strict=True)
            for name, ov in zip(self._layer_names[kind], layers, strict=True)
        }
        run = window.history
        binding = graph.session.io_binding()
        for name, dtype in graph.inputs:  # what this graph declares (the write-only one may use fewer)
            if name in rings and name.startswith("history_"):  # the slots in the window: one block
                ov = rings[name]
                slots, *slot_shape = ov.shape()
                offset = run.start * int(np.prod(slot_shape)) * np.dtype(dtype).itemsize
                shape = [run.stop - run.start, *slot_shape]
                binding.bind_input(
                    name, ov.device_name(), self.device_id, dtype, shape, ov.data_ptr() + offset
                )
            elif name in rings:
                binding.bind_ortvalue_input(name, rings[name])
            elif name == "history_valid":
                binding.bind_cpu_input(name, np.ascontiguousarray(host[name], dtype))
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(pad_batch(host[name], gb).astype(dtype)))
        if with_output:
            binding.bind_output("output", "cpu")
        for name, (_, ov) in zip(ENTRY_OUTPUTS, buffers.entries, strict=True):
            binding.bind_ortvalue_output(name, ov)
        if self.device == "cpu":
            flush_denormals()  # this thread computes a share of every operator
        graph.session.run_with_iobinding(binding, self._shrink if batch > 1 else None)
        out = binding.get_outputs()[0].numpy()[:batch].astype(np.float32, copy=False) if with_output else None
        return out, [host for host, _ in buffers.entries]

    def _store(self, kv: PooledKV, entries: list[np.ndarray], slot: int) -> None:
        for (host, layers), new in zip(kv.buffers.payload.rings, entries, strict=True):
            store_frame(host, new, slot, self.config.tokens_per_frame)
            self._sync(host, layers)

    def _store_history(self, kv: PooledKV, entries: list[np.ndarray], slot: int) -> None:
        for (host, layers), new in zip(kv.buffers.payload.rings, entries, strict=True):
            store_history_frame(host, new, slot)
            self._sync(host, layers)
