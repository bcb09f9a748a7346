"""The one interface the node, the evaluator and the benchmarks use to run a world model.

Torch-free: deployment backends (ONNX Runtime, TensorRT) must not need torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a loaded model."""

    backend: str  # "torch", "onnxruntime", "tensorrt", "copy_last"
    model_id: str  # "<model sha256[:12]>/<engine sha256[:12] or ->/<precision>"
    image_size: int  # frames are (image_size, image_size, 3) uint8 RGB
    max_history: int  # frames the causal cache holds before evicting the oldest
    modalities: tuple[str, ...]  # action modalities the model was trained on
    joint_names: tuple[str, ...] = ()  # joint order of joint_velocity actions (may be empty)
    frame_period: float = 0.0  # seconds between frames in the training data (0: unknown)
    precision: str = "fp32"


def model_info(
    backend: str,
    meta: dict[str, Any],
    config: Any,
    model_sha: str,
    engine_sha: str = "-",
    precision: str = "fp32",
) -> ModelInfo:
    """ModelInfo from a checkpoint's or sidecar's metadata and an ``AstraConfig``."""
    return ModelInfo(
        backend=backend,
        model_id=f"{model_sha[:12]}/{engine_sha[:12]}/{precision}",
        image_size=config.image_size,
        max_history=config.max_history,
        modalities=tuple(meta.get("modalities", ())),
        joint_names=tuple(meta.get("joint_names", ())),
        frame_period=float(meta.get("frame_period", 0.0)),
        precision=precision,
    )


class WorldModelBackend(ABC):
    """A streaming world model: ingest observed frames, then predict futures for command sequences.

    Frames are ``(S, S, 3)`` uint8 RGB at the model resolution ``info.image_size``.
    Actions are raw commands of one modality: ``(D,)`` per frame for ``ingest`` and
    ``(B, H, D)`` for ``predict`` (D = joint count, 6 for twist, 7 for pose_delta, 1 for discrete).
    """

    info: ModelInfo

    @abstractmethod
    def reset(self) -> None:
        """Clear the causal state (KV cache)."""

    @property
    @abstractmethod
    def history_length(self) -> int:
        """Frames currently held in the causal state (at most ``info.max_history``)."""

    @abstractmethod
    def ingest(self, frame: np.ndarray, action: np.ndarray, modality: str) -> None:
        """Write one observed frame with the command in force at its stamp into the cache."""

    @abstractmethod
    def predict(
        self, actions: np.ndarray, modality: str, steps: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Roll out ``H`` frames for each of ``B`` command sequences ``(B, H, D)``.

        ``actions[:, h]`` is the command in force at predicted frame ``h``'s stamp, paired with
        frames exactly as ``ingest`` pairs them; a command drives the motion after its frame, so
        frame 0 follows from the last ingested command and ``actions[:, H - 1]`` affects no frame.
        Frame 0 is therefore the same for every candidate: it is sampled once and shared, and
        candidates differ only through their own commands.

        Returns ``(B, H, S, S, 3)`` uint8. The live causal state is left unchanged.
        Raises ValueError when nothing has been ingested or the shapes are wrong.
        """
