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
    state_dim: int = 0  # joints of the robot-state input, in joint_names order (0: the model takes none)


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
        state_dim=len(meta.get("joint_names", ())) if config.robot_state else 0,
    )


class Rollout(ABC):
    """A ``predict`` in progress (``WorldModelBackend.start_rollout``): each ``advance`` rolls out the
    next frames of every candidate from the state the rollout started at, so the caller may ingest
    and predict on the live state in between; the frames equal one ``predict`` call's."""

    horizon: int
    frames_done: int  # predicted frames so far, of every candidate

    @property
    def done(self) -> bool:
        return self.frames_done >= self.horizon

    @abstractmethod
    def advance(self, frames: int) -> None:
        """Roll out up to ``frames`` more frames of every candidate."""

    @abstractmethod
    def result(self) -> np.ndarray:
        """The ``(B, H, S, S, 3)`` uint8 frames, once ``done``."""

    @abstractmethod
    def close(self) -> None:
        """Release the rollout's buffers (done on its last ``advance``; call it after a failure)."""


class FinishedRollout(Rollout):
    """A rollout computed in one ``predict`` call when it starts (backends that cannot split one)."""

    def __init__(self, frames: np.ndarray):
        self._frames = frames
        self.horizon = self.frames_done = frames.shape[1]

    def advance(self, frames: int) -> None:
        pass

    def result(self) -> np.ndarray:
        return self._frames

    def close(self) -> None:
        pass


class WorldModelBackend(ABC):
    """A streaming world model: ingest observed frames, then predict futures for command sequences.

    Frames are ``(S, S, 3)`` uint8 RGB at the model resolution ``info.image_size``.
    Actions are raw commands of one modality: ``(D,)`` per frame for ``ingest`` and
    ``(B, H, D)`` for ``predict`` (D = joint count, 6 for twist, 7 for pose_delta, 1 for discrete).

    Timing: a command drives the interval AFTER the frame it is paired with. ``ingest`` receives
    each frame with the command over the interval that ENDED at it, so the newest frame stays
    pending until the next ``ingest`` (or each ``predict`` candidate) supplies its command.
    """

    info: ModelInfo

    @abstractmethod
    def reset(self) -> None:
        """Clear the causal state (KV cache and pending frame) and restart the noise from the
        backend's seed."""

    @property
    @abstractmethod
    def history_length(self) -> int:
        """Frames currently held in the causal state, the pending one included (at most
        ``info.max_history``)."""

    @abstractmethod
    def ingest(
        self, frame: np.ndarray, action: np.ndarray, modality: str, state: np.ndarray | None = None
    ) -> None:
        """Observe ``frame``; ``action`` is the command over the interval from the previous ingested
        frame to this one (checked, then ignored for the first frame after ``reset``). ``state``: the
        joint positions measured at the frame (rad, ``info.joint_names`` order, ``(info.state_dim,)``);
        None when unknown. Models without a state input (``state_dim == 0``) ignore it."""

    @abstractmethod
    def predict(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> np.ndarray:
        """Roll out ``H`` frames for each of ``B`` command sequences ``(B, H, D)``.

        ``actions[:, 0]`` is the command from the newest ingested frame to predicted frame 0, and
        ``actions[:, h]`` the one from predicted frame ``h - 1`` to predicted frame ``h``: every
        candidate's first command drives its first predicted frame. ``seed`` (None: the backend's)
        seeds the sampler noise together with the cache position, so the same window with the same
        seed gives the same frames whatever was called before. ``share_noise``: every candidate
        gets the same noise, so candidates differ only through their commands (and a candidate's
        frames do not depend on the others in the batch).

        Returns ``(B, H, S, S, 3)`` uint8. The live causal state is left unchanged.
        Raises ValueError when nothing has been ingested or the shapes are wrong.
        """

    def start_rollout(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> Rollout:
        """``predict`` of the same arguments from the live state now, rolled out in chunks by the
        returned ``Rollout``. This default computes it at once; streaming backends split it."""
        return FinishedRollout(self.predict(actions, modality, steps, seed, share_noise))
