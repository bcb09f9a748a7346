"""The node with ros2_control command formats over DDS, copy-last backend: a position-controlled arm
(Float64MultiArray targets as JointGroupPositionController takes them, on a remapped topic, and
/joint_states), and JointTrajectory velocities.

Float64MultiArray has no stamp, so its targets are in force from their arrival (node clock): the
images are stamped with the wall clock here, not with a fixed base as in test_node_ros.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from astra_ros.ros.isolation import isolate_ros

isolate_ros()
import rclpy  # noqa: E402
from harness import COPY_LAST_JOINTS, Driver, NodeProcess, make_image  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from astra_ros.ros.conversions import ns_to_stamp  # noqa: E402
from astra_ros.srv import Imagine  # noqa: E402

COMMAND_TOPIC = "forward_position_controller/commands"
PARAMS = {
    "model_path": "copy_last",
    "joint_names": COPY_LAST_JOINTS,
    "command_type": "float64_multi_array",
    "command_modality": "joint_position",
    "stale_command_policy": "hold",
    "prediction_rate": 0.0,
    "image_qos_reliability": "reliable",
    "image_qos_depth": 50,
    "diagnostics_period": 0.2,
    "horizon": 4,
    "min_history": 2,
}


@pytest.fixture(scope="module", autouse=True)
def ros_context(ros_domain):
    rclpy.init()
    yield
    rclpy.try_shutdown()


def target(i: int) -> list[float]:
    return [0.01 * i + 0.001 * j for j in range(len(COPY_LAST_JOINTS))]


def first_command_counted(driver: Driver, proc: NodeProcess, publish) -> None:
    """Send the first command (and state) and wait until the node has counted it, so that no image
    can overtake it on a loaded machine (the topics are independent)."""
    publish()
    counted = driver.spin_until(lambda: int(driver.latest_diagnostics().get("count.commands", 0)) >= 1, 10)
    assert counted, proc.output()


def joint_states(stamp_ns: int, positions: list[float]) -> JointState:
    msg = JointState(name=["gripper", *COPY_LAST_JOINTS], position=[0.0, *positions])  # gripper: ignored
    msg.header.stamp = ns_to_stamp(stamp_ns)
    return msg


def test_float64_multi_array_targets_and_joint_states_drive_predictions_bad_ones_are_counted():
    remap = ["--ros-args", "-r", f"joint_commands:={COMMAND_TOPIC}"]
    with NodeProcess(PARAMS, remap) as proc:
        driver = Driver()
        try:
            commands = driver.node.create_publisher(Float64MultiArray, COMMAND_TOPIC, 50)
            states = driver.node.create_publisher(JointState, "joint_states", 50)

            def connected() -> bool:
                assert proc.proc.poll() is None, proc.output()
                pubs = (driver.image_pub, commands, states)
                return all(p.get_subscription_count() > 0 for p in pubs) and driver.imagine.service_is_ready()

            assert driver.spin_until(connected, 30), proc.output()

            def first() -> None:
                commands.publish(Float64MultiArray(data=target(0)))
                states.publish(joint_states(time.time_ns(), target(0)))

            first_command_counted(driver, proc, first)
            count = 20
            for i in range(count):
                stamp = time.time_ns()
                commands.publish(Float64MultiArray(data=target(i)))
                states.publish(joint_states(stamp, [v - 0.005 for v in target(i)]))
                driver.image_pub.publish(make_image(stamp, value=i))
                driver.spin_for(1 / 30)
            commands.publish(Float64MultiArray(data=[0.0] * 3))  # wrong length
            states.publish(joint_states(time.time_ns(), [float("nan")] * 7))

            def settled(d: dict[str, str]) -> bool:
                return int(d.get("count.images", 0)) == count and "rejected.state_non_finite" in d

            assert driver.spin_until(lambda: settled(driver.latest_diagnostics()), 10), proc.output()
            diag = driver.latest_diagnostics()
            assert diag["rejected.joint_count"] == "1" and diag["rejected.state_non_finite"] == "1", diag
            assert int(diag["count.commands"]) == count + 1 and int(diag["count.states"]) == count + 1
            predicted = int(diag["count.predictions"])
            assert predicted >= 1
            assert driver.spin_until(lambda: len(driver.predictions) >= predicted, 5)
            for msg, _ in driver.predictions:
                assert msg.modality == "joint_position" and list(msg.actions.joint_names) == COPY_LAST_JOINTS
                index = msg.frames[0].data[0]  # copy-last: the newest ingested image
                held = [list(p.positions) for p in msg.actions.points]
                assert all(p == held[0] for p in held) and not any(p.velocities for p in msg.actions.points)
                # the absolute target in force at the image (float32): one sent with it or before (in force
                # from its arrival, which can lag on a loaded machine)
                assert any(np.allclose(held[0], target(k), atol=1e-6) for k in range(index + 1)), held[0]
            request = Imagine.Request(modality="joint_position", joint_names=list(reversed(COPY_LAST_JOINTS)))
            request.num_candidates, request.horizon, request.action_dim = 2, 3, 7
            request.actions = [0.2] * 42  # absolute targets: relative to the newest frame's state
            response = driver.call(driver.imagine, request)
            assert response.success and len(response.frames) == 6, response.error
            log = proc.output()
            assert "rejected (joint_count)" in log and "rejected (state_non_finite)" in log
        finally:
            driver.close()
            assert proc.proc.poll() is None, f"node died:\n{proc.output()}"


def test_joint_trajectory_velocities_and_no_state_subscription_without_a_state_input():
    params = {**PARAMS, "command_type": "joint_trajectory", "command_modality": "joint_velocity"}
    topic = "joint_trajectory_controller/joint_trajectory"
    with NodeProcess(params, ["--ros-args", "-r", f"joint_commands:={topic}"]) as proc:
        driver = Driver()
        try:
            commands = driver.node.create_publisher(JointTrajectory, topic, 50)
            states = driver.node.create_publisher(JointState, "joint_states", 50)
            ready = (driver.image_pub, commands)
            connected = driver.spin_until(lambda: all(p.get_subscription_count() for p in ready), 30)
            assert connected, proc.output()
            names = list(reversed(COPY_LAST_JOINTS))  # matched to the model's order by name
            first = JointTrajectory(joint_names=names)
            first.points = [JointTrajectoryPoint(velocities=target(0)[::-1])]
            first_command_counted(driver, proc, lambda: commands.publish(first))  # stamp 0: now
            for i in range(8):
                stamp = time.time_ns()
                point = JointTrajectoryPoint(velocities=list(reversed(target(i))))
                msg = JointTrajectory(joint_names=names, points=[point])
                msg.header.stamp = ns_to_stamp(stamp - 2_000_000)
                point.time_from_start.nanosec = 1_000_000  # in force 1 ms before the image
                commands.publish(msg)
                driver.image_pub.publish(make_image(stamp, value=i))
                driver.spin_for(1 / 30)
            extra = JointTrajectoryPoint(velocities=[0.0] * 8)
            commands.publish(JointTrajectory(joint_names=[*names, "elbow"], points=[extra]))  # unknown joint

            def settled(d: dict[str, str]) -> bool:
                return int(d.get("count.images", 0)) == 8 and "rejected.joint_names" in d

            assert driver.spin_until(lambda: settled(driver.latest_diagnostics()), 10), proc.output()
            assert states.get_subscription_count() == 0  # copy-last takes no state; velocities need none
            predicted = int(driver.latest_diagnostics()["count.predictions"])
            assert predicted >= 1 and driver.spin_until(lambda: len(driver.predictions) >= predicted, 5)
            for msg, _ in driver.predictions:
                index = msg.frames[0].data[0]
                velocity = list(msg.actions.points[0].velocities)
                assert msg.modality == "joint_velocity" and not msg.actions.points[0].positions
                assert any(np.allclose(velocity, target(k), atol=1e-6) for k in range(index + 1)), velocity
        finally:
            driver.close()
            assert proc.proc.poll() is None, f"node died:\n{proc.output()}"
