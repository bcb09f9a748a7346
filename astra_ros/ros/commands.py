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
  header stamp (0: now) + the point's time_from_start.

Robot state: ``sensor_msgs/JointState`` positions by name (extra joints are ignored: /joint_states
carries every joint of the robot), stamped by its header (0: now). Errors are ``InputError`` whose
``reason`` is the ``rejected.<reason>`` counter key.
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
from astra_ros.ros.input_limits import InputError, check_stamp_ns, truncate_for_log

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
) -> tuple[int, np.ndarray]:
    """JointTrajectory -> (stamp ns at which the first point is in force, its values in ``joint_order``).

    The header stamp is checked like any command stamp (``conversions.command_stamp_to_ns``), the
    stamp plus time_from_start for the int32 range.
    """
    if not msg.points:
        raise InputError("trajectory_empty", "JointTrajectory has no points; expected at least one")
    point = msg.points[0]
    field = "positions" if modality == "joint_position" else "velocities"
    what = f"JointTrajectory point 0 {field}"
    values = values_by_name(msg.joint_names, getattr(point, field), joint_order, what, extra_joints=False)
    command = bounded(values, what, max_magnitude)
    stamp_ns = command_stamp_to_ns(msg.header.stamp, now_ns, future_tolerance_ns)
    in_force_ns = check_stamp_ns(stamp_ns + duration_to_ns(point.time_from_start), "command", 0, 0)
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
) -> tuple[int, np.ndarray]:
    """A joint command of any ``JOINT_COMMAND_TYPES`` -> (stamp ns, values in ``joint_order``);
    a Float64MultiArray is in force from ``now_ns``."""
    if isinstance(msg, JointState):
        what = f"JointState {modality}"
        values = joint_state_field(msg, modality)
        command = joint_state_to_command(msg.name, values, joint_order, max_magnitude, what)
        return command_stamp_to_ns(msg.header.stamp, now_ns, future_tolerance_ns), command
    if isinstance(msg, JointTrajectory):
        return trajectory_to_command(msg, modality, joint_order, now_ns, future_tolerance_ns, max_magnitude)
    return now_ns, multi_array_to_command(msg, value_names, joint_order, max_magnitude)


def joint_state_to_state(
    msg: JointState, joint_order: Sequence[str], now_ns: int, future_tolerance_ns: int
) -> tuple[int, np.ndarray]:
    """/joint_states -> (stamp ns, joint positions (D,) float32 in ``joint_order``); reasons ``state_*``."""
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
    if not np.all(np.isfinite(positions)):
        raise InputError(
            "state_non_finite",
            truncate_for_log(f"{what} contains NaN or inf: {positions.tolist()}; expected finite values"),
        )
    return stamp_ns, positions.astype(np.float32)
