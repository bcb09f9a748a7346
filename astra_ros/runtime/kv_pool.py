"""Key/value ring buffers pooled per batch size (torch-free).

The live stream owns one set of buffers; ``predict`` tiles it into a set for B candidates. A set is
free again once the cache holding it is gone (tracked with a weak reference), so a long-running
node allocates nothing per call (device memory on TensorRT). A step reads these buffers and writes
the new frame's keys/values into separate output buffers, so a step's cache input and output never
share an address; ``_store`` then copies the frame's entries into one ring slot.

``PooledStreamingBackend`` is the part the ONNX Runtime and TensorRT backends share.
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from astra_ros.runtime.streaming import StreamingBackend


class Buffers:
    """One set of key/value buffers (a backend-specific ``payload``) for ``batch`` rows."""

    def __init__(self, payload: Any, batch: int):
        self.payload = payload
        self.batch = batch
        self._owner: weakref.ref | None = None

    @property
    def busy(self) -> bool:
        return self._owner is not None and self._owner() is not None

    def claim(self, owner: Any) -> None:
        self._owner = weakref.ref(owner)


class PooledKV:
    """The key/value ring buffers of a cache; ``batch`` is the logical batch (``buffers`` may be padded)."""

    __slots__ = ("buffers", "batch", "__weakref__")

    def __init__(self, buffers: Buffers, batch: int):
        self.buffers = buffers
        self.batch = batch
        buffers.claim(self)


class BufferPool:
    """Buffer sets per batch size, allocated on demand with ``allocate(batch)`` and reused when free."""

    def __init__(self, allocate: Callable[[int], Any]):
        self._allocate = allocate
        self._sets: dict[int, list[Buffers]] = {}

    def acquire(self, batch: int) -> Buffers:
        """A free set for ``batch`` rows; claim it (``PooledKV``) before the next ``acquire``."""
        sets = self._sets.setdefault(batch, [])
        for buffers in sets:
            if not buffers.busy:
                return buffers
        buffers = Buffers(self._allocate(batch), batch)
        sets.append(buffers)
        return buffers

    def sets(self, batch: int) -> list[Buffers]:
        return list(self._sets.get(batch, ()))


class PooledStreamingBackend(StreamingBackend):
    """A StreamingBackend whose key/value buffers come from ``self._pool`` (set before ``__init__``)."""

    _pool: BufferPool

    @abstractmethod
    def _graph_batch(self, batch: int) -> int:
        """The buffer batch serving ``batch`` streams (>= batch); ValueError when none can."""

    @abstractmethod
    def _kv_dims(self, batch: int) -> tuple[int, ...]:
        """Shape of the key (and value) buffer for ``batch`` rows: ``(depth, batch, heads, M*N, hd)``."""

    @abstractmethod
    def _upload(self, buffers: Buffers, keys: np.ndarray, values: np.ndarray) -> None:
        """Write host arrays (``batch`` rows, at most the set's) into ``buffers``."""

    @abstractmethod
    def kv_arrays(self, kv: PooledKV) -> tuple[np.ndarray, np.ndarray]:
        """Host copies of the keys and values (logical batch only)."""

    def _check_batch(self, frame: np.ndarray, kv: PooledKV) -> int:
        """Check a step's batch against its cache; -> the graph batch."""
        batch = frame.shape[0]
        if kv.batch != batch:
            raise ValueError(f"cache batch {kv.batch} != frame batch {batch}")
        return self._graph_batch(batch)

    def _empty_kv(self, batch: int) -> PooledKV:
        buffers = self._pool.acquire(self._graph_batch(batch))
        zeros = np.zeros(self._kv_dims(batch), np.float32)
        self._upload(buffers, zeros, zeros)
        return PooledKV(buffers, batch)

    def _tile_kv(self, kv: PooledKV, batch: int) -> PooledKV:
        keys, values = self.kv_arrays(kv)
        buffers = self._pool.acquire(self._graph_batch(batch))
        dims = self._kv_dims(batch)
        self._upload(buffers, np.broadcast_to(keys[:, :1], dims), np.broadcast_to(values[:, :1], dims))
        return PooledKV(buffers, batch)
