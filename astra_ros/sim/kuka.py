"""The pybullet KUKA iiwa simulator: one environment for the recorder, the sim publisher, the
planner and its benchmark.

DIRECT (headless) pybullet, ``kuka_iiwa/model.urdf`` from pybullet_data on a plain floor, each link
a distinct saturated colour (``LINK_COLOURS``), a close fixed camera (TinyRenderer). Physics at
``PHYSICS_HZ``; joint velocity commands (``VELOCITY_CONTROL``, rad/s, force ``FORCE``) are held
for ``dt`` seconds by ``step`` as whole physics sub-steps, so a 30 Hz command stream drives the
arm at its real rate between 15 Hz camera frames.

Segmentation ids: 0 the base (``lbr_iiwa_link_0``), ``i`` the link moved by joint ``i``
(``lbr_iiwa_link_i``, 1..7; 7 is the end effector), -1 anything else (floor, sky).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.model.robot_description import urdf_chain

__all__ = [
    "BASE_POSITION",
    "END_EFFECTOR_ID",
    "FLOOR_COLOUR",
    "FRAME_PERIOD",
    "JOINT_NAMES",
    "LINK_COLOURS",
    "PHYSICS_HZ",
    "ROBOT_URDF",
    "KukaEnv",
    "SimState",
    "camera_matrices",
    "kinematics_description",
]

JOINT_NAMES = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
ROBOT_URDF = "kuka_iiwa/model.urdf"  # in pybullet_data
BASE_POSITION = (0.0, 0.0, 0.0)  # of the robot's base link frame (unrotated), m
# The fixed camera: eye, target and up (world, m), vertical field of view (deg), near/far planes (m).
CAMERA_EYE = (1.3, -0.9, 1.0)
CAMERA_TARGET = (0.0, 0.0, 0.62)
CAMERA_UP = (0.0, 0.0, 1.0)
CAMERA_FOV = 50.0
CAMERA_NEAR, CAMERA_FAR = 0.1, 6.0
PHYSICS_HZ = 240
CAMERA_EVERY = 16  # physics steps per camera frame: 15 Hz
FRAME_PERIOD = CAMERA_EVERY / PHYSICS_HZ
FORCE = 2000.0
# Working range per joint (rad): inside the URDF limits, and keeping the arm in the picture.
WORKING_RANGE = np.array([1.4, 1.1, 1.6, 1.7, 1.8, 1.7, 2.5])
LINK_COLOURS = (  # segmentation id 0 (base) .. 7 (end effector): distinct saturated colours
    (0.15, 0.15, 0.15, 1),
    (0.95, 0.10, 0.10, 1),
    (1.00, 0.55, 0.00, 1),
    (0.95, 0.90, 0.05, 1),
    (0.10, 0.80, 0.15, 1),
    (0.05, 0.75, 0.90, 1),
    (0.15, 0.25, 0.95, 1),
    (0.85, 0.10, 0.85, 1),
)
END_EFFECTOR_ID = len(LINK_COLOURS) - 1
FLOOR_COLOUR = (0.30, 0.33, 0.40, 1)


class SimError(RuntimeError):
    """The simulator cannot start (pybullet missing, unexpected robot model)."""


@dataclass(frozen=True)
class SimState:
    positions: np.ndarray  # (7,) float64 rad
    velocities: np.ndarray  # (7,) float64 rad/s


def camera_matrices() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The camera's OpenGL view and projection matrices as pybullet computes them (16 floats each,
    column-major; pure functions, no simulator needed)."""
    import pybullet as p

    view = p.computeViewMatrix(
        cameraEyePosition=CAMERA_EYE, cameraTargetPosition=CAMERA_TARGET, cameraUpVector=CAMERA_UP
    )
    proj = p.computeProjectionMatrixFOV(fov=CAMERA_FOV, aspect=1.0, nearVal=CAMERA_NEAR, farVal=CAMERA_FAR)
    return tuple(view), tuple(proj)


def kinematics_description() -> dict[str, Any]:
    """The arm's chain (pybullet_data's URDF) at its base position and the camera, as the numbers of
    ``AstraConfig.kinematics``."""
    import pybullet_data

    view, projection = camera_matrices()
    return {
        **urdf_chain(Path(pybullet_data.getDataPath()) / ROBOT_URDF),
        "base_xyz": list(BASE_POSITION),
        "base_rpy": [0.0, 0.0, 0.0],
        "view": list(view),
        "projection": list(projection),
    }


def _joint_vector(name: str, value: np.ndarray | list[float], unit: str) -> np.ndarray:
    v = np.asarray(value, np.float64)
    if v.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(v)):
        raise ValueError(
            f"{name} has shape {v.shape} (finite: {bool(np.all(np.isfinite(v)))}); "
            f"expected ({len(JOINT_NAMES)},) finite values in {unit}, one per joint of {list(JOINT_NAMES)}"
        )
    return v


