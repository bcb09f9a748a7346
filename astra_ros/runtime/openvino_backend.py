"""OpenVINO backend (CPU): the exported step graph compiled by OpenVINO. Never imports torch.

OpenVINO reads the ONNX step graph itself, so this backend has no file of its own: the graph's bytes
are checked against the sidecar like every backend's. ``precision="bf16"`` computes in bf16 (needs
native bf16 arithmetic: ``runtime.cpu``; OpenVINO's default on such CPUs); ``fp32`` in float32. In
bf16 the key/value rings are stored as bf16 (16-bit words on the host) and the step's new keys and
values come out as bf16, so a step reads half the bytes and converts none of them; the other inputs
and the output stay float32. Context writes run the write-only variant of the graph (``new_keys`` /
``new_values`` only; OpenVINO drops the nodes that do not lead to them). The rings are host arrays
the CPU plugin reads and writes in place (tensors sharing their memory), pooled like ONNX Runtime's
(``runtime.kv_pool``); a step reads only the history slots in its window.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

from astra_ros.runtime.base import model_info
from astra_ros.runtime.cpu import cpu_features
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
)

log = logging.getLogger("astra_ros.runtime.openvino")

PRECISIONS = ("bf16", "fp32")


def from_bf16(x: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 (exact)."""
    return (x.astype(np.uint32) << 16).view(np.float32)


class HostBuffers(NamedTuple):
    """One pooled set: the key and value rings and, for own rings, a step's ``new_keys`` /
    ``new_values`` (host arrays); ``tensors``: the OpenVINO tensors sharing them, per graph tensor
    name, made on first use (a history's per run of slots read)."""

    rings: list[np.ndarray]
    entries: list[np.ndarray]
    tensors: dict[Any, list[tuple[str, Any]]]


