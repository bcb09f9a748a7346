"""ros2_control command formats, /joint_states and absolute position targets, without DDS:
``astra_ros.ros.commands``, the JointState/plan field choice in ``ros.conversions``, the settings
rules and ``model.actions.relative_targets``."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from astra_ros.model.actions import relative_targets
from astra_ros.ros import commands
from astra_ros.ros.conversions import (
    commands_to_trajectory,
    joint_state_to_command,
    ns_to_stamp,
    trajectory_to_plan,
)
from astra_ros.ros.input_limits import InputError
from astra_ros.ros.process import StartupError
from astra_ros.ros.settings import Settings, SettingsError, joint_order

NOW = 1_700_000_000 * 1_000_000_000
TOLERANCE = 500_000_000
ORDER = ("a", "b", "c")  # the model's joint order
NAN = float("nan")


def reason_of(call, *args) -> str:
    with pytest.raises(InputError) as err:
        call(*args)
    return err.value.reason


def multi_array(values) -> Float64MultiArray:
    msg = Float64MultiArray(data=[float(v) for v in values])
    msg.layout.dim = [MultiArrayDimension(label="joints", size=99, stride=99)]  # ignored
    return msg


def trajectory(names, positions=(), velocities=(), stamp_ns=NOW, from_start_ns=0) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = ns_to_stamp(stamp_ns)
    point = JointTrajectoryPoint(
        positions=[float(v) for v in positions], velocities=[float(v) for v in velocities]
    )
    point.time_from_start = Duration(sec=from_start_ns // 10**9, nanosec=from_start_ns % 10**9)
    msg.points = [point, JointTrajectoryPoint(positions=[9.0] * len(positions))]  # later points: not used
    return msg


def joint_state(names, positions=(), velocities=(), stamp_ns=NOW) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in positions])
    msg.velocity = [float(v) for v in velocities]
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def test_float64_multi_array_values_in_joint_names_order_to_the_model_order():
    out = commands.multi_array_to_command(multi_array([3.0, 1.0, 2.0]), ("c", "a", "b"), ORDER, 10.0)
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.0, 3.0]
    stamp, out = commands.joint_command(multi_array([3, 1, 2]), "joint_position", "cab", ORDER, NOW, 0)
    assert stamp == NOW and out.tolist() == [1.0, 2.0, 3.0]  # no stamp: in force from its arrival
    assert commands.header_stamp_ns(multi_array([1.0])) == 0
    names = ("c", "a", "b")
    for values, reason in (
        ([1.0, 2.0], "joint_count"),
        ([1.0, 2.0, 3.0, 4.0], "joint_count"),
        ([], "joint_count"),
        ([1.0, NAN, 3.0], "command_non_finite"),
        ([1.0, float("inf"), 3.0], "command_non_finite"),
        ([1.0, 11.0, 3.0], "command_magnitude"),
    ):
        assert reason_of(commands.multi_array_to_command, multi_array(values), names, ORDER, 10.0) == reason
    with pytest.raises(InputError, match=r"has 2 values; expected 3, one per joint of joint_names \['c'"):
        commands.multi_array_to_command(multi_array([1.0, 2.0]), names, ORDER, 10.0)


def test_joint_trajectory_first_point_by_name_in_force_at_stamp_plus_time_from_start():
    msg = trajectory(
        ("b", "c", "a"), positions=[2.0, 3.0, 1.0], velocities=[0.2, 0.3, 0.1], from_start_ns=10**8
    )
    stamp, position = commands.trajectory_to_command(msg, "joint_position", ORDER, NOW, TOLERANCE)
    assert stamp == NOW + 10**8 and position.tolist() == [1.0, 2.0, 3.0]
    stamp, velocity = commands.joint_command(msg, "joint_velocity", (), ORDER, NOW, TOLERANCE)
    assert stamp == NOW + 10**8 and np.allclose(velocity, [0.1, 0.2, 0.3])
    unstamped = trajectory(ORDER, positions=[0, 0, 0], stamp_ns=0, from_start_ns=5)
    assert commands.trajectory_to_command(unstamped, "joint_position", ORDER, NOW, TOLERANCE)[0] == NOW + 5

    def reason(msg: JointTrajectory) -> str:
        return reason_of(commands.trajectory_to_command, msg, "joint_position", ORDER, NOW, TOLERANCE, 10.0)

    assert reason(JointTrajectory(joint_names=list(ORDER))) == "trajectory_empty"
    assert reason(trajectory(("a", "b", "c", "d"), positions=[0, 0, 0, 0])) == "joint_names"  # unknown joint
    assert reason(trajectory(("a", "b"), positions=[0, 0])) == "joint_names"  # missing joint
    assert reason(trajectory(("a", "a", "b"), positions=[0, 0, 0])) == "joint_names"
    assert reason(trajectory(ORDER, positions=[0, 0])) == "joint_count"
    assert reason(trajectory(ORDER, velocities=[0, 0, 0])) == "joint_count"  # no positions for joint_position
    assert reason(trajectory(ORDER, positions=[0, NAN, 0])) == "command_non_finite"
    assert reason(trajectory(ORDER, positions=[0, 1e6, 0])) == "command_magnitude"
    assert reason(trajectory(ORDER, positions=[0, 0, 0], stamp_ns=NOW + 10**9)) == "command_stamp_future"
    unknown = trajectory(("a", "b", "c", "d"), positions=[0, 0, 0, 0])
    with pytest.raises(InputError, match=r"has unknown joints \['d'\]"):
        commands.trajectory_to_command(unknown, "joint_position", ORDER, NOW, TOLERANCE)


def test_a_trajectory_point_takes_effect_at_most_max_image_gap_ahead():
    """Issue 28: a point 1e6 s ahead (only the int32 range was checked) held the command timeline."""
    limits = (NOW, TOLERANCE, 10.0, 10**9)  # max_image_gap 1 s

    def to_command(from_start_ns: int) -> tuple[int, np.ndarray]:
        msg = trajectory(ORDER, positions=[0, 0, 0], from_start_ns=from_start_ns)
        return commands.trajectory_to_command(msg, "joint_position", ORDER, *limits)

    assert to_command(9 * 10**8)[0] == NOW + 9 * 10**8
    for from_start_ns in (10**15, -5 * 10**9, 10**9 + 1):
        assert reason_of(to_command, from_start_ns) == "trajectory_time_from_start"
    with pytest.raises(
        InputError, match=r"time_from_start 1e\+06 s takes effect 1000000.000 s after .*max_image_gap=1 s"
    ):
        to_command(10**15)
    msg = trajectory(ORDER, positions=[0, 0, 0], from_start_ns=10**15)
    assert (
        commands.joint_command(msg, "joint_position", (), ORDER, 0, TOLERANCE, 10.0, 10**9)[0] > 0
    )  # clock at 0


def test_joint_state_commands_read_the_field_of_the_modality():
    msg = joint_state(("c", "b", "a"), positions=[3.0, 2.0, 1.0], velocities=[0.3, 0.2, 0.1])
    stamp, position = commands.joint_command(msg, "joint_position", (), ORDER, NOW, TOLERANCE)
    assert stamp == NOW == commands.header_stamp_ns(msg) and position.tolist() == [1.0, 2.0, 3.0]
    stamp, velocity = commands.joint_command(msg, "joint_velocity", (), ORDER, NOW, TOLERANCE)
    assert np.allclose(velocity, [0.1, 0.2, 0.3])
    future = joint_state(ORDER, velocities=[0, 0, 0], stamp_ns=NOW + 10**9)
    args = ("joint_velocity", (), ORDER, NOW, TOLERANCE)
    assert reason_of(commands.joint_command, future, *args) == "command_stamp_future"
    assert list(commands.joint_state_field(msg, "joint_position")) == [3.0, 2.0, 1.0]
    assert list(commands.joint_state_field(msg, "joint_velocity")) == pytest.approx([0.3, 0.2, 0.1])
    values = commands.joint_state_field(msg, "joint_position")
    assert joint_state_to_command(msg.name, values, ORDER, 10.0, "JointState joint_position").tolist() == [
        1,
        2,
        3,
    ]
    no_positions = joint_state(ORDER, velocities=[0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="JointState joint_position has 3 names and 0 values") as err:
        joint_state_to_command(ORDER, no_positions.position, ORDER, 10.0, "JointState joint_position")
    assert err.value.reason == "joint_count"


def test_robot_state_from_joint_states_by_name_extra_joints_ignored():
    msg = joint_state(("gripper", "c", "a", "b"), positions=[9.0, 3.0, 1.0, 2.0], stamp_ns=NOW - 5)
    stamp, positions = commands.joint_state_to_state(msg, ORDER, NOW, TOLERANCE)
    assert stamp == NOW - 5 and positions.dtype == np.float32 and positions.tolist() == [1.0, 2.0, 3.0]
    unstamped = joint_state(ORDER, positions=[0, 0, 0], stamp_ns=0)
    assert commands.joint_state_to_state(unstamped, ORDER, NOW, TOLERANCE)[0] == NOW

    def reason(msg: JointState, order=ORDER) -> str:
        return reason_of(commands.joint_state_to_state, msg, order, NOW, TOLERANCE, 10.0)

    assert reason(joint_state(("a", "b"), positions=[0, 0])) == "state_joint_names"  # missing joint
    assert reason(joint_state(("a", "a", "b", "c"), positions=[0, 0, 0, 0])) == "state_joint_names"
    assert reason(joint_state(ORDER, positions=[0, 0])) == "state_joint_count"
    assert reason(joint_state(ORDER, velocities=[0, 0, 0])) == "state_joint_count"  # no positions
    assert reason(joint_state(ORDER, positions=[0, NAN, 0])) == "state_non_finite"
    assert reason(joint_state(ORDER, positions=[0, 11.0, 0])) == "state_magnitude"  # max_command_magnitude
    # finite in float64, inf as the float32 the model takes (issue 28): rejected, no "overflow" warning
    with np.errstate(over="raise"):
        assert reason(joint_state(ORDER, positions=[0, 1e39, 0])) == "state_magnitude"
    with pytest.raises(
        InputError, match=r"up to 1e\+39 \(inf as float32\); expected at most max_command_magnitude=10"
    ):
        commands.joint_state_to_state(joint_state(ORDER, positions=[0, 1e39, 0]), ORDER, NOW, TOLERANCE, 10.0)
    huge = joint_state(ORDER, positions=[1e39] * 3)  # the planner's states: no limit but float32's
    assert reason_of(commands.joint_state_to_state, huge, ORDER, NOW, TOLERANCE) == "state_magnitude"
    assert reason(joint_state(ORDER, positions=[0, 0, 0], stamp_ns=NOW + 10**9)) == "state_stamp_future"
    assert reason(joint_state(ORDER, positions=[0, 0, 0]), None) == "state_joint_order"
    assert reason(joint_state([f"j{i}" for i in range(300)], positions=[0] * 300)) == "joint_names_limit"


def test_plans_and_published_actions_carry_positions_for_joint_position():
    plan = trajectory(("b", "a", "c"), positions=[2.0, 1.0, 3.0])
    plan.points[1].time_from_start = Duration(sec=1)
    plan.points[1].positions = [5.0, 4.0, 6.0]
    offsets, rows = trajectory_to_plan(plan, "joint_position", ORDER, 10.0)
    assert offsets == [0, 10**9] and rows.tolist() == [[1, 2, 3], [4, 5, 6]]
    msg = commands_to_trajectory(rows, "joint_position", ORDER, NOW, "cam", 10**8)
    assert msg.joint_names == list(ORDER) and [list(p.positions) for p in msg.points] == [
        [1, 2, 3],
        [4, 5, 6],
    ]
    assert all(not p.velocities for p in msg.points)
    velocity = commands_to_trajectory(rows, "joint_velocity", ORDER, NOW, "cam", 10**8)
    assert list(velocity.points[0].velocities) == [1, 2, 3] and not velocity.points[0].positions


def test_joint_order_of_each_command_type_and_the_settings_rules():
    def order(model_joints=(), **values):
        hold = {"stale_command_policy": "hold"} if values.get("command_modality") == "joint_position" else {}
        return joint_order(Settings.from_values({**hold, **values}), model_joints)

    assert order(ORDER, command_type="twist") == ()
    multi_array = {"command_type": "float64_multi_array", "joint_names": ["c", "b", "a"]}
    assert order(ORDER, command_modality="joint_position", **multi_array) == ORDER  # the model's order
    assert order(**multi_array) == ("c", "b", "a")  # the model records none
    assert order() is None  # joint_state: learnt from the first message
    with pytest.raises(StartupError, match="expected the model's joints"):
        order(ORDER, joint_names=["a", "x"])
    with pytest.raises(StartupError, match="command_type='joint_trajectory'.*joint_names parameter"):
        order(command_type="joint_trajectory", command_modality="joint_position")

    position = Settings.from_values(
        {
            "command_type": "float64_multi_array",
            "command_modality": "joint_position",
            "joint_names": ["a"],
            "stale_command_policy": "hold",
        }
    )
    assert position.modality == "joint_position" and position.state_topic == "joint_states"
    assert (
        Settings.from_values({"command_type": "twist", "command_modality": "joint_position"}).modality
        == "twist"
    )
    assert Settings.from_values({"state_topic": "/robot/joint_states"}).state_topic == "/robot/joint_states"
    assert Settings.from_values({"state_topic": ""}).state_topic == ""
    for bad in ("joint states", "2joints", "a//b", "a/"):
        with pytest.raises(SettingsError, match=f"state_topic='{bad}'; expected a ROS topic name"):
            Settings.from_values({"state_topic": bad})
    with pytest.raises(SettingsError, match="joint_names=\\[\\] with command_type='float64_multi_array'"):
        Settings.from_values({"command_type": "float64_multi_array"})
    with pytest.raises(
        SettingsError, match="stale_command_policy='zero' with command_modality='joint_position'"
    ):
        Settings.from_values({"command_modality": "joint_position"})
    no_state = {"command_modality": "joint_position", "stale_command_policy": "hold", "state_topic": ""}
    with pytest.raises(SettingsError, match="state_topic='' with command_modality='joint_position'"):
        Settings.from_values(no_state)


def test_relative_targets_subtract_the_state_then_the_previous_target():
    targets = np.array(
        [[[1.0, 2.0], [1.5, 2.0], [1.5, 1.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], np.float32
    )
    state = np.array([0.5, 2.5], np.float32)
    out = relative_targets(targets, state)
    assert out.dtype == np.float32 and out.shape == (2, 3, 2)
    np.testing.assert_allclose(out[0], [[0.5, -0.5], [0.5, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(out[1], [[-0.5, -2.5], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(state + np.cumsum(out, axis=1), targets)  # dead-reckoned back: the targets
    with pytest.raises(ValueError, match=r"expected \(B, H, D\) targets and a \(D,\) state"):
        relative_targets(targets, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="expected"):
        relative_targets(targets[0], state)
