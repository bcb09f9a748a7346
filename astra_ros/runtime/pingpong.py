"""Persistent cache buffers that a step never reads and writes at the same address. Torch-free.

A step reads the cache in one slot and writes the updated cache into another slot of the same
batch size. Each slot remembers (weakly) the cache object stored in it; a slot is free once that
object is gone. Ingest therefore alternates between two slots (ping-pong), denoising steps reuse
one scratch slot, and a slot still referenced by a live cache is never overwritten.

``PooledStreamingBackend`` is the part the ONNX Runtime and TensorRT backends share: empty and
tiled caches built from host arrays uploaded into a slot.
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from astra_ros.runtime.streaming import StreamingBackend


class Slot:
    """One set of cache buffers (a backend-specific ``payload``) and the cache stored in it."""

    def __init__(self, payload: Any, batch: int, index: int):
        self.payload = payload
        self.batch = batch
        self.index = index
        self._owner: weakref.ref | None = None

    @property
    def busy(self) -> bool:
        return self._owner is not None and self._owner() is not None

    def claim(self, cache: Any) -> None:
        self._owner = weakref.ref(cache)


class PooledCache:
    """A cache living in ``slot``; ``batch`` is the logical batch (the slot may be padded)."""

    __slots__ = ("slot", "batch", "__weakref__")

    def __init__(self, slot: Slot, batch: int):
        self.slot = slot
        self.batch = batch
        slot.claim(self)


class BufferPool:
    """Slots per graph batch size, allocated on demand with ``allocate(batch)`` and reused when free."""

    def __init__(self, allocate: Callable[[int], Any]):
        self._allocate = allocate
        self._slots: dict[int, list[Slot]] = {}

    def acquire(self, batch: int, exclude: Slot | None = None) -> Slot:
        """A free slot for ``batch`` (never ``exclude``); claim it before the next ``acquire``."""
        slots = self._slots.setdefault(batch, [])
        for slot in slots:
            if slot is not exclude and not slot.busy:
                return slot
        slot = Slot(self._allocate(batch), batch, len(slots))
        slots.append(slot)
        return slot

    def slots(self, batch: int) -> list[Slot]:
        return list(self._slots.get(batch, ()))

    def all_slots(self) -> list[Slot]:
        return [s for slots in self._slots.values() for s in slots]


class PooledStreamingBackend(StreamingBackend):
    """A StreamingBackend whose caches live in ``self._pool`` slots (set before ``__init__``)."""

    _pool: BufferPool

    @abstractmethod
    def _slot_batch(self, batch: int) -> int:
        """The buffer batch serving ``batch`` streams (>= batch); ValueError when none can."""

    @abstractmethod
    def _cache_dims(self, batch: int) -> tuple[int, ...]:
        """Shape of the key (and value) cache for ``batch`` rows: ``(depth, batch, heads, M*N, hd)``."""

    @abstractmethod
    def _upload(self, slot: Slot, keys: np.ndarray, values: np.ndarray, length: np.ndarray) -> None:
        """Write host arrays (``batch`` rows, at most the slot's) into ``slot``."""

    @abstractmethod
    def cache_arrays(self, cache: PooledCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Host copies of a cache's keys, values and lengths (logical batch only)."""

    def _step_batch(self, frame: np.ndarray, cache: PooledCache) -> int:
        """Check a step's batch against its cache; -> the slot batch."""
        batch = frame.shape[0]
        slot_batch = self._slot_batch(batch)
        if cache.batch != batch:
            raise ValueError(f"cache batch {cache.batch} != frame batch {batch}")
        return slot_batch

    def _empty_cache(self, batch: int) -> PooledCache:
        slot = self._pool.acquire(self._slot_batch(batch))
        zeros = np.zeros(self._cache_dims(batch), np.float32)
        self._upload(slot, zeros, zeros, np.zeros(batch, np.int64))
        return PooledCache(slot, batch)

    def _tile_cache(self, cache: PooledCache, batch: int) -> PooledCache:
        keys, values, length = self.cache_arrays(cache)
        slot = self._pool.acquire(self._slot_batch(batch), exclude=cache.slot)
        first = (keys[:, :1], values[:, :1])
        self._upload(slot, *(np.repeat(x, batch, 1) for x in first), np.repeat(length[:1], batch))
        return PooledCache(slot, batch)
