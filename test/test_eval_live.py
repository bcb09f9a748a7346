"""astra-eval --live: a short bag played into a real astra_world_model node over ROS 2 (copy_last)."""

from __future__ import annotations

import json
from pathlib import Path

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
