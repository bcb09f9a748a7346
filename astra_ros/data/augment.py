"""Augmentation of training windows that keeps the commands' meaning. Numpy only.

What changes between recording sessions is the camera's pose, the lighting and the scene, not what a
command does. One transform per window, applied identically to each of its frames (the motion
between frames, which the commands explain, is kept), drawn per window from the trainer's per-step
generator (a resumed run draws the same transforms):

- geometry: a zoom by ``z`` in ``[1 - scale, 1 + scale]`` about the image centre and a shift of up to
  ``shift`` pixels on each axis, bilinear, edge pixels repeated where the view leaves the frame. No
  flips or rotations: a mirrored image swaps the arms that the joint commands name;
- colour: brightness (a factor in ``[1 - brightness, 1 + brightness]``), contrast (about the
  window's mean grey), saturation (toward each pixel's grey) and hue (a rotation about the grey axis
  of up to ``hue`` turns), combined into one affine colour map.

Commands, states and masks are never touched. ``AUGMENTATIONS`` holds the presets that
``astra-train --augment`` names; ``none`` draws nothing, so a run without augmentation is
bit-identical to one from before augmentation existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AUGMENTATIONS", "Augmentation", "WindowTransform", "resample_matrix"]

GREY = np.asarray([0.299, 0.587, 0.114], np.float32)


def resample_matrix(size: int, zoom: float, shift: float) -> np.ndarray:
    """``(size, size)`` bilinear weights: output pixel ``i`` samples the input at
    ``(i + 0.5 - size / 2) / zoom + size / 2 - 0.5 + shift``, clamped to the edge pixels."""
    centres = (np.arange(size) + 0.5 - size / 2) / zoom + size / 2 - 0.5 + shift
    src = np.clip(centres, 0, size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    frac = (src - low).astype(np.float32)
    weights = np.zeros((size, size), np.float32)
    rows = np.arange(size)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


def _hue_rotation(turns: float) -> np.ndarray:
    """Rotation of RGB about the grey axis (1, 1, 1) by ``turns`` of a full turn (Rodrigues)."""
    angle = 2.0 * math.pi * turns
    k = np.full(3, 1.0 / math.sqrt(3.0))
    cross = np.asarray([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = math.cos(angle) * np.eye(3) + math.sin(angle) * cross
    return (rotation + (1 - math.cos(angle)) * np.outer(k, k)).astype(np.float32)


@dataclass(frozen=True)
class WindowTransform:
    """One window's transform; ``__call__`` maps ``(T, S, S, 3)`` uint8 frames to new ones."""

    zoom: float
    dy: float  # px, positive: the view moves down (the content moves up)
    dx: float
    brightness: float  # factors, 1: unchanged
    contrast: float
    saturation: float
    hue: float  # turns

    def colour_map(self, mean_grey: float) -> tuple[np.ndarray, np.ndarray]:
        """``(M, offset)``: ``rgb' = rgb @ M.T + offset``, brightness, contrast about ``mean_grey``,
        saturation and hue in that order."""
        saturate = self.saturation * np.eye(3, dtype=np.float32) + (1 - self.saturation) * np.outer(
            np.ones(3, np.float32), GREY
        )
        matrix = self.brightness * self.contrast * _hue_rotation(self.hue) @ saturate
        # grey stays grey through saturation and hue, so the contrast pivot only adds an offset
        offset = np.full(3, self.brightness * mean_grey * (1 - self.contrast), np.float32)
        return matrix.astype(np.float32), offset

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
            raise ValueError(f"frames have shape {frames.shape}; expected (T, S, S, 3)")
        t, size = frames.shape[0], frames.shape[1]
        x = frames.transpose(0, 3, 1, 2).astype(np.float32, order="C")  # (T, 3, S, S)
        mean_grey = float(GREY @ x.reshape(t, 3, -1).sum(axis=2).sum(axis=0)) / (t * size * size)
        rows = resample_matrix(size, self.zoom, self.dy)
        cols = resample_matrix(size, self.zoom, self.dx)
        x = (rows @ x) @ cols.T
        matrix, offset = self.colour_map(mean_grey)
        x = (matrix @ x.reshape(t, 3, size * size)).reshape(t, 3, size, size)
        x += offset[:, None, None]
        np.clip(np.rint(x, out=x), 0, 255, out=x)
        return np.ascontiguousarray(x.astype(np.uint8).transpose(0, 2, 3, 1))


@dataclass(frozen=True)
class Augmentation:
    """Magnitudes; every value 0: no augmentation (``active`` False)."""

    scale: float = 0.0  # zoom in [1 - scale, 1 + scale]
    shift: float = 0.0  # px at the model's frame size, each axis
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0  # turns

    @property
    def active(self) -> bool:
        return any(v != 0 for v in self.__dict__.values())

    def draw(self, rng: np.random.Generator) -> WindowTransform:
        """One window's transform: seven uniform draws from ``rng``."""
        u = rng.uniform(-1.0, 1.0, 7)
        return WindowTransform(
            zoom=1.0 + self.scale * u[0],
            dy=self.shift * u[1],
            dx=self.shift * u[2],
            brightness=1.0 + self.brightness * u[3],
            contrast=1.0 + self.contrast * u[4],
            saturation=1.0 + self.saturation * u[5],
            hue=self.hue * u[6],
        )


AUGMENTATIONS: dict[str, Augmentation] = {
    "none": Augmentation(),
    # about what separates the G1 sessions (docs/real_robot_data.md): camera offsets of 2-6 px at 64x64,
    # median grey levels 115-128 (+-6 %)
    "light": Augmentation(scale=0.06, shift=3.0, brightness=0.15, contrast=0.15, saturation=0.1),
    "strong": Augmentation(scale=0.1, shift=6.0, brightness=0.25, contrast=0.25, saturation=0.2, hue=0.03),
}


def main(argv: list[str] | None = None) -> int:
    """``python -m astra_ros.data.augment``: the cost of augmenting one training batch."""
    import argparse
    import time

    p = argparse.ArgumentParser(prog="python -m astra_ros.data.augment", description=main.__doc__)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--frames", type=int, default=9, help="frames per window")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", type=int, default=50, help="per repeat; 5 repeats")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.frames, args.size, args.size, 3)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(args.windows)]
    for name, augmentation in AUGMENTATIONS.items():
        if not augmentation.active:
            continue
        wall, cpu = [], []
        for repeat in range(5):
            draws = np.random.default_rng(repeat)
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.batches):
                [augmentation.draw(draws)(window) for window in frames]
            wall.append((time.perf_counter() - start) / args.batches * 1e3)
            cpu.append((time.process_time() - start_cpu) / args.batches * 1e3)
        print(
            f"{name}: {args.windows} windows x {args.frames} frames x {args.size}x{args.size} per batch: "
            f"CPU {min(cpu):.2f} / {float(np.median(cpu)):.2f} ms, wall {min(wall):.2f} / "
            f"{float(np.median(wall)):.2f} ms (best / median of 5 x {args.batches})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
