"""Costs of predicted frames against a goal image, for the planner. Torch-free.

A cost maps predicted frames ``(B, H, S, S, 3)`` uint8 and a goal ``(S, S, 3)`` uint8 to one value
per candidate ``(B,)`` (lower is better). Frames are weighted by ``horizon_weights``: later frames
count more, so a plan that reaches the goal sooner and stays there wins.

- ``mse``: pixel MSE on the [0, 1] scale. It rewards blur: when the model is unsure, an average
  of the possible frames has a lower expected MSE than any one of them.
- ``multiscale``: pixel MSE summed over an image pyramid (the frame averaged over 1, 2, 4 and 8
  pixel blocks). At full resolution a link that misses its goal position by more than its width
  costs the same however far it is; the coarse levels still see it come closer, so the cost keeps
  a gradient toward the goal when the arm does not overlap it.
- ``edge``: structure, not colour averages. Gradient magnitudes of the grey image (central
  differences); a goal edge that the prediction lacks within ``EDGE_RADIUS`` pixels costs its
  strength, and so does a predicted edge the goal lacks nearby. A blurred prediction has weak
  edges, so it pays for every goal edge; a sharp one that is off by at most ``EDGE_RADIUS``
  pixels pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Cost = Callable[[np.ndarray, np.ndarray], np.ndarray]

EDGE_RADIUS = 1


def horizon_weights(horizon: int) -> np.ndarray:
    """``(H,)`` weights ``h / sum``: frame ``h`` (1-based) counts ``h`` times as much as frame 1."""
    w = np.arange(1, horizon + 1, dtype=np.float64)
    return w / w.sum()


def _check(frames: np.ndarray, goal: np.ndarray) -> None:
    if (
        frames.ndim != 5
        or frames.shape[2:] != goal.shape
        or frames.dtype != np.uint8
        or goal.dtype != np.uint8
    ):
        raise ValueError(
            f"frames {frames.shape} {frames.dtype} and goal {goal.shape} {goal.dtype}; expected "
            f"(B, H, S, S, 3) and (S, S, 3), both uint8"
        )


def pixel_mse(frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
    _check(frames, goal)
    diff = frames.astype(np.float32) / 255.0 - goal.astype(np.float32) / 255.0
    per_frame = np.mean(diff * diff, axis=(2, 3, 4))  # (B, H)
    return per_frame @ horizon_weights(frames.shape[1])


PYRAMID_LEVELS = (1, 2, 4, 8)


def block_mean(images: np.ndarray, block: int) -> np.ndarray:
    """``(..., S, S, 3)`` float -> ``(..., S / block, S / block, 3)``: the mean of each block."""
    if block == 1:
        return images
    *lead, s, _, c = images.shape
    if s % block:
        raise ValueError(f"image side {s}; expected a multiple of the pyramid block {block}")
    return images.reshape(*lead, s // block, block, s // block, block, c).mean(axis=(-4, -2))


def multiscale_mse(frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
    _check(frames, goal)
    pred, want = frames.astype(np.float32) / 255.0, goal.astype(np.float32) / 255.0
    per_frame = np.zeros(frames.shape[:2], np.float64)  # (B, H)
    for block in PYRAMID_LEVELS:
        diff = block_mean(pred, block) - block_mean(want, block)
        per_frame += np.mean(diff * diff, axis=(2, 3, 4))
    return per_frame @ horizon_weights(frames.shape[1])


def edge_strength(images: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the grey image, ``(..., S, S, 3)`` uint8 -> ``(..., S, S)`` in [0, ~1]."""
    grey = images.astype(np.float32).mean(axis=-1) / 255.0
    padded = np.pad(grey, [(0, 0)] * (grey.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2.0
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2.0
    return np.sqrt(gx * gx + gy * gy)


def dilate(x: np.ndarray, radius: int) -> np.ndarray:
    """Max over the ``(2 radius + 1)^2`` neighbourhood of each pixel of ``(..., S, S)``."""
    if radius == 0:
        return x
    s = x.shape[-1]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(radius, radius), (radius, radius)])
    out = np.zeros_like(x)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            np.maximum(out, padded[..., dy : dy + s, dx : dx + s], out=out)
    return out


def edge_cost(frames: np.ndarray, goal: np.ndarray, radius: int = EDGE_RADIUS) -> np.ndarray:
    _check(frames, goal)
    pred, want = edge_strength(frames), edge_strength(goal)  # (B, H, S, S), (S, S)
    missing = np.maximum(want - dilate(pred, radius), 0.0)
    extra = np.maximum(pred - dilate(want, radius), 0.0)
    per_frame = np.mean(missing * missing + extra * extra, axis=(2, 3))  # (B, H)
    return per_frame @ horizon_weights(frames.shape[1])


COSTS: dict[str, Cost] = {"mse": pixel_mse, "multiscale": multiscale_mse, "edge": edge_cost}


def named_cost(name: str) -> Cost:
    if name not in COSTS:
        raise ValueError(f"cost={name!r}; expected one of {sorted(COSTS)}")
    return COSTS[name]
