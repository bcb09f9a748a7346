"""The KUKA simulator as a world model: the oracle a planner is measured against. Torch-free.

``SimulatorModel`` implements ``WorldModelBackend.predict`` by rolling its own ``KukaEnv`` out from
the true state, given with ``sync(state)`` (frames carry no state, so ``ingest`` only checks its
input): each candidate is set to the state and stepped through its commands, each held for one
frame period, and rendered after each. Exact, and slow (one simulation per candidate).
"""

from __future__ import annotations

import numpy as np

from astra_ros.runtime.base import ModelInfo, WorldModelBackend
from astra_ros.sim.kuka import KukaEnv, SimState


class SimulatorModel(WorldModelBackend):
    def __init__(self, size: int = 64):
        self.env = KukaEnv(size)
        self.info = ModelInfo(
            backend="simulator",
            model_id="kuka_sim/-/exact",
            image_size=size,
            max_history=1,
            modalities=("joint_velocity",),
            joint_names=tuple(self.env.joint_names),
            frame_period=float(self.env.frame_period),
        )
        self._state: SimState | None = None
        self._frames = 0

    def sync(self, state: SimState) -> None:
        """The true state at the newest ingested frame."""
        self._state = state

    def reset(self) -> None:
        self._state = None
        self._frames = 0

    @property
    def history_length(self) -> int:
        return min(self._frames, 1)

    def ingest(
        self, frame: np.ndarray, action: np.ndarray, modality: str, state: np.ndarray | None = None
    ) -> None:
        size = self.info.image_size
        if frame.shape != (size, size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({size}, {size}, 3) uint8; got {frame.shape} {frame.dtype}")
        self._frames += 1

    def predict(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> np.ndarray:
        if self._state is None:
            raise ValueError("SimulatorModel.predict() needs the true state: call sync(state) first")
        if modality != "joint_velocity":
            raise ValueError(f"modality={modality!r}; the simulator takes 'joint_velocity'")
        actions = np.asarray(actions, np.float64)
        if actions.ndim != 3 or actions.shape[2] != len(self.env.joint_names):
            raise ValueError(
                f"actions must be (B, H, {len(self.env.joint_names)}); got shape {actions.shape}"
            )
        batch, horizon = actions.shape[:2]
        size = self.info.image_size
        out = np.empty((batch, horizon, size, size, 3), np.uint8)
        for b in range(batch):
            self.env.set_state(self._state.positions, self._state.velocities)
            for h in range(horizon):
                self.env.step(actions[b, h], self.env.frame_period)
                out[b, h] = self.env.render()
        return out

    def close(self) -> None:
        self.env.close()
