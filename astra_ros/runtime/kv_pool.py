"""Key/value ring buffers pooled per batch size (torch-free).

The live stream owns one set of buffers; a rollout (``predict``) tiles it into a set for B
candidates. A set is free again once the cache holding it is gone (tracked with a weak reference)
and is reused by the next call of its batch size, so a long-running node allocates nothing per call
(device memory on TensorRT); after each rollout the free sets beyond ``max_idle_bytes`` (largest
batch first) are released, so a burst of large or varied batches does not keep its memory; after a
rollout of more than one candidate the C heap's free pages go back to the system too (``return_free_heap``:
glibc keeps freed arrays of a few MB and the step's temporaries otherwise). A step reads these
buffers and writes the new frame's keys/values into separate output buffers, so a step's cache
input and output never share an address; ``_store`` then copies the frame's entries into one ring
slot.

``PooledStreamingBackend`` is the part the ONNX Runtime and TensorRT backends share.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


MAX_IDLE_BYTES = 32 * 2**20  # well under the 50 MB an Imagine burst may leave behind (issue 19)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def return_free_heap() -> None:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim(0)``; elsewhere a no-op)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def payload_nbytes(payload: Any) -> int:
    """Bytes of the numpy arrays in a (nested tuple / list) payload."""
    if isinstance(payload, np.ndarray):
        return payload.nbytes
    if isinstance(payload, (tuple, list)):
        return sum(payload_nbytes(p) for p in payload)
    return 0


class BufferPool:
    """Buffer sets per batch size, allocated on demand with ``allocate(batch)`` and reused when free.

    ``nbytes(payload)`` measures a set (default: its numpy arrays); ``release(payload)`` frees one
    (default: drop it, for host memory).
    """

    def __init__(
        self,
        allocate: Callable[[int], Any],
        nbytes: Callable[[Any], int] = payload_nbytes,
        release: Callable[[Any], None] | None = None,
        max_idle_bytes: int = MAX_IDLE_BYTES,
    ):
        self._allocate = allocate
        self._nbytes = nbytes
        self._release = release
        self.max_idle_bytes = max_idle_bytes
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

    def nbytes(self) -> int:
        """Bytes held by every set, busy or free."""
        return sum(self._nbytes(b.payload) for sets in self._sets.values() for b in sets)

    def trim(self) -> None:
        """Release free sets, largest batch first, until the free ones hold at most max_idle_bytes."""
        idle = sorted((b for sets in self._sets.values() for b in sets if not b.busy), key=lambda b: -b.batch)
        held = sum(self._nbytes(b.payload) for b in idle)
        for buffers in idle:
            if held <= self.max_idle_bytes:
                break
            held -= self._nbytes(buffers.payload)
            self._sets[buffers.batch].remove(buffers)
            if not self._sets[buffers.batch]:
                del self._sets[buffers.batch]
            if self._release is not None:
                self._release(buffers.payload)


class PooledStreamingBackend(StreamingBackend):
    """A StreamingBackend whose key/value buffers come from ``self._pool`` (set before ``__init__``)."""

    _pool: BufferPool
    _cache_dtype: Any  # dtype of the key/value buffers

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

    def _rollout_closed(self, batch: int) -> None:
        self._pool.trim()
        if batch > 1:
            return_free_heap()

    def kv_bytes(self, batch: int) -> int:
        """Key/value buffer bytes of ``batch`` candidates (0 when no graph batch can serve them)."""
        try:
            dims = self._kv_dims(self._graph_batch(batch))
        except ValueError:
            return 0
        return 2 * int(np.prod(dims)) * np.dtype(self._cache_dtype).itemsize

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
