"""astra-eval --live: short bags and LeRobot episodes played into a real astra_world_model node over ROS 2."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from lerobot_fixtures import JOINTS, write_dataset

import astra_ros.msg  # noqa: F401  (the generated interfaces are required: missing fails)
from astra_ros.data.record_sim import record
from astra_ros.evaluation.evaluate import main as eval_main
from astra_ros.ros.isolation import isolate_ros


def test_live_mode_scores_predicted_frames_with_the_same_keys(tmp_path):
    isolate_ros()
    bag = tmp_path / "kuka"
    record("kuka", episodes=2, steps=14, seed=5, out=bag, progress=False)
    common = ["--model", "copy_last", "--bag", str(bag), "--context", "3", "--horizon", "4", "--no-progress"]
    out = tmp_path / "live"
    rc = eval_main([*common, "--out", str(out), "--live", "--live-timeout", "60"])
    assert rc == 0, (out / "node.log").read_text() if (out / "node.log").exists() else ""
    live = json.loads((out / "metrics.json").read_text())
    offline_out = tmp_path / "offline"
    assert eval_main([*common, "--out", str(offline_out)]) == 0
    offline = json.loads((offline_out / "metrics.json").read_text())
    assert live["mode"] == "live" and offline["mode"] == "offline"
    for key in offline:
        assert key in live, key
    # the node predicted at every frame from the 3rd of each episode on, after a reset between episodes
    assert live["live_predictions"] == 2 * (14 - 3 + 1)
    assert live["live_missing_windows"] == 0
    assert live["windows"] == offline["windows"] == 2 * (14 - 3 - 4 + 1)
    # the deployed path and the backend agree (exactly, for the deterministic copy_last model)
    assert live["model"]["psnr"] == offline["model"]["psnr"] == live["offline_model"]["psnr"]
    assert live["model"]["ssim"] == offline["model"]["ssim"]
    assert live["live_vs_offline_max_psnr_diff_db"] == 0.0
    assert live["latency_ms"]["count"] == live["live_predictions"]
    assert (out / "report.html").exists()


def test_live_mode_with_a_context_shorter_than_the_model_history(tmp_path):
    """The README's command: the shipped model (max_history 8) evaluated live with --context 4."""
    isolate_ros()
    bag = tmp_path / "kuka"
    record("kuka", episodes=1, steps=10, seed=6, out=bag, size=64, progress=False)
    model = str(Path(__file__).resolve().parents[1] / "engines" / "astra_small.onnx")
    args = ["--model", model, "--bag", str(bag), "--context", "4", "--horizon", "3", "--no-progress"]
    out = tmp_path / "live"
    rc = eval_main([*args, "--out", str(out), "--live", "--live-timeout", "120"])
    assert rc == 0, (out / "node.log").read_text() if (out / "node.log").exists() else ""
    live = json.loads((out / "metrics.json").read_text())
    assert live["live_predictions"] == 10 - 4 + 1 and live["live_missing_windows"] == 0
    assert live["windows"] == 10 - 4 - 3 + 1
    assert all(p > 10 for p in live["model"]["psnr"])


def test_live_replays_lerobot_position_targets_as_float64_multi_array(tmp_path):
    """A LeRobot episode (absolute targets + joint states) through a joint_position node: every frame
    is predicted, the node conditions on exactly the targets played, and live equals offline for
    the deterministic copy_last model."""
    isolate_ros()
    root = write_dataset(tmp_path / "lerobot", episodes={0: 10, 1: 9})
    common = ["--model", "copy_last", "--data", str(root), "--frozen", "keep"]
    common += ["--cache-dir", str(tmp_path / "c"), "--context", "3", "--horizon", "4"]
    common += ["--ranking-k", "0", "--no-progress"]
    out = tmp_path / "live"
    rc = eval_main([*common, "--out", str(out), "--live", "--live-timeout", "60"])
    assert rc == 0, (out / "node.log").read_text() if (out / "node.log").exists() else ""
    params = yaml.safe_load((out / "node_params.yaml").read_text())["astra_world_model"]["ros__parameters"]
    assert params["command_type"] == "float64_multi_array" and params["command_modality"] == "joint_position"
    assert params["joint_names"] == list(JOINTS) and params["stale_command_policy"] == "hold"
    live = json.loads((out / "metrics.json").read_text())
    assert live["modality"] == "joint_position"
    assert live["live_predictions"] == (10 - 3 + 1) + (9 - 3 + 1) and live["live_missing_windows"] == 0
    assert live["windows"] == (10 - 3 - 4 + 1) + (9 - 3 - 4 + 1)
    assert live["live_target_max_error_rad"] < 1e-5
    assert live["model"]["psnr"] == live["offline_model"]["psnr"]


def test_live_replays_a_g1_episode_through_the_g1_model_as_joint_trajectories(tmp_path):
    """The shipped G1 model served as the README says, its interface from a parameter file."""
    isolate_ros()
    engines = Path(__file__).resolve().parents[1] / "engines"
    joints = tuple(json.loads((engines / "astra_g1.json").read_text())["meta"]["joint_names"])
    root = write_dataset(tmp_path / "g1", episodes={0: 16}, joints=joints)
    node_yaml = tmp_path / "g1.yaml"
    node_yaml.write_text(
        "astra_world_model:\n  ros__parameters:\n    command_type: joint_trajectory\n"
        "    command_modality: joint_position\n    stale_command_policy: hold\n"
    )
    args = ["--model", str(engines / "astra_g1.onnx"), "--data", str(root), "--frozen", "keep"]
    args += ["--cache-dir", str(tmp_path / "c"), "--context", "4", "--horizon", "8", "--ranking-k", "0"]
    out = tmp_path / "live"
    rc = eval_main([*args, "--no-progress", "--out", str(out), "--live", "--live-params", str(node_yaml)])
    assert rc == 0, (out / "node.log").read_text() if (out / "node.log").exists() else ""
    params = yaml.safe_load((out / "node_params.yaml").read_text())["astra_world_model"]["ros__parameters"]
    assert params["command_type"] == "joint_trajectory" and params["joint_names"] == list(joints)
    live = json.loads((out / "metrics.json").read_text())
    assert live["live_predictions"] == 16 - 4 + 1 and live["live_missing_windows"] == 0
    assert live["windows"] == 16 - 4 - 8 + 1 and live["live_target_max_error_rad"] < 1e-5
    assert all(p > 5 for p in live["model"]["psnr"])


def test_live_refuses_parameters_that_contradict_the_data(tmp_path, capsys):
    root = write_dataset(tmp_path / "lerobot", episodes={0: 8})
    node_yaml = tmp_path / "vel.yaml"
    node_yaml.write_text("astra_world_model:\n  ros__parameters:\n    command_modality: joint_velocity\n")
    args = ["--model", "copy_last", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    rc = eval_main([*args, "--out", str(tmp_path / "o"), "--live", "--live-params", str(node_yaml)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "command_modality='joint_velocity'; the data's commands are 'joint_position'" in err
