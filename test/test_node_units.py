"""Unit tests of the node's ROS-free pieces: pairing, settings, conversions, astra-ros-run YAML loading."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

from astra_ros.ros.settings import DECLARED_NAMES, PARAMETERS, Settings, SettingsError, resolve_model_path
from astra_ros.runtime.session import Frame, enqueue_dropping_oldest
from astra_ros.runtime.timing import FrameGrid, LatencyStats, PeriodEstimator, Timeline, due_for_prediction

MS = 1_000_000
REPO = Path(__file__).resolve().parents[1]


def test_timeline_verdicts():
    line = Timeline(max_gap_ns=1000 * MS)
    assert line.check(0) == "first"
    assert line.check(33 * MS) == "ok"
    assert line.check(33 * MS) == "duplicate"
    assert line.check(10 * MS) == "out_of_order"
    assert line.check(66 * MS) == "ok"
    assert line.check(2000 * MS) == "gap"
    assert line.check(100 * MS) == "jump_back"
    assert line.check(133 * MS) == "ok"


def test_period_latency_rate_helpers():
    periods = PeriodEstimator()
    for stamp in (0, 33, 66, 100, 500, 533):
        periods.add(stamp * MS)
    assert periods.median_ns() == 33 * MS
    stats = LatencyStats(window=3)
    for value in (100.0, 1.0, 2.0, 3.0):
        stats.add(value)
    assert len(stats) == 3 and stats.percentile(50) == 2.0
    assert due_for_prediction(0, None, 10.0)
    assert not due_for_prediction(50 * MS, 0, 10.0)
    assert due_for_prediction(100 * MS, 0, 10.0)
    assert due_for_prediction(1, 0, 0.0)


def taken(grid: FrameGrid, stamps_ms: list[float], image_ms: float) -> list[float]:
    return [t for t in stamps_ms if grid.take(int(t * MS), int(image_ms * MS))]


def test_frame_grid_decimates_to_the_model_period_without_drift():
    period = 66.667
    assert taken(FrameGrid(int(period * MS)), [33.333 * i for i in range(9)], 33.333) == [
        33.333 * i for i in (0, 2, 4, 6, 8)
    ]  # 30 Hz camera, 15 Hz model: every second image
    jittered = [33.333 * i + (2.0 if i % 2 else -2.0) for i in range(1, 61)]
    kept = taken(FrameGrid(int(period * MS)), jittered, 33.333)
    assert len(kept) == 30 and np.allclose(np.diff(kept), period, atol=4.5)  # no drift, no double take
    kept = taken(FrameGrid(int(period * MS)), [40.0 * i for i in range(31)], 40.0)  # 25 Hz camera
    assert abs((kept[-1] - kept[0]) / (len(kept) - 1) - period) < 2.0 and np.max(np.diff(kept)) <= 80.0
    assert taken(FrameGrid(int(period * MS)), [0.0, 100.0, 200.0, 300.0], 100.0) == [0.0, 100.0, 200.0, 300.0]
    grid = FrameGrid(int(period * MS))
    assert taken(grid, [0.0, 33.0, 5000.0, 5033.0, 5067.0], 33.333) == [0.0, 5000.0, 5067.0]  # re-anchors
    grid.reset()
    assert taken(grid, [10.0, 43.0], 33.333) == [10.0]
    assert taken(FrameGrid(0), [0.0, 1.0, 2.0], 1.0) == [0.0, 1.0, 2.0]  # 0: every image


def test_full_ingestion_queue_drops_oldest_and_passes_on_its_due_prediction_and_reset():
    def frame(i: int, due: int, reset: str | None = None) -> Frame:
        return Frame(i, "cam", np.zeros((2, 2, 3), np.uint8), np.zeros(1, np.float32), 1, due, reset)

    queue: deque[Frame] = deque()
    assert not enqueue_dropping_oldest(queue, frame(0, 1, "gap"), 2)
    assert not enqueue_dropping_oldest(queue, frame(1, 0), 2)
    assert enqueue_dropping_oldest(queue, frame(2, 1), 2)
    assert [(f.stamp_ns, f.due, f.reset) for f in queue] == [(1, 1, "gap"), (2, 1, None)]
    assert enqueue_dropping_oldest(queue, frame(3, 0, "jump_back"), 2)
    assert [(f.stamp_ns, f.due, f.reset) for f in queue] == [(2, 2, "gap"), (3, 0, "jump_back")]

    single: deque[Frame] = deque([frame(0, 1, "gap")])
    assert enqueue_dropping_oldest(single, frame(1, 0), 1)
    assert [(f.stamp_ns, f.due, f.reset) for f in single] == [(1, 1, "gap")]



def test_a_dropped_frame_passes_its_command_interval_to_the_next_frame():
    def frame(stamp: int, command: float, interval: int) -> Frame:
        rgb = np.zeros((2, 2, 3), np.uint8)
        return Frame(stamp, "cam", rgb, np.array([command], np.float32), 1, 0, None, interval)

    queue: deque[Frame] = deque([frame(100, 1.0, 100)])
    assert enqueue_dropping_oldest(queue, frame(400, 4.0, 300), 1)
    assert queue[0].command.tolist() == [3.25] and queue[0].interval_ns == 400  # (1*100 + 4*300) / 400

def test_settings_defaults_validate_and_errors_name_the_parameter():
    settings = Settings.from_values({})
    assert settings.modality == "joint_velocity" and settings.horizon == 8
    assert Settings.from_values({"command_type": "twist"}).modality == "twist"
    with pytest.raises(SettingsError, match=r"backend='cuda'.*expected one of"):
        Settings.from_values({"backend": "cuda"})
    with pytest.raises(SettingsError, match=r"horizon=0; expected a value in \[1, 64\]"):
        Settings.from_values({"horizon": 0})
    with pytest.raises(SettingsError, match="predicted_image_horizon=9"):
        Settings.from_values({"predicted_image_horizon": 9})
    with pytest.raises(SettingsError, match="expected an integer"):
        Settings.from_values({"horizon": 2.5})
    with pytest.raises(SettingsError, match="unknown parameters"):
        Settings.from_values({"horizn": 3})
    with pytest.raises(SettingsError, match="joint_names"):
        Settings.from_values({"joint_names": ["a", "a"]})


def test_every_parameter_has_a_typed_descriptor():
    from rcl_interfaces.msg import ParameterType

    from astra_ros.ros.settings import descriptor

    assert len(set(DECLARED_NAMES)) == len(DECLARED_NAMES)
    for spec in PARAMETERS:
        desc = descriptor(spec)
        assert desc.type != ParameterType.PARAMETER_NOT_SET and desc.description
        if spec.min is not None:
            assert desc.integer_range or desc.floating_point_range, spec.name


def test_model_path_resolution():
    assert resolve_model_path("copy_last") == "copy_last"
    assert resolve_model_path("/abs/model.onnx") == "/abs/model.onnx"
    assert resolve_model_path("config/astra_world_model.yaml") == str(REPO / "config/astra_world_model.yaml")
    assert resolve_model_path("engines/does_not_exist.pt") == "engines/does_not_exist.pt"


def test_conversions_commands_and_images():
    from geometry_msgs.msg import Twist

    from astra_ros.ros.conversions import (
        InputError,
        joint_state_to_command,
        ns_to_stamp,
        rgb_to_image,
        stamp_to_ns,
        twist_to_command,
    )

    assert stamp_to_ns(ns_to_stamp(1_234_567_890_123)) == 1_234_567_890_123
    out = joint_state_to_command(["b", "a", "gripper"], [2.0, 1.0, 9.0], ["a", "b"])
    assert out.tolist() == [1.0, 2.0]
    for names, vel, reason in (
        (["a"], [1.0], "joint_names"),
        (["a", "b"], [1.0], "joint_count"),
        (["a", "b"], [1.0, float("nan")], "command_non_finite"),
        (["a", "a"], [1.0, 1.0], "joint_names"),
    ):
        with pytest.raises(InputError) as err:
            joint_state_to_command(names, vel, ["a", "b"])
        assert err.value.reason == reason
    twist = Twist()
    twist.linear.x, twist.angular.z = 0.5, -1.0
    assert twist_to_command(twist).tolist() == [0.5, 0, 0, 0, 0, -1.0]
    twist.angular.y = float("inf")
    with pytest.raises(InputError, match="NaN or inf"):
        twist_to_command(twist)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = rgb_to_image(rgb, 5, "cam")
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.header.frame_id) == ("rgb8", 2, 3, 9, "cam")
    assert bytes(msg.data) == rgb.tobytes()


def test_imagine_request_validation():
    from astra_ros.ros.conversions import InputError, imagine_actions
    from astra_ros.srv import Imagine

    mods = ("joint_velocity", "twist")
    req = Imagine.Request(
        modality="joint_velocity",
        joint_names=["b", "a"],
        num_candidates=2,
        horizon=3,
        action_dim=2,
        actions=np.arange(12, dtype=np.float32).tolist(),
    )
    actions = imagine_actions(req, mods, ["a", "b"], 64)
    assert actions.shape == (2, 3, 2) and actions[0, 0].tolist() == [1.0, 0.0]  # reordered to a, b
    bad = [
        dict(actions=[0.0] * 11),
        dict(num_candidates=0),
        dict(horizon=0),
        dict(joint_names=["a", "c"]),
        dict(modality="discrete"),
        dict(actions=[float("nan")] * 12),
    ]
    for change in bad:
        request = Imagine.Request(
            modality="joint_velocity",
            joint_names=["b", "a"],
            num_candidates=2,
            horizon=3,
            action_dim=2,
            actions=[0.0] * 12,
        )
        for key, value in change.items():
            setattr(request, key, value)
        with pytest.raises(InputError):
            imagine_actions(request, mods, ["a", "b"], 64)
    twist = Imagine.Request(modality="twist", num_candidates=1, horizon=2, action_dim=5, actions=[0.0] * 10)
    with pytest.raises(InputError, match="action_dim=5 for twist; expected 6"):
        imagine_actions(twist, mods, [], 64)


def test_run_load_params(tmp_path):
    from astra_ros.ros.run import cli_param_names, load_params

    params = load_params(REPO / "config/astra_world_model.yaml")
    assert set(params) == set(DECLARED_NAMES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("astra_world_model:\n  ros__parameters:\n    horizon: 4\n    horizn: 3\n")
    with pytest.raises(SettingsError, match=r"unknown parameters \['horizn'\]"):
        load_params(bad)
    bad.write_text("other_node:\n  ros__parameters:\n    horizon: 4\n")
    with pytest.raises(SettingsError, match="no 'astra_world_model: ros__parameters:' block"):
        load_params(bad)
    assert cli_param_names(["--ros-args", "-p", "horizon:=3", "-r", "image:=cam", "--param", "seed:=1"]) == {
        "horizon",
        "seed",
    }


def test_imports_stay_torch_free():
    import subprocess
    import sys

    code = (
        "import sys, astra_ros.ros.node, astra_ros.ros.run, astra_ros.ros.bench_node; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_inference_threads_reach_the_onnxruntime_session():
    from astra_ros.ros.settings import load_world_model
    from astra_ros.runtime.onnxruntime_backend import DEFAULT_THREADS

    two = load_world_model(Settings.from_values({"inference_threads": 2, "backend": "onnxruntime"}))
    assert two.session.get_session_options().intra_op_num_threads == 2
    default = load_world_model(Settings.from_values({"backend": "onnxruntime"}))  # 0: the backend's default
    assert default.session.get_session_options().intra_op_num_threads == DEFAULT_THREADS == 1


def test_inference_threads_reach_the_openvino_graphs():
    from astra_ros.ros.settings import load_world_model

    settings = {"inference_threads": 1, "backend": "openvino", "precision": "fp32"}
    one = load_world_model(Settings.from_values(settings))
    threads = {r.get_compiled_model().get_property("INFERENCE_NUM_THREADS") for r in one._requests.values()}
    assert threads == {1}  # the step graph and the write-only graph
