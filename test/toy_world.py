"""A toy world for ranking and planning tests: a blob on a 32x32 canvas moved by 2-D velocity
commands (one per frame), and ``ToyOracle``, a backend that predicts it exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astra_ros.runtime.base import ModelInfo, WorldModelBackend

SIZE = 32
SIGMA = 3.0


def render(positions: np.ndarray) -> np.ndarray:
    """``(..., 2)`` blob centres (x, y) in pixels -> ``(..., S, S, 3)`` uint8 frames."""
    grid = np.arange(SIZE, dtype=np.float64)
    x = np.asarray(positions, np.float64)[..., 0, None, None]
    y = np.asarray(positions, np.float64)[..., 1, None, None]
    blob = np.exp(-((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) / (2 * SIGMA**2))
    grey = np.round(blob * 255).astype(np.uint8)
    return np.stack([grey, grey // 2, 255 - grey], axis=-1)


@dataclass
class ToyEpisode:
    frames: np.ndarray  # (T, S, S, 3) uint8
    commands: np.ndarray  # (T, 2) float32: commands[t] moves the blob from frame t to t + 1
    stamps: np.ndarray
    positions: np.ndarray  # (T, 2)
    modality: str = "twist"


def episode(seed: int, length: int = 20) -> ToyEpisode:
    rng = np.random.default_rng(seed)
    commands = rng.uniform(-1.0, 1.0, (length, 2)).astype(np.float32)
    start = rng.uniform(12, 20, 2)
    positions = start + np.concatenate([np.zeros((1, 2)), np.cumsum(commands[:-1], 0)])
    stamps = np.arange(length, dtype=np.int64) * 100_000_000
    return ToyEpisode(render(positions), commands, stamps, positions)


class ToyOracle(WorldModelBackend):
    """Knows where the blob is in every frame it has been told about (``know``) and moves it by
    the candidates' commands: a perfect predictor of the toy world."""

    def __init__(self) -> None:
        self.info = ModelInfo("toy", "toy/-/exact", SIZE, 1, ("joint_velocity",))
        self.positions: dict[bytes, np.ndarray] = {}
        self._position: np.ndarray | None = None

    def know(self, frame: np.ndarray, position: np.ndarray) -> None:
        self.positions[frame.tobytes()] = np.asarray(position, np.float64)

    def reset(self) -> None:
        self._position = None

    @property
    def history_length(self) -> int:
        return int(self._position is not None)

    def ingest(
        self, frame: np.ndarray, action: np.ndarray, modality: str, state: np.ndarray | None = None
    ) -> None:
        self._position = self.positions[frame.tobytes()]

    def predict(self, actions, modality, steps=None, seed=None, share_noise=False) -> np.ndarray:
        assert self._position is not None
        return render(self._position + np.cumsum(np.asarray(actions, np.float64), axis=1))
