"""Hostile input against the real node over DDS: every kind of ``fuzz.KINDS (test/fuzz.py)`` once.

The node runs in its own process on the copy-last backend (a prediction is the newest ingested
image, so a garbage frame would show), with a valid 15 Hz camera and 30 Hz commands around each
attack; four nodes: JointState velocities, Twist, and two position-controlled arms with
/joint_states (Float64MultiArray targets, JointTrajectory targets). Each kind asserts that the
node survives, predicts again from a valid frame, counts the input under its rejection key and
nothing else, drops no valid frame, publishes nothing built on it and keeps its log lines short
(``Fuzzer.run``). The longer run is the benchmark ``python test/fuzz.py``.
"""

from __future__ import annotations

import pytest

from astra_ros.ros.isolation import isolate_ros

isolate_ros()
import rclpy  # noqa: E402
from fuzz import FUZZ_PARAMS, Fuzzer, Kind, kinds_for, start, warm  # noqa: E402
from harness import COPY_LAST_JOINTS  # noqa: E402

RSS_GROWTH_MB = 100  # the node's RSS after all kinds, over its RSS once warm


@pytest.fixture(scope="module", autouse=True)
def ros_context(ros_domain):
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _fuzzer(command_type: str, namespace: str):
    proc, driver = start({**FUZZ_PARAMS, "command_type": command_type}, namespace)
    prefix = f"/{namespace}" if namespace else ""
    try:
        fuzzer = Fuzzer(
            proc, driver, COPY_LAST_JOINTS, command_type, f"{prefix}/astra_world_model: world model"
        )
        warm(fuzzer)
        yield fuzzer
    finally:
        driver.close()
        alive = proc.proc.poll() is None
        output = proc.output()
        proc.stop()
        assert alive, f"node died:\n{output[-4000:]}"


@pytest.fixture(scope="module")
def joint_fuzzer():
    yield from _fuzzer("joint_state", "")


@pytest.fixture(scope="module")
def twist_fuzzer():
    yield from _fuzzer("twist", "twist")


@pytest.fixture(scope="module")
def position_fuzzer():
    yield from _fuzzer("float64_multi_array", "position")


@pytest.fixture(scope="module")
def trajectory_fuzzer():
    yield from _fuzzer("joint_trajectory", "trajectory")


def _params(kinds: list[Kind]) -> list:
    return [pytest.param(k, id=k.name) for k in kinds]


def test_the_catalogue_covers_every_group():
    kinds = kinds_for("joint_state") + kinds_for("twist")
    groups = {k.group for k in kinds}
    assert groups == {"images", "stamps", "commands", "imagine", "services", "parameters"}
    assert len({k.name for k in kinds}) == len(kinds) >= 30


@pytest.mark.parametrize("kind", _params(kinds_for("joint_state")))
def test_joint_state_node_survives(joint_fuzzer, kind):
    outcome = joint_fuzzer.run(kind)
    assert outcome.ok, "\n".join(outcome.problems)


def test_joint_state_node_memory_stays_bounded(joint_fuzzer):
    growth_mb = (joint_fuzzer.proc.rss_kb() - joint_fuzzer.rss_warm_kb) / 1024
    assert growth_mb < RSS_GROWTH_MB, f"RSS grew by {growth_mb:.0f} MB over all kinds"


@pytest.mark.parametrize("kind", _params(kinds_for("twist")))
def test_twist_node_survives(twist_fuzzer, kind):
    outcome = twist_fuzzer.run(kind)
    assert outcome.ok, "\n".join(outcome.problems)


@pytest.mark.parametrize("kind", _params(kinds_for("float64_multi_array")))
def test_position_node_survives(position_fuzzer, kind):
    outcome = position_fuzzer.run(kind)
    assert outcome.ok, "\n".join(outcome.problems)


@pytest.mark.parametrize("kind", _params(kinds_for("joint_trajectory")))
def test_trajectory_node_survives(trajectory_fuzzer, kind):
    outcome = trajectory_fuzzer.run(kind)
    assert outcome.ok, "\n".join(outcome.problems)
