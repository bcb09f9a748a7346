"""gymnasium ``CarRacing-v3`` with the KUKA environment's shape where it can: ``reset(seed)``,
``step(command, dt)``, ``render()``, ``frame_period``, ``close()``.

The command is the ``geometry_msgs/Twist`` pair the recorder publishes (``COMMAND_NAMES``)::

    linear.x  = gas - brake      (gas, brake in [0, 1]; so linear.x in [-1, 1])
    angular.z = -steer           (steer in [-1, 1], +1 = right; ROS angular.z > 0 turns left)

Box2D has no state to save and restore, and no segmentation render: this environment has
neither ``state``/``set_state`` nor ``segmentation``. ``reset`` skips the first ``SKIP`` zoom-in
steps of the env.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["COMMAND_NAMES", "ENV_HZ", "CarRacingEnv"]

ENV_HZ = 50
CAMERA_EVERY = 3  # env steps per camera frame: 50/3 Hz
SKIP = 50
COMMAND_NAMES = ("linear.x", "angular.z")


class CarRacingEnv:
    """CarRacing-v3 driven by (linear.x, angular.z) commands at the env's 50 Hz."""

    frame_period = CAMERA_EVERY / ENV_HZ
    physics_period = 1.0 / ENV_HZ

    def __init__(self, size: int = 64) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        from astra_ros.sim.kuka import SimError

        try:
            import gymnasium as gym
        except ImportError as err:  # pragma: no cover - pinned in requirements.txt
            raise SimError(f"CarRacing needs gymnasium[box2d]: {err}") from err
        try:
            self.env = gym.make("CarRacing-v3", continuous=True, max_episode_steps=10**9)
        except Exception as err:  # noqa: BLE001 - report any simulator start failure clearly
            raise SimError(f"cannot create gymnasium CarRacing-v3 (needs gymnasium[box2d]): {err}") from err
        self.size = size
        self._obs = np.zeros((96, 96, 3), np.uint8)

    def reset(self, seed: int) -> None:
        """A new track from ``seed``, after the zoom-in steps."""
        self._obs, _ = self.env.reset(seed=int(seed))
        for _ in range(SKIP):
            self._obs, *_ = self.env.step(np.zeros(3, np.float32))

    def step(self, command: np.ndarray, dt: float) -> bool:
        """Hold ``command`` (linear.x, angular.z) for ``dt`` seconds (whole env steps of 1/50 s);
        True when the env ended the episode (track finished or car off the playfield)."""
        c = np.asarray(command, np.float64)
        if c.shape != (2,) or not np.all(np.isfinite(c)) or np.abs(c).max() > 1.0:
            raise ValueError(f"command={c.tolist()}; expected finite (linear.x, angular.z) in [-1, 1]")
        steps = round(dt * ENV_HZ)
        if steps < 1 or abs(steps - dt * ENV_HZ) > 1e-6:
            raise ValueError(f"dt={dt}; expected a positive multiple of the env period 1/{ENV_HZ} s")
        action = np.array([-c[1], max(c[0], 0.0), max(-c[0], 0.0)], np.float32)  # steer, gas, brake
        for _ in range(steps):
            self._obs, _, term, trunc, _ = self.env.step(action)
            if term or trunc:
                return True
        return False

    def render(self) -> np.ndarray:
        """The observation resized to (S, S, 3) uint8."""
        from astra_ros.data.images import resize_to_model

        return resize_to_model(np.asarray(self._obs, np.uint8), self.size)

    def close(self) -> None:
        self.env.close()