class OpenVinoBackend(PooledStreamingBackend):
    """``threads``: inference threads (None or 0: OpenVINO's default, one per core); ``precision``:
    ``bf16`` or ``fp32``; ``write_only``: context frames are written through the write-only variant
    of the graph, else through the full step."""

    def __init__(
        self,
        model: OnnxModel,
        threads: int | None = None,
        precision: str = "bf16",
        write_only: bool = True,
        **options: Any,
    ):
        import openvino as ov
        from openvino.preprocess import PrePostProcessor

        if precision not in PRECISIONS:
            raise ModelLoadError(
                f"precision={precision!r} for {model.path} on OpenVINO; expected one of {PRECISIONS}"
            )
        features = cpu_features()
        if precision == "bf16" and not features.native_bf16:
            raise ModelLoadError(
                f"precision='bf16' on OpenVINO, but this CPU ({features.cpu_class}) has no native bf16 "
                "arithmetic (AVX512-BF16 or AMX); expected precision fp32"
            )
        if model.batch is not None:
            raise ModelLoadError(
                f"{model.path} was exported with a fixed batch of {model.batch}; expected a dynamic-batch "
                "export on OpenVINO (astra-export --batch dynamic), or backend onnxruntime"
            )
        self.model = model
        path, sha = model.graph("fp32")
        cfg = model.config
        self._bf16 = precision == "bf16"
        self._cache_dtype = np.uint16 if self._bf16 else np.float32
        core = ov.Core()
        graph = core.read_model(str(path))
        self._layer_names = {name: layer_inputs(name, cfg.depth) for name in RING_INPUTS}
        self._host_inputs = host_inputs(cfg.robot_state)
        declared = {p.get_any_name() for p in graph.inputs}
        expected = {*self._host_inputs, *(n for names in self._layer_names.values() for n in names)}
        if declared != expected:
            raise ModelLoadError(
                f"{path} has inputs {sorted(declared)}; expected the step graph's {sorted(expected)}"
            )
        if self._bf16:
            ppp = PrePostProcessor(graph)
            for name in (n for names in self._layer_names.values() for n in names):
                ppp.input(name).tensor().set_element_type(ov.Type.bf16)
            for name in ENTRY_OUTPUTS:
                ppp.output(name).tensor().set_element_type(ov.Type.bf16)
            graph = ppp.build()
        settings: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if self._bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "CPU_DENORMALS_OPTIMIZATION": True,  # flush subnormals (runtime/denormals.py says why)
        }
        if threads:
            settings["INFERENCE_NUM_THREADS"] = int(threads)
        self._requests = {True: core.compile_model(graph, "CPU", settings).create_infer_request()}
        if write_only:
            results = [r for r in graph.get_results() if r.output(0).get_any_name() in ENTRY_OUTPUTS]
            entries = ov.Model(results, graph.get_parameters(), "write")
            self._requests[False] = core.compile_model(entries, "CPU", settings).create_infer_request()
        else:
            self._requests[False] = self._requests[True]
        self._ring_type = ov.Type.bf16 if self._bf16 else ov.Type.f32
        self._host_types = {
            p.get_any_name(): p.get_element_type().to_dtype()
            for p in graph.inputs
            if p.get_any_name() in self._host_inputs
        }
        # per request: the tensor set for each graph tensor, and the arrays (and their tensors) the
        # step inputs are copied into
        self._held: dict[int, dict[str, Any]] = {id(r): {} for r in self._requests.values()}
        self._inputs: dict[int, dict[str, tuple[np.ndarray, Any]]] = {
            id(r): {} for r in self._requests.values()
        }
        self._pool = BufferPool(self._allocate)
        info = model_info("openvino", model.meta, cfg, sha, "-", precision)
        super().__init__(info, cfg, **options)

    # -- buffers ---------------------------------------------------------------------------------

    def _allocate(self, batch: int, slots: int, shared: bool) -> HostBuffers:
        rings = [np.zeros(self._kv_dims(batch, slots, shared), self._cache_dtype) for _ in CACHE_INPUTS]
        cfg = self.config
        entry = (cfg.depth, cfg.heads, batch, cfg.tokens_per_frame, cfg.head_dim)
        entries = [] if shared else [np.zeros(entry, self._cache_dtype) for _ in ENTRY_OUTPUTS]
        return HostBuffers(rings, entries, {})

    def _graph_batch(self, batch: int) -> int:
        return batch

    def _copy_own(self, source: Buffers, target: Buffers) -> None:
        for host, into in zip(source.payload.rings, target.payload.rings, strict=True):
            into[:, :, :, : host.shape[3]] = host

    def _copy_history(self, source: Buffers, slots: np.ndarray, target: Buffers) -> None:
        for host, into in zip(source.payload.rings, target.payload.rings, strict=True):
            into[...] = host[:, slots]

    def kv_arrays(self, kv: PooledKV) -> tuple[np.ndarray, np.ndarray]:
        """float32 copies of the keys and values (own rings: the logical batch only)."""
        rows = slice(None) if kv.buffers.shared else slice(0, kv.batch)
        keys, values = (self._float(host[:, :, rows]) for host in kv.buffers.payload.rings)
        return keys, values

    def _float(self, x: np.ndarray) -> np.ndarray:
        return from_bf16(x) if self._bf16 else x.copy()

    def _ring_tensors(self, buffers: HostBuffers, run: slice | None) -> list[tuple[str, Any]]:
        """(graph tensor, OpenVINO tensor) pairs sharing ``buffers``: own rings with their step
        entries (``run`` None), or a history's slots ``run``."""
        import openvino as ov

        key = None if run is None else (run.start, run.stop)
        pairs = buffers.tensors.get(key)
        if pairs is None:
            kinds, block = (CACHE_INPUTS, slice(None)) if run is None else (HISTORY_INPUTS, run)
            arrays = [
                (name, ring[layer, block])
                for ring, kind in zip(buffers.rings, kinds, strict=True)
                for layer, name in enumerate(self._layer_names[kind])
            ]
            if run is None:
                arrays += list(zip(ENTRY_OUTPUTS, buffers.entries, strict=True))
            pairs = [(name, ov.Tensor(a, ov.Shape(list(a.shape)), self._ring_type)) for name, a in arrays]
            buffers.tensors[key] = pairs
        return pairs

    def _host_tensor(self, request: Any, name: str, value: np.ndarray) -> Any:
        """The tensor ``request`` reads step input ``name`` from (one array per input and shape),
        holding ``value``."""
        import openvino as ov

        inputs = self._inputs[id(request)]
        array, tensor = inputs.get(name, (None, None))
        if array is None or array.shape != value.shape:
            array = np.empty(value.shape, self._host_types[name])
            tensor = ov.Tensor(array, shared_memory=True)
            inputs[name] = (array, tensor)
        array[...] = value
        return tensor

    # -- StreamingBackend primitives --------------------------------------------------------------

    def _step(self, frame, previous, level, actions, mask, modality, context, rope, state, with_output=True):
        own: PooledKV = context.own.kv
        self._check_batch(frame, own)
        request = self._requests[with_output]
        buffers: HostBuffers = own.buffers.payload
        window = context.window(self.history_limit)
        values = (frame, previous, level, actions, mask, modality, window.own_valid, window.history_valid)
        values += (*rope, *(state if self.config.robot_state else ()))
        pairs = [
            (n, self._host_tensor(request, n, v)) for n, v in zip(self._host_inputs, values, strict=True)
        ]
        pairs += self._ring_tensors(buffers, None)
        pairs += self._ring_tensors(context.history.kv.buffers.payload, window.history)
        held = self._held[id(request)]
        for name, tensor in pairs:  # a tensor stays set until replaced: unchanged ones cost no call
            if held.get(name) is not tensor:
                request.set_tensor(name, tensor)
                held[name] = tensor
        request.infer()
        out = request.get_tensor("output").data.astype(np.float32) if with_output else None
        return out, buffers.entries

    def _store(self, kv: PooledKV, entries: list[np.ndarray], slot: int) -> None:
        for host, new in zip(kv.buffers.payload.rings, entries, strict=True):
            store_frame(host, new, slot, self.config.tokens_per_frame)

    def _store_history(self, kv: PooledKV, entries: list[np.ndarray], slot: int) -> None:
        for host, new in zip(kv.buffers.payload.rings, entries, strict=True):
            store_history_frame(host, new, slot)
