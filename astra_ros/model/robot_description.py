"""A robot's kinematic chain and camera as plain numbers (torch-free): what ``AstraConfig.kinematics``
holds, so checkpoints and sidecars carry the geometry the model projects (``model/kinematics.py``).

A description is a dict of JSON-able lists:

- ``joints``: the chain's joint names, root to tip; ``origin_xyz`` / ``origin_rpy`` / ``axis``: one
  ``[x, y, z]`` per joint, as in the URDF (the joint frame in its parent link's frame, rpy as URDF's
  fixed-axis roll-pitch-yaw, the rotation axis in the joint frame). A fixed joint has axis
  ``[0, 0, 0]`` and takes no joint position; the movable (revolute) joints take the robot state's
  first entries in chain order.
- ``base_xyz`` / ``base_rpy``: the pose of the root link's frame in the world.
- ``view`` / ``projection``: the camera's OpenGL view and projection matrices, 16 floats each,
  column-major (what pybullet's ``computeViewMatrix`` / ``computeProjectionMatrixFOV`` return). The
  projection maps onto the model's square image (any crop or resize folded in). For a real robot: the
  view matrix is the inverse of the camera's pose in the world (TF), in the OpenGL camera convention
  (x right, y up, looking along -z; the optical frame of ROS turned by pi about x); the projection
  follows from camera_info's K and the image size (``opengl_camera`` computes both).

Training configs may name a description instead (``model: {kinematics: kuka_iiwa}``,
``training.config.KINEMATICS``); the run's config stores the numbers.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

VECTOR_KEYS = ("origin_xyz", "origin_rpy", "axis")
KEYS = ("joints", *VECTOR_KEYS, "base_xyz", "base_rpy", "view", "projection")
MOVABLE_TYPES = ("revolute", "continuous")


def _numbers(text: str | None, default: str, where: str) -> list[float]:
    values = (text if text is not None else default).split()
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = []
    if len(numbers) != 3:
        raise ValueError(f"{where}={text!r}; expected three numbers")
    return numbers


def urdf_chain(path: str | Path, tip: str | None = None) -> dict[str, list[Any]]:
    """The joints from the URDF's root link to link ``tip`` (default: the end of the only chain), in
    chain order: ``joints``, ``origin_xyz``, ``origin_rpy``, ``axis`` (fixed joints with a zero axis).

    Revolute, continuous and fixed joints only; a branching tree needs ``tip``."""
    root = ET.parse(path).getroot()
    joints = {}
    for joint in root.iter("joint"):
        name, kind = joint.get("name"), joint.get("type")
        if kind not in (*MOVABLE_TYPES, "fixed"):
            raise ValueError(
                f"{path}: joint {name!r} has type {kind!r}; expected revolute, continuous or fixed"
            )
        origin = joint.find("origin")
        axis = joint.find("axis")
        joints[name] = {
            "parent": joint.find("parent").get("link"),
            "child": joint.find("child").get("link"),
            "xyz": _numbers(None if origin is None else origin.get("xyz"), "0 0 0", f"{name} origin xyz"),
            "rpy": _numbers(None if origin is None else origin.get("rpy"), "0 0 0", f"{name} origin rpy"),
            "axis": [0.0, 0.0, 0.0]
            if kind == "fixed"
            else _numbers(None if axis is None else axis.get("xyz"), "1 0 0", f"{name} axis xyz"),
        }
    children = {j["child"] for j in joints.values()}
    roots = sorted({j["parent"] for j in joints.values()} - children)
    if len(roots) != 1:
        raise ValueError(f"{path}: root links {roots}; expected exactly one")
    below: dict[str, list[str]] = {}
    for name, joint in joints.items():
        below.setdefault(joint["parent"], []).append(name)

    def path_to(link: str) -> list[str] | None:
        """Joint names from ``link`` down to ``tip`` (or to the leaf of an unbranched chain)."""
        if link == tip or (tip is None and link not in below):
            return []
        options = below.get(link, [])
        if tip is None and len(options) > 1:
            raise ValueError(
                f"{path}: link {link!r} has child joints {options}; expected a chain or a tip link"
            )
        for name in options:
            rest = path_to(joints[name]["child"])
            if rest is not None:
                return [name, *rest]
        return None

    chain = path_to(roots[0])
    if not chain:
        raise ValueError(f"{path}: no joints from root link {roots[0]!r} to tip {tip!r}")
    return {
        "joints": chain,
        "origin_xyz": [joints[n]["xyz"] for n in chain],
        "origin_rpy": [joints[n]["rpy"] for n in chain],
        "axis": [joints[n]["axis"] for n in chain],
    }


def movable_joints(description: dict[str, Any]) -> list[str]:
    """The chain's movable joints in chain order: the robot-state entries the model reads."""
    return [n for n, a in zip(description["joints"], description["axis"], strict=True) if any(a)]


def opengl_camera(
    world_from_optical: np.ndarray, k: np.ndarray, width: int, height: int, near: float, far: float
) -> tuple[list[float], list[float]]:
    """``view`` and ``projection`` (column-major) of a ROS camera: the pose ``(4, 4)`` of its optical
    frame (x right, y down, z forward) in the world (TF), and camera_info's ``K`` ``(3, 3)`` for its
    ``width`` x ``height`` image, which the model sees resized to its square (crop first: shift ``cx``,
    ``cy`` and pass the cropped size). ``K`` puts pixel centres at integers; the model's pixels start at
    the image's edge, so the centres move by half a pixel. ``near`` / ``far``: the depth range (m)."""
    gl_from_optical = np.diag([1.0, -1.0, -1.0, 1.0])  # a turn by pi about x
    view = np.linalg.inv(np.asarray(world_from_optical, np.float64) @ gl_from_optical)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5
    projection = np.array(
        [
            [2 * fx / width, 0.0, 1 - 2 * cx / width, 0.0],
            [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )
    return view.T.reshape(-1).tolist(), projection.T.reshape(-1).tolist()


def check(description: Any, max_joints: int) -> None:
    """Raise ValueError naming the key when ``description`` is not a valid description."""
    if isinstance(description, str):
        raise ValueError(
            f"kinematics={description!r} is a name; expected its description (a training config's "
            "model.kinematics resolves names: training.config.KINEMATICS)"
        )
    if not isinstance(description, dict) or set(description) != set(KEYS):
        got = sorted(description) if isinstance(description, dict) else type(description).__name__
        raise ValueError(f"kinematics has keys {got}; expected {sorted(KEYS)}")

    def numbers(label: str, value: Any, count: int) -> None:
        ok = isinstance(value, list) and len(value) == count
        ok = ok and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
        if not ok:
            raise ValueError(f"{label}={value!r}; expected a list of {count} finite numbers")

    names = description["joints"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"kinematics['joints']={names!r}; expected a non-empty list of joint names")
    for key in VECTOR_KEYS:
        rows = description[key]
        if not isinstance(rows, list) or len(rows) != len(names):
            raise ValueError(f"kinematics[{key!r}]={rows!r}; expected one [x, y, z] per joint ({len(names)})")
        for i, row in enumerate(rows):
            numbers(f"kinematics[{key!r}][{i}]", row, 3)
    for key, count in (("base_xyz", 3), ("base_rpy", 3), ("view", 16), ("projection", 16)):
        numbers(f"kinematics[{key!r}]", description[key], count)
    movable = movable_joints(description)
    if not 1 <= len(movable) <= max_joints:
        raise ValueError(
            f"kinematics has {len(movable)} movable joints (non-zero axis); "
            f"expected 1..{max_joints} (max_joints)"
        )
