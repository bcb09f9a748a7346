"""ROS messages <-> numpy for the node: rgb8 images out, raw command vectors in, stamps <-> ns.

Image *input* conversion lives in ``astra_ros.data.images`` (one way to do it). Errors raised
here are ``InputError`` with a short ``reason`` used as the diagnostics counter key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from astra_ros.model.actions import JOINT_MODALITIES, expected_width
from astra_ros.model.config import AstraConfig

TWIST_WIDTH = 6


class InputError(ValueError):
    """A message the node rejects; ``reason`` is the counter key in /diagnostics."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --- time ---------------------------------------------------------------------------------


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def ns_to_duration(ns: int) -> Duration:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Duration(sec=sec, nanosec=nanosec)


def duration_to_ns(duration: Duration) -> int:
    return int(duration.sec) * 1_000_000_000 + int(duration.nanosec)


# --- images -------------------------------------------------------------------------------


def rgb_to_image(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """(H, W, 3) uint8 -> sensor_msgs/Image rgb8."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb_to_image got {rgb.shape} {rgb.dtype}; expected (H, W, 3) uint8")
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = rgb.tobytes()
    return msg


def image_reject_reason(msg: Image) -> str:
    """Counter key for an image that ``image_message_to_rgb`` refused."""
    if int(msg.height) == 0 or int(msg.width) == 0:
        return "image_empty"
    if len(msg.data) != int(msg.height) * int(msg.step) and msg.encoding not in ("nv12", "nv21"):
        return "image_data_length"
    return "image_encoding"


# --- commands -----------------------------------------------------------------------------


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise InputError(
            "command_non_finite", f"{what} contains NaN or inf: {values.tolist()}; expected finite values"
        )
    return values


def joint_state_to_command(
    names: Sequence[str], velocities: Sequence[float], joint_order: Sequence[str]
) -> np.ndarray:
    """JointState name/velocity -> velocities in ``joint_order`` (extra joints are ignored)."""
    names = list(names)
    if len(velocities) != len(names):
        raise InputError(
            "joint_count",
            f"JointState has {len(names)} names and {len(velocities)} velocities; "
            "expected one velocity per name",
        )
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise InputError(
            "joint_names", f"JointState names {names} contain duplicates; expected distinct names"
        )
    missing = [name for name in joint_order if name not in index]
    if missing:
        raise InputError(
            "joint_names",
            f"JointState names {names} lack joints {missing}; expected all of {list(joint_order)}",
        )
    values = np.asarray(velocities, np.float64)[[index[name] for name in joint_order]].astype(np.float32)
    return _finite(values, "JointState velocity")


def twist_to_command(twist) -> np.ndarray:
    """geometry_msgs/Twist -> [vx, vy, vz, wx, wy, wz]."""
    values = np.array(
        [twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z],
        np.float32,
    )
    return _finite(values, "Twist")


def command_width(modality: str, joint_order: Sequence[str]) -> int:
    want = expected_width(modality, AstraConfig())
    return len(joint_order) if want is None else want


def trajectory_to_plan(
    msg: JointTrajectory, modality: str, joint_order: Sequence[str]
) -> tuple[list[int], np.ndarray]:
    """planned_commands -> (offsets ns from the plan stamp, commands (P, D) in the model's order).

    For twist the points' ``velocities`` are [vx, vy, vz, wx, wy, wz] and joint_names is ignored.
    """
    if not msg.points:
        raise InputError("plan_empty", "planned_commands has no points; expected at least one")
    offsets: list[int] = []
    rows: list[np.ndarray] = []
    for i, point in enumerate(msg.points):
        offset = duration_to_ns(point.time_from_start)
        if offsets and offset <= offsets[-1]:
            raise InputError(
                "plan_order",
                f"planned_commands point {i} time_from_start {offset} ns; expected increasing times",
            )
        if modality == "joint_velocity":
            row = joint_state_to_command(msg.joint_names, point.velocities, joint_order)
        else:
            row = np.asarray(point.velocities, np.float32)
            if row.shape != (TWIST_WIDTH,):
                raise InputError(
                    "plan_width",
                    f"planned_commands point {i} has {row.size} velocities; expected {TWIST_WIDTH}",
                )
            _finite(row, "planned_commands")
        offsets.append(offset)
        rows.append(row)
    return offsets, np.stack(rows)


def commands_to_trajectory(
    commands: np.ndarray,
    modality: str,
    joint_order: Sequence[str],
    stamp_ns: int,
    frame_id: str,
    step_ns: int,
) -> JointTrajectory:
    """(H, D) commands -> JointTrajectory, point i at (i + 1) * step."""
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.joint_names = list(joint_order) if modality == "joint_velocity" else []
    for i, row in enumerate(np.asarray(commands, np.float64)):
        point = JointTrajectoryPoint()
        point.velocities = row.tolist()
        point.time_from_start = ns_to_duration((i + 1) * step_ns)
        msg.points.append(point)
    return msg


def imagine_actions(
    request, modalities: Sequence[str], joint_order: Sequence[str], max_horizon: int
) -> np.ndarray:
    """Validate an Imagine request -> (B, H, D) float32 commands in the model's joint order."""
    modality = request.modality
    if modality not in modalities:
        raise InputError("imagine_modality", f"modality={modality!r}; expected one of {list(modalities)}")
    batch, horizon, width = int(request.num_candidates), int(request.horizon), int(request.action_dim)
    if batch < 1:
        raise InputError("imagine_shape", f"num_candidates={batch}; expected >= 1")
    if not 1 <= horizon <= max_horizon:
        raise InputError("imagine_shape", f"horizon={horizon}; expected 1..{max_horizon}")
    values = np.asarray(request.actions, np.float32)
    if values.size != batch * horizon * width:
        raise InputError(
            "imagine_shape",
            f"len(actions)={values.size}; expected num_candidates*horizon*action_dim"
            f"={batch}*{horizon}*{width}={batch * horizon * width}",
        )
    actions = values.reshape(batch, horizon, width)
    if not np.all(np.isfinite(actions)):
        raise InputError("imagine_non_finite", "actions contain NaN or inf; expected finite values")
    if modality in JOINT_MODALITIES:
        names = list(request.joint_names)
        if len(names) != width:
            raise InputError(
                "imagine_shape", f"joint_names has {len(names)} names; expected action_dim={width} names"
            )
        if set(names) != set(joint_order) or len(set(names)) != len(names):
            raise InputError(
                "imagine_joint_names", f"joint_names={names}; expected the joints {list(joint_order)}"
            )
        index = {name: i for i, name in enumerate(names)}
        return np.ascontiguousarray(actions[..., [index[name] for name in joint_order]])
    want = command_width(modality, joint_order)
    if width != want:
        raise InputError("imagine_shape", f"action_dim={width} for {modality}; expected {want}")
    return actions
