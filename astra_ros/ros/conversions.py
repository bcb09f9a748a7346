"""ROS messages <-> numpy for the node: rgb8 images out, raw command vectors in, stamps <-> ns.

Image *input* conversion lives in ``astra_ros.data.images`` (one way to do it), the bounds on
untrusted input in ``astra_ros.ros.input_limits``. Errors raised here are ``InputError`` with a
short ``reason`` used as the diagnostics counter key. Commands are checked to be finite and within
``max_magnitude`` (the largest absolute value of any component: rad/s, m/s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CompressedImage, Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from astra_ros.data.images import ImageFormatError, image_message_to_rgb, resize_to_model
from astra_ros.model.actions import JOINT_MODALITIES, expected_width
from astra_ros.model.config import AstraConfig
from astra_ros.ros.input_limits import (
    INT32_MAX_NS,
    InputError,
    check_frame_id,
    check_names,
    check_stamp_ns,
    truncate_for_log,
)

TWIST_WIDTH = 6
FLOAT32_MAX = float(np.finfo(np.float32).max)


# --- time ---------------------------------------------------------------------------------


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Raises ValueError outside int32 seconds (rclpy would wrap the value on the wire)."""
    if not 0 <= ns <= INT32_MAX_NS:
        raise ValueError(f"stamp {ns} ns; expected 0..{INT32_MAX_NS} ns (int32 seconds)")
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


def rgb_to_compressed_image(rgb: np.ndarray, stamp_ns: int, frame_id: str, codec: str) -> CompressedImage:
    """(H, W, 3) uint8 -> sensor_msgs/CompressedImage as image_transport's ``compressed`` writes it."""
    from astra_ros.data.compressed import encode_rgb

    msg = CompressedImage()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.format, msg.data = encode_rgb(rgb, codec)
    return msg


def image_to_model(
    msg: Image | CompressedImage,
    size: int,
    max_pixels: int,
    now_ns: int,
    future_tolerance_ns: int,
    reserve_ns: int,
) -> tuple[int, np.ndarray]:
    """Validated image (raw or compressed) -> (stamp ns, (size, size, 3) uint8 RGB); raises InputError
    with its reason.

    The stamp (int32 range with ``reserve_ns`` to spare for the predicted stamps, at most
    ``future_tolerance_ns`` after ``now_ns``) and the frame_id length are checked before the pixels;
    the pixel count (``max_pixels``) before anything is decoded.
    """
    stamp_ns = check_stamp_ns(stamp_to_ns(msg.header.stamp), "image", now_ns, future_tolerance_ns, reserve_ns)
    check_frame_id(msg.header.frame_id, "image")
    try:
        rgb = resize_to_model(image_message_to_rgb(msg, max_pixels), size)
    except ImageFormatError as err:
        raise InputError(err.reason, str(err)) from None
    return stamp_ns, rgb


# --- commands -----------------------------------------------------------------------------


def bounded(values: np.ndarray, what: str, max_magnitude: float, prefix: str = "command") -> np.ndarray:
    """``values`` (float64, as received) as the float32 the model takes, if finite and within
    ``max_magnitude`` there (a finite float64 beyond float32's range, e.g. 1e39, becomes inf and is
    rejected by the magnitude rule, whatever the limit)."""
    if not np.all(np.isfinite(values)):
        raise InputError(
            f"{prefix}_non_finite",
            truncate_for_log(f"{what} contains NaN or inf: {values.tolist()}; expected finite values"),
        )
    with np.errstate(over="ignore"):
        single = values.astype(np.float32)
    largest = float(np.max(np.abs(single), initial=0.0))
    if largest > min(max_magnitude, FLOAT32_MAX):
        received = float(np.max(np.abs(values)))
        within = "" if max_magnitude <= FLOAT32_MAX else f" (and float32's {FLOAT32_MAX:.4g})"
        raise InputError(
            f"{prefix}_magnitude",
            f"{what} has |value| up to {received:g} ({largest:g} as float32); expected at most "
            f"max_command_magnitude={max_magnitude:g}{within}",
        )
    return single


def command_stamp_to_ns(stamp: Time, now_ns: int, future_tolerance_ns: int) -> int:
    """A command's header stamp in ns, ``now_ns`` when unstamped (0); raises InputError when out of
    the int32 range or more than ``future_tolerance_ns`` ahead of the node clock."""
    stamp_ns = stamp_to_ns(stamp)
    if stamp_ns == 0:
        return now_ns
    return check_stamp_ns(stamp_ns, "command", now_ns, future_tolerance_ns)


def learn_joint_order(names: Sequence[str], values: Sequence[float]) -> tuple[str, ...]:
    """The joint order of a JointState's names (the first one's, when neither the model nor the
    joint_names parameter gives it); raises InputError when the names cannot give one."""
    names = check_names(list(names), "JointState")
    if not names or len(names) != len(values) or len(set(names)) != len(names):
        problem = f"cannot learn the joint order from names {names} with {len(values)}"
        raise InputError("joint_names", f"{problem} values; set the joint_names parameter")
    return tuple(names)


