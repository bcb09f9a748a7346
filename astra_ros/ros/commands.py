"""Joint commands and robot states from ros2_control's message types -> numpy, for the node.

Command types (parameter ``command_type``; the values are velocities or absolute position targets
by ``command_modality``), each converted to the model's joint order:

- ``joint_state``: ``sensor_msgs/JointState``, the velocity or position field by name
  (``conversions.joint_state_to_command``; extra joints are ignored).
- ``float64_multi_array``: ``std_msgs/Float64MultiArray`` as ros2_control's forward command
  controllers take it (JointGroupVelocityController, JointGroupPositionController): ``data`` holds
  one value per joint in the order of the ``joint_names`` parameter; the layout is ignored; the
  message has no stamp, so it is in force from its arrival (node clock).
- ``joint_trajectory``: ``trajectory_msgs/JointTrajectory`` (joint_trajectory_controller): the first
  point's velocities or positions by joint name (an unknown joint rejects the message), in force at
  header stamp (0: now) + the point's time_from_start, at most ``max_image_gap`` after the node
  clock (a later point would hold the command timeline for that long).

Robot state: ``sensor_msgs/JointState`` positions by name (extra joints are ignored: /joint_states
carries every joint of the robot), stamped by its header (0: now), within the magnitude limit of
commands (``max_command_magnitude``, rad). Every value is checked as the float32 the model takes
(``conversions.bounded``). Errors are ``InputError`` whose ``reason`` is the ``rejected.<reason>``
counter key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from astra_ros.ros.conversions import (
    bounded,
    command_stamp_to_ns,
    duration_to_ns,
    joint_state_to_command,
    stamp_to_ns,
    values_by_name,
)
from astra_ros.ros.input_limits import INT32_MAX_NS, InputError, check_stamp_ns, truncate_for_log

JointCommand = JointState | Float64MultiArray | JointTrajectory
JOINT_COMMAND_TYPES: dict[str, type] = {
    "joint_state": JointState,
    "float64_multi_array": Float64MultiArray,
    "joint_trajectory": JointTrajectory,
}
"""The message of each joint ``command_type`` (all on the node's ``joint_commands`` topic)."""


def joint_state_field(msg: JointState, modality: str) -> Sequence[float]:
    """The JointState field that holds ``modality``'s commands: positions or velocities."""
    return msg.position if modality == "joint_position" else msg.velocity


def multi_array_to_command(
    msg: Float64MultiArray,
    value_names: Sequence[str],
    joint_order: Sequence[str],
    max_magnitude: float = float("inf"),
) -> np.ndarray:
    """Float64MultiArray ``data`` (one value per ``value_names`` joint) -> values in ``joint_order``."""
    data = np.asarray(msg.data, np.float64)
    if data.shape != (len(value_names),):
        raise InputError(
            "joint_count",
            truncate_for_log(
                f"Float64MultiArray has {data.size} values; expected {len(value_names)}, one per joint of "
                f"joint_names {list(value_names)}"
            ),
        )
    index = {name: i for i, name in enumerate(value_names)}
    return bounded(data[[index[name] for name in joint_order]], "Float64MultiArray", max_magnitude)


def trajectory_to_command(
    msg: JointTrajectory,
    modality: str,
    joint_order: Sequence[str],
    now_ns: int,
    future_tolerance_ns: int,
    max_magnitude: float = float("inf"),
    max_ahead_ns: int = INT32_MAX_NS,
) -> tuple[int, np.ndarray]:
    """JointTrajectory -> (stamp ns at which the first point is in force, its values in ``joint_order``).

    The header stamp is checked like any command stamp (``conversions.command_stamp_to_ns``); the
    point's time_from_start must not be negative, and the point must take effect at most
    ``max_ahead_ns`` (``max_image_gap``) after the node clock (not checked while it reads 0).
    """
    if not msg.points:
        raise InputError("trajectory_empty", "JointTrajectory has no points; expected at least one")
    point = msg.points[0]
    field = "positions" if modality == "joint_position" else "velocities"
    what = f"JointTrajectory point 0 {field}"
    values = values_by_name(msg.joint_names, getattr(point, field), joint_order, what, extra_joints=False)
    command = bounded(values, what, max_magnitude)
    stamp_ns = command_stamp_to_ns(msg.header.stamp, now_ns, future_tolerance_ns)
    offset_ns = duration_to_ns(point.time_from_start)
    in_force_ns = check_stamp_ns(stamp_ns + offset_ns, "command", 0, 0)
    if offset_ns < 0 or (now_ns > 0 and in_force_ns - now_ns > max_ahead_ns):
        raise InputError(
            "trajectory_time_from_start",
            f"JointTrajectory point 0 time_from_start {offset_ns / 1e9:g} s takes effect "
            f"{(in_force_ns - now_ns) / 1e9:.3f} s after the node clock; expected time_from_start >= 0 "
            f"and at most max_image_gap={max_ahead_ns / 1e9:g} s ahead",
        )
    return in_force_ns, command


def header_stamp_ns(msg: JointCommand) -> int:
    """The header stamp of a joint command in ns; 0 for the unstamped Float64MultiArray."""
    return 0 if isinstance(msg, Float64MultiArray) else stamp_to_ns(msg.header.stamp)


def joint_command(
    msg: JointCommand,
    modality: str,
    value_names: Sequence[str],
    joint_order: Sequence[str],
    now_ns: int,
    future_tolerance_ns: int,
    max_magnitude: float = float("inf"),
    max_ahead_ns: int = INT32_MAX_NS,
) -> tuple[int, np.ndarray]:
    """A joint command of any ``JOINT_COMMAND_TYPES`` -> (stamp ns, values in ``joint_order``);
    a Float64MultiArray is in force from ``now_ns``; ``max_ahead_ns``: see ``trajectory_to_command``."""
    if isinstance(msg, JointState):
        what = f"JointState {modality}"
        values = joint_state_field(msg, modality)
        command = joint_state_to_command(msg.name, values, joint_order, max_magnitude, what)
        return command_stamp_to_ns(msg.header.stamp, now_ns, future_tolerance_ns), command
    if isinstance(msg, JointTrajectory):
        args = (now_ns, future_tolerance_ns, max_magnitude, max_ahead_ns)
        return trajectory_to_command(msg, modality, joint_order, *args)
    return now_ns, multi_array_to_command(msg, value_names, joint_order, max_magnitude)


def joint_state_to_state(
    msg: JointState,
    joint_order: Sequence[str],
    now_ns: int,
    future_tolerance_ns: int,
    max_magnitude: float = float("inf"),
) -> tuple[int, np.ndarray]:
    """/joint_states -> (stamp ns, joint positions (D,) float32 in ``joint_order``), finite and within
    ``max_magnitude`` as float32; reasons ``state_*``."""
    if not joint_order:
        raise InputError(
            "state_joint_order",
            "robot state before the joint order is known; expected the model's joint names, the "
            "joint_names parameter or a first JointState command",
        )
    stamp_ns = stamp_to_ns(msg.header.stamp)
    stamp_ns = check_stamp_ns(stamp_ns, "state", now_ns, future_tolerance_ns) if stamp_ns else now_ns
    what = "JointState position"
    positions = values_by_name(msg.name, msg.position, joint_order, what, prefix="state_")
    return stamp_ns, bounded(positions, what, max_magnitude, "state")
