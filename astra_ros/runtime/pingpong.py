"""Persistent cache buffers that a step never reads and writes at the same address. Torch-free.

A step reads the cache in one slot and writes the updated cache into another slot of the same
batch size. Each slot remembers (weakly) the cache object stored in it; a slot is free once that
object is gone. Ingest therefore alternates between two slots (ping-pong), denoising steps reuse
one scratch slot, and a slot still referenced by a live cache is never overwritten.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


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