def values_by_name(
    names: Sequence[str],
    values: Sequence[float],
    joint_order: Sequence[str],
    what: str,
    extra_joints: bool = True,
    prefix: str = "",
) -> np.ndarray:
    """``values`` (one per name) in ``joint_order`` as float64; raises InputError
    ``<prefix>joint_count`` / ``<prefix>joint_names`` (missing or duplicate names, and unknown ones
    unless ``extra_joints``: then they are ignored). ``what`` names the field ("JointState velocity")."""
    names = check_names(list(names), what)
    if len(values) != len(names):
        raise InputError(
            f"{prefix}joint_count",
            f"{what} has {len(names)} names and {len(values)} values; expected one value per name",
        )
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise InputError(
            f"{prefix}joint_names",
            truncate_for_log(f"{what} names {names} contain duplicates; expected distinct names"),
        )
    missing = [name for name in joint_order if name not in index]
    unknown = [] if extra_joints else [name for name in names if name not in set(joint_order)]
    if missing or unknown:
        problem = f"lacks joints {missing}" if missing else f"has unknown joints {unknown}"
        raise InputError(
            f"{prefix}joint_names",
            truncate_for_log(
                f"{what} {problem} (got {len(names)} names: {names}); expected "
                f"{'all' if extra_joints else 'exactly'} of {list(joint_order)}"
            ),
        )
    return np.asarray(values, np.float64)[[index[name] for name in joint_order]]


def joint_state_to_command(
    names: Sequence[str],
    values: Sequence[float],
    joint_order: Sequence[str],
    max_magnitude: float = float("inf"),
    what: str = "JointState velocity",
) -> np.ndarray:
    """JointState name/values -> the values in ``joint_order`` (extra joints are ignored), bounded."""
    return bounded(values_by_name(names, values, joint_order, what), what, max_magnitude)


def twist_to_command(twist, max_magnitude: float = float("inf")) -> np.ndarray:
    """geometry_msgs/Twist -> [vx, vy, vz, wx, wy, wz]."""
    values = np.array(
        [twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z],
        np.float64,
    )
    return bounded(values, "Twist", max_magnitude)


def command_width(modality: str, joint_order: Sequence[str]) -> int:
    want = expected_width(modality, AstraConfig())
    return len(joint_order) if want is None else want


def trajectory_to_plan(
    msg: JointTrajectory, modality: str, joint_order: Sequence[str], max_magnitude: float = float("inf")
) -> tuple[list[int], np.ndarray]:
    """planned_commands -> (offsets ns from the plan stamp, commands (P, D) in the model's order).

    Joint modalities: the points' ``velocities`` (joint_velocity) or ``positions`` (joint_position,
    absolute targets) by joint name. For twist the points' ``velocities`` are [vx, vy, vz, wx, wy, wz]
    and joint_names is ignored.
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
        if modality in JOINT_MODALITIES:
            values = point.positions if modality == "joint_position" else point.velocities
            row = joint_state_to_command(msg.joint_names, values, joint_order, max_magnitude)
        else:
            row = np.asarray(point.velocities, np.float64)
            if row.shape != (TWIST_WIDTH,):
                raise InputError(
                    "plan_width",
                    f"planned_commands point {i} has {row.size} velocities; expected {TWIST_WIDTH}",
                )
            row = bounded(row, "planned_commands", max_magnitude)
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
    """(H, D) commands -> JointTrajectory, point i at (i + 1) * step: in ``positions`` for
    joint_position (absolute targets), else in ``velocities``."""
    msg = JointTrajectory()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.joint_names = list(joint_order) if modality in JOINT_MODALITIES else []
    for i, row in enumerate(np.asarray(commands, np.float64)):
        point = JointTrajectoryPoint()
        if modality == "joint_position":
            point.positions = row.tolist()
        else:
            point.velocities = row.tolist()
        point.time_from_start = ns_to_duration((i + 1) * step_ns)
        msg.points.append(point)
    return msg


def imagine_actions(
    request,
    modalities: Sequence[str],
    joint_order: Sequence[str],
    max_horizon: int,
    max_magnitude: float = float("inf"),
) -> np.ndarray:
    """Validate an Imagine request -> (B, H, D) float32 commands in the model's joint order."""
    modality = request.modality
    if modality not in modalities:
        raise InputError(
            "imagine_modality",
            f"modality={truncate_for_log(repr(modality), 80)}; expected one of {list(modalities)}",
        )
    batch, horizon, width = int(request.num_candidates), int(request.horizon), int(request.action_dim)
    if batch < 1:
        raise InputError("imagine_shape", f"num_candidates={batch}; expected >= 1")
    if not 1 <= horizon <= max_horizon:
        raise InputError("imagine_shape", f"horizon={horizon}; expected 1..{max_horizon}")
    values = np.asarray(request.actions, np.float64)
    if values.size != batch * horizon * width:
        raise InputError(
            "imagine_shape",
            f"len(actions)={values.size}; expected num_candidates*horizon*action_dim"
            f"={batch}*{horizon}*{width}={batch * horizon * width}",
        )
    if not np.all(np.isfinite(values)):
        raise InputError("imagine_non_finite", "actions contain NaN or inf; expected finite values")
    actions = bounded(values, "Imagine actions", max_magnitude, "imagine").reshape(batch, horizon, width)
    if modality in JOINT_MODALITIES:
        names = list(request.joint_names)
        if len(names) != width:
            raise InputError(
                "imagine_shape", f"joint_names has {len(names)} names; expected action_dim={width} names"
            )
        if set(names) != set(joint_order) or len(set(names)) != len(names):
            raise InputError(
                "imagine_joint_names",
                truncate_for_log(f"joint_names={names}; expected the joints {list(joint_order)}"),
            )
        index = {name: i for i, name in enumerate(names)}
        return np.ascontiguousarray(actions[..., [index[name] for name in joint_order]])
    want = command_width(modality, joint_order)
    if width != want:
        raise InputError("imagine_shape", f"action_dim={width} for {modality}; expected {want}")
    return actions
