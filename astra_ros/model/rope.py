"""Rotary time embedding tables on the host, in float64 (torch-free).

Keys enter the KV cache rotated at their absolute frame index and every step passes the cos/sin of
its own index, so cached keys are never rotated again. The angles are computed in float64 because
a stream runs for hours: in float32 the angle of frame 10^6 would be off by up to 0.03 rad.
"""

from __future__ import annotations

import numpy as np

ROPE_BASE = 100.0  # frame distances up to a few hundred stay distinguishable


def rope_frequencies(head_dim: int) -> np.ndarray:
    """Angular frequency per rotated pair ``(head_dim / 2,)`` float64."""
    return 1.0 / ROPE_BASE ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope_tables(positions: np.ndarray | int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin ``(..., head_dim / 2)`` float32 for frame indices ``(...)``."""
    angles = np.asarray(positions, np.float64)[..., None] * rope_frequencies(head_dim)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
