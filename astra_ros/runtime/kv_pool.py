"""Key/value ring buffers pooled per shape, batch size x ring slots (torch-free).

The live stream owns one set of buffers (its history, one row); a rollout (``predict``) gets a set
for its B candidates' own frames and reads the live history as it is (``streaming``). A set is free
again once the cache holding it is gone (tracked with a weak reference) and is reused by the next
call of its shape, so a long-running node allocates nothing per call
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

from astra_ros.runtime.streaming import StreamingBackend, growth, own_slots


class Buffers:
    """One set of key/value buffers (a backend-specific ``payload``): own rings of ``batch`` rows x
    ``slots`` frames, or (``shared``) a history of ``slots`` frames (``batch`` 1)."""

    def __init__(self, payload: Any, batch: int, slots: int, shared: bool):
        self.payload = payload
        self.batch = batch
        self.slots = slots
        self.shared = shared
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
    """Buffer sets per shape, allocated on demand with ``allocate(batch, slots, shared)`` and reused
    when free.

    ``nbytes(payload)`` measures a set (default: its numpy arrays); ``release(payload)`` frees one
    (default: drop it, for host memory).
    """

    def __init__(
        self,
        allocate: Callable[[int, int, bool], Any],
        nbytes: Callable[[Any], int] = payload_nbytes,
        release: Callable[[Any], None] | None = None,
        max_idle_bytes: int = MAX_IDLE_BYTES,
    ):
        self._allocate = allocate
        self._nbytes = nbytes
        self._release = release
        self.max_idle_bytes = max_idle_bytes
        self._sets: dict[tuple[int, int, bool], list[Buffers]] = {}

    def acquire(self, batch: int, slots: int, shared: bool = False) -> Buffers:
        """A free set of own rings for ``batch`` rows of ``slots`` frames (``shared``: a history of
        ``slots`` frames, ``batch`` 1); claim it (``PooledKV``) before the next ``acquire``."""
        sets = self._sets.setdefault((batch, slots, shared), [])
        for buffers in sets:
            if not buffers.busy:
                return buffers
        buffers = Buffers(self._allocate(batch, slots, shared), batch, slots, shared)
        sets.append(buffers)
        return buffers

    def sets(self, batch: int) -> list[Buffers]:
        """The sets of ``batch`` rows, any number of slots."""
        return [b for (rows, _, _), sets in self._sets.items() if rows == batch for b in sets]

    def nbytes(self) -> int:
        """Bytes held by every set, busy or free."""
        return sum(self._nbytes(b.payload) for sets in self._sets.values() for b in sets)

    def trim(self) -> None:
        """Release free sets, largest first (of equal ones, the most rows first), until the free ones
        hold at most max_idle_bytes."""
        idle = [b for sets in self._sets.values() for b in sets if not b.busy]
        sizes = {id(b): self._nbytes(b.payload) for b in idle}
        idle.sort(key=lambda b: (-sizes[id(b)], -b.batch))
        held = sum(sizes.values())
        for buffers in idle:
            if held <= self.max_idle_bytes:
                break
            held -= sizes[id(buffers)]
            key = (buffers.batch, buffers.slots, buffers.shared)
            self._sets[key].remove(buffers)
            if not self._sets[key]:
                del self._sets[key]
            if self._release is not None:
                self._release(buffers.payload)


def store_frame(ring: np.ndarray, new: np.ndarray, slot: int, tokens: int) -> None:
    """A step's keys or values ``(depth, heads, B, N, hd)`` into slot ``slot`` of the host own rings
    ``(depth, heads, B, slots*N, hd)`` (``tokens`` = N)."""
    ring[:, :, :, slot * tokens : (slot + 1) * tokens] = new


def store_history_frame(ring: np.ndarray, new: np.ndarray, slot: int) -> None:
    """The first stream's keys or values of a step ``(depth, heads, B, N, hd)`` into slot ``slot`` of
    a host history ``(depth, slots, heads, N, hd)``."""
    ring[:, slot] = new[:, :, 0]


class PooledStreamingBackend(StreamingBackend):
    """A StreamingBackend whose key/value buffers come from ``self._pool`` (set before ``__init__``)."""

    _pool: BufferPool
    _cache_dtype: Any  # dtype of the key/value buffers

    @abstractmethod
    def _graph_batch(self, batch: int) -> int:
        """The buffer batch serving ``batch`` streams (>= batch); ValueError when none can."""

    def _kv_dims(self, batch: int, slots: int, shared: bool = False) -> tuple[int, ...]:
        """Shape of the key (and value) buffer: own rings of ``batch`` rows ``(depth, heads, batch,
        slots*N, hd)``, or a shared history ``(depth, slots, heads, N, hd)`` (``model.astra.KVCache``)."""
        cfg = self.config
        if shared:
            return (cfg.depth, slots, cfg.heads, cfg.tokens_per_frame, cfg.head_dim)
        return (cfg.depth, cfg.heads, batch, slots * cfg.tokens_per_frame, cfg.head_dim)

    @abstractmethod
    def _copy_history(self, source: Buffers, slots: np.ndarray, target: Buffers) -> None:
        """Copy the history frames in ``slots`` of ``source`` into ``target``'s slots 0.. in order."""

    @abstractmethod
    def _copy_own(self, source: Buffers, target: Buffers) -> None:
        """Copy every slot of the own rings ``source`` into the same slots of the larger ``target``."""

    @abstractmethod
    def kv_arrays(self, kv: PooledKV) -> tuple[np.ndarray, np.ndarray]:
        """Host copies of the keys and values (own rings: the logical batch only)."""

    def _rollout_closed(self, batch: int) -> None:
        self._pool.trim()
        if batch > 1:
            return_free_heap()

    def _rings_released(self) -> None:
        self._pool.trim()  # the smaller rings: a rollout holds at most two sizes at once

    def kv_bytes(self, batch: int, horizon: int) -> int:
        """Key/value buffer bytes of a rollout of ``batch`` candidates x ``horizon`` frames at most: their
        own rings at the last two sizes they grow through (both held while one is copied into the
        other) and its copy of the live history (0 when no graph batch can serve them)."""
        try:
            rows = self._graph_batch(batch)
        except ValueError:
            return 0
        sizes = growth(own_slots(horizon, self.history_limit))[-2:]  # the largest two, during the last copy
        count = sum(int(np.prod(self._kv_dims(rows, slots))) for slots in sizes)
        count += int(np.prod(self._kv_dims(1, self.history_limit, shared=True)))
        return 2 * count * np.dtype(self._cache_dtype).itemsize

    def _check_batch(self, frame: np.ndarray, kv: PooledKV) -> int:
        """Check a step's batch against its own rings; -> the graph batch."""
        batch = frame.shape[0]
        if kv.batch != batch:
            raise ValueError(f"cache batch {kv.batch} != frame batch {batch}")
        return self._graph_batch(batch)

    # Sets are zeroed when allocated; a reused set holds the finite keys/values of earlier frames,
    # which the masks of a step hide (a masked slot's weight is exactly 0).

    def _empty_kv(self, batch: int, slots: int) -> PooledKV:
        return PooledKV(self._pool.acquire(self._graph_batch(batch), slots), batch)

    def _empty_history(self, slots: int) -> PooledKV:
        return PooledKV(self._pool.acquire(1, slots, shared=True), 1)

    def _grow_kv(self, kv: PooledKV, slots: int) -> PooledKV:
        buffers = self._pool.acquire(kv.buffers.batch, slots)
        self._copy_own(kv.buffers, buffers)
        return PooledKV(buffers, kv.batch)

    def _gather_history(self, kv: PooledKV, slots: np.ndarray) -> PooledKV:
        buffers = self._pool.acquire(1, len(slots), shared=True)
        self._copy_history(kv.buffers, slots, buffers)
        return PooledKV(buffers, 1)
