"""Packing robot commands into the model's padded per-frame action vector. Torch-free.

Every modality shares one vector of ``cfg.action_dim`` values plus a mask of the same
length (1 where a value is present):

- ``joint_velocity``: joint velocities in rad/s (or m/s), one per joint, up to ``max_joints``.
- ``twist``: ``[vx, vy, vz, wx, wy, wz]`` in m/s and rad/s.
- ``pose_delta``: ``[dx, dy, dz, qx, qy, qz, qw]`` per frame.
- ``discrete``: a command index in ``[0, num_discrete)``, packed one-hot.
- ``joint_position``: joint position targets relative to the current joint positions
  (``target - state``, radians), one per joint, up to ``max_joints``; packed times
  ``JOINT_POSITION_SCALE`` so that per-frame displacements (0.005-0.1 rad on the G1 at 15-30 Hz)
  come near the unit range of velocities in rad/s that the projectors start from.

A model covers ``cfg.modalities`` (models saved before ``joint_position`` existed cover the first
four); packing another modality for it is an error.
"""

from __future__ import annotations

import numpy as np

from astra_ros.model.config import MODALITIES, MODALITY_IDS, AstraConfig

FIXED_DIMS = {"twist": 6, "pose_delta": 7}
JOINT_MODALITIES = ("joint_velocity", "joint_position")
JOINT_POSITION_SCALE = 20.0


def modality_id(modality: str) -> int:
    if modality not in MODALITY_IDS:
        raise ValueError(f"unknown action modality {modality!r}; expected one of {list(MODALITIES)}")
    return MODALITY_IDS[modality]


def expected_width(modality: str, cfg: AstraConfig) -> int | None:
    """Raw command width for a modality (None: any joint count up to max_joints)."""
    modality_id(modality)
    if modality == "discrete":
        return 1
    return FIXED_DIMS.get(modality)


def pack_actions(values: np.ndarray, modality: str, cfg: AstraConfig) -> tuple[np.ndarray, np.ndarray]:
    """Raw commands ``(..., D)`` -> padded actions and mask, both ``(..., cfg.action_dim)`` float32."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 0:
        raise ValueError(f"actions for {modality!r} must have a last axis of command values; got a scalar")
    width = values.shape[-1]
    want = expected_width(modality, cfg)
    if modality not in cfg.modalities:
        raise ValueError(
            f"this model has no action tables for {modality!r}; it covers {list(cfg.modalities)} "
            f"(num_modalities={cfg.num_modalities})"
        )
    if want is None and not 1 <= width <= cfg.max_joints:
        raise ValueError(f"{modality} actions have {width} joints; expected 1..{cfg.max_joints} (max_joints)")
    if want is not None and width != want:
        raise ValueError(f"{modality} actions have width {width}; expected {want}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{modality} actions contain NaN or inf")
    actions = np.zeros(values.shape[:-1] + (cfg.action_dim,), np.float32)
    mask = np.zeros_like(actions)
    if modality == "discrete":
        index = values[..., 0]
        if np.any(index != np.round(index)) or np.any(index < 0) or np.any(index >= cfg.num_discrete):
            raise ValueError(f"discrete actions must be integers in [0, {cfg.num_discrete})")
        np.put_along_axis(actions, index.astype(np.int64)[..., None], 1.0, axis=-1)
        mask[..., : cfg.num_discrete] = 1.0
    else:
        actions[..., :width] = values * JOINT_POSITION_SCALE if modality == "joint_position" else values
        mask[..., :width] = 1.0
    return actions, mask


def state_step(commands: np.ndarray, modality: str, period: np.ndarray | float) -> np.ndarray:
    """The joint displacement ``(..., D)`` that joint commands ask for over an interval of
    ``period`` seconds: velocity times the period, or the relative position target itself. The
    runtime integrates it to dead-reckon the robot state over a rollout."""
    commands = np.asarray(commands, np.float32)
    if modality == "joint_velocity":
        return (commands * np.asarray(period, np.float32)).astype(np.float32)
    if modality == "joint_position":
        return commands
    raise ValueError(
        f"no joint state follows from {modality!r} commands; expected one of {list(JOINT_MODALITIES)}"
    )


def relative_targets(targets: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Absolute joint position targets ``(B, H, D)`` -> the model's ``joint_position`` commands.

    Step 0 drives the interval from the frame whose measured joint positions are ``state`` ``(D,)``:
    ``targets[:, 0] - state``; each later step starts where the previous target left the joints:
    ``targets[:, h] - targets[:, h - 1]``. Raises ValueError for mismatched shapes.
    """
    targets = np.asarray(targets, np.float32)
    state = np.asarray(state, np.float32)
    if targets.ndim != 3 or state.shape != targets.shape[2:]:
        raise ValueError(
            f"targets {targets.shape} and state {state.shape}; expected (B, H, D) targets and a (D,) state"
        )
    previous = np.concatenate([np.broadcast_to(state, targets[:, :1].shape), targets[:, :-1]], axis=1)
    return (targets - previous).astype(np.float32)
