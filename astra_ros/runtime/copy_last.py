"""The copy-last-frame baseline as a backend: predicts that nothing moves.

Used as the evaluator's reference and as a model-free backend for exercising the ROS layer.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from astra_ros.runtime.base import ModelInfo, WorldModelBackend


class CopyLastBackend(WorldModelBackend):
    def __init__(self, image_size: int = 64, max_history: int = 8, modalities: tuple[str, ...] = ()):
        self.info = ModelInfo(
            backend="copy_last",
            model_id="copy_last/-/none",
            image_size=image_size,
            max_history=max_history,
            modalities=modalities or ("joint_velocity", "twist", "pose_delta", "discrete", "joint_position"),
        )
        self._frames: deque[np.ndarray] = deque(maxlen=max_history)

    def reset(self) -> None:
        self._frames.clear()

    @property
    def history_length(self) -> int:
        return len(self._frames)

    def ingest(
        self, frame: np.ndarray, action: np.ndarray, modality: str, state: np.ndarray | None = None
    ) -> None:
        size = self.info.image_size
        if frame.shape != (size, size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({size}, {size}, 3) uint8; got {frame.shape} {frame.dtype}")
        self._frames.append(frame.copy())

    def predict(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> np.ndarray:
        if not self._frames:
            raise ValueError("predict() needs at least one ingested frame")
        if actions.ndim != 3:
            raise ValueError(f"actions must be (B, H, D); got shape {actions.shape}")
        batch, horizon = actions.shape[:2]
        return np.broadcast_to(self._frames[-1], (batch, horizon) + self._frames[-1].shape).copy()
