"""`make demo` in a short mode: sim publisher + world-model node + recorder, then GIF, latency, eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import astra_ros.msg  # noqa: F401  (the generated interfaces are required: missing fails)
from astra_ros.runtime.loader import load_backend

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "engines" / "astra_small.onnx"


def run_demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "astra_ros.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_short_demo_runs_and_writes_outputs(tmp_path):
    out = tmp_path / "demo_out"
    proc = run_demo("--seconds", "6", "--out", str(out), "--eval-windows", "10")  # the shipped model
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(out / "demo.gif") in proc.stdout and "report.html" in proc.stdout
    gif = Image.open(out / "demo.gif")
    assert gif.n_frames > 5
    latency = json.loads((out / "latency.json").read_text())
    assert latency["predictions"] > 5 and latency["latency_ms"]["count"] > 0
    auto = load_backend(str(SHIPPED), "auto").info  # what the node runs the shipped ONNX on here
    assert latency["model_id"] == auto.model_id  # the shipped model, not copy-last
    session = np.load(out / "session_predictions.npz")
    assert session["pred_frames"].shape[1:] == (8, 64, 64, 3)
    assert len(session["images"]) >= 80  # 15 Hz for 6 s of sim time
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["windows"] == 10 and metrics["backend"] == auto.backend
    assert (out / "eval" / "report.html").exists() and (out / "session_bag" / "metadata.yaml").exists()


def test_demo_missing_model_is_a_clear_error(tmp_path):
    proc = run_demo("--model", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "o"), timeout=60)
    assert proc.returncode == 2
    assert "absent.pt" in proc.stderr and "copy_last" in proc.stderr