class KukaEnv:
    """KUKA iiwa with ``reset(seed)``, ``state``/``set_state``, ``step(command, dt)``, ``render``,
    ``segmentation`` and ``end_effector_position``. Same seed and calls give identical frames."""

    joint_names = JOINT_NAMES
    frame_period = FRAME_PERIOD
    physics_period = 1.0 / PHYSICS_HZ

    def __init__(self, size: int = 64) -> None:
        try:
            import pybullet as p
            import pybullet_data
        except ImportError as err:  # pragma: no cover - pinned in requirements.txt
            raise SimError(f"the KUKA simulator needs pybullet (pip install pybullet): {err}") from err
        if size < 8:
            raise ValueError(f"size={size}; expected an image side of at least 8 pixels")
        self.p = p
        self.size = size
        self.client = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
        p.setTimeStep(self.physics_period, physicsClientId=self.client)
        p.setGravity(0, 0, -9.81, physicsClientId=self.client)
        floor_shape = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[4, 4, 0.01], rgbaColor=FLOOR_COLOUR, physicsClientId=self.client
        )
        p.createMultiBody(
            baseMass=0,
            baseVisualShapeIndex=floor_shape,
            basePosition=[0, 0, -0.01],
            physicsClientId=self.client,
        )
        self.robot = p.loadURDF(
            ROBOT_URDF, basePosition=BASE_POSITION, useFixedBase=True, physicsClientId=self.client
        )
        self.joints = list(range(len(JOINT_NAMES)))
        info = [p.getJointInfo(self.robot, j, physicsClientId=self.client) for j in self.joints]
        names = tuple(i[1].decode() for i in info)
        if names != JOINT_NAMES:
            raise SimError(f"{ROBOT_URDF} joint names {list(names)}; expected {list(JOINT_NAMES)}")
        self.lower = np.maximum(np.array([i[8] for i in info]) + 0.1, -WORKING_RANGE)  # working range (rad)
        self.upper = np.minimum(np.array([i[9] for i in info]) - 0.1, WORKING_RANGE)
        for link, colour in zip(range(-1, len(self.joints)), LINK_COLOURS, strict=True):
            p.changeVisualShape(self.robot, link, rgbaColor=colour, physicsClientId=self.client)
        self.view, self.proj = camera_matrices()
        self._camera: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self, seed: int) -> SimState:
        """A fresh random pose (uniform in 80% of the working range), at rest; returns the state."""
        q = np.random.default_rng(seed).uniform(self.lower * 0.8, self.upper * 0.8)
        self.set_state(q, np.zeros(len(self.joints)))
        return self.state()

    def state(self) -> SimState:
        states = self.p.getJointStates(self.robot, self.joints, physicsClientId=self.client)
        return SimState(
            np.array([s[0] for s in states], np.float64), np.array([s[1] for s in states], np.float64)
        )

    def set_state(self, positions: np.ndarray, velocities: np.ndarray) -> None:
        """Put the arm at ``positions`` moving at ``velocities``; the motors hold that velocity."""
        q = _joint_vector("positions", positions, "rad")
        v = _joint_vector("velocities", velocities, "rad/s")
        for j, qj, vj in zip(self.joints, q, v, strict=True):
            self.p.resetJointState(self.robot, j, float(qj), float(vj), physicsClientId=self.client)
        self._motors(v)
        self._camera = None

    def step(self, command: np.ndarray, dt: float) -> SimState:
        """Hold the joint velocity ``command`` (rad/s) for ``dt`` seconds, a whole number of
        physics steps (1/240 s); returns the state at the end."""
        v = _joint_vector("command", command, "rad/s")
        steps = round(dt * PHYSICS_HZ)
        if steps < 1 or abs(steps - dt * PHYSICS_HZ) > 1e-6:
            raise ValueError(f"dt={dt}; expected a positive multiple of the physics period 1/{PHYSICS_HZ} s")
        self._motors(v)
        for _ in range(steps):
            self.p.stepSimulation(physicsClientId=self.client)
        self._camera = None
        return self.state()

    def render(self) -> np.ndarray:
        """The camera image, (S, S, 3) uint8 RGB."""
        return self._images()[0].copy()

    def segmentation(self) -> np.ndarray:
        """Per-pixel link id of the camera image, (S, S) int32: 0 base, 1..7 links, -1 none."""
        return self._images()[1].copy()

    def end_effector_position(self) -> np.ndarray:
        """World position (m) of the end-effector link frame, (3,) float64."""
        link = self.p.getLinkState(
            self.robot, self.joints[-1], computeForwardKinematics=True, physicsClientId=self.client
        )
        return np.array(link[4], np.float64)

    def close(self) -> None:
        self.p.disconnect(physicsClientId=self.client)

    def _motors(self, velocity: np.ndarray) -> None:
        self.p.setJointMotorControlArray(
            self.robot,
            self.joints,
            self.p.VELOCITY_CONTROL,
            targetVelocities=[float(x) for x in velocity],
            forces=[FORCE] * len(self.joints),
            physicsClientId=self.client,
        )

    def _images(self) -> tuple[np.ndarray, np.ndarray]:
        if self._camera is None:
            _, _, rgba, _, seg = self.p.getCameraImage(
                self.size,
                self.size,
                viewMatrix=self.view,
                projectionMatrix=self.proj,
                renderer=self.p.ER_TINY_RENDERER,
                lightDirection=[1.0, -0.6, 2.0],
                shadow=0,
                flags=self.p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
                physicsClientId=self.client,
            )
            rgb = np.asarray(rgba, np.uint8).reshape(self.size, self.size, 4)[:, :, :3].copy()
            raw = np.asarray(seg, np.int64).reshape(self.size, self.size)
            robot = (raw >= 0) & ((raw & ((1 << 24) - 1)) == self.robot)
            ids = np.where(robot, (raw >> 24), -1).astype(np.int32)  # pybullet link index + 1
            self._camera = (rgb, ids)
        return self._camera
