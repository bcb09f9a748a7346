"""``make demo``: the KUKA simulator, the world-model node and a planner-like recorder over ROS 2.

``python -m astra_ros.demo [--seconds 60] [--out demo_out] [--model engines/astra_small.onnx]``

Starts three processes on an isolated ROS domain (loopback only):

1. ``astra_sim_publisher``: pybullet KUKA, camera on ``/camera/image_raw``, joint-velocity commands
   on ``/joint_commands``, ``/clock``; records what it publishes to ``OUT/session_bag``;
2. ``astra_world_model`` (``use_sim_time``) with the model on the best available backend;
3. ``astra_prediction_recorder``: subscribes to ``/predicted_frames`` and the camera.

After ``--seconds`` of simulated time it stops them and writes ``OUT/demo.gif`` (true | predicted
frames), ``OUT/latency.json`` and the offline evaluation of the recorded session in ``OUT/eval/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = "engines/astra_small.onnx"
COPY_LAST = "copy_last"
GIF_SCALE = 3
MAX_GIF_FRAMES = 300


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-demo", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="simulated seconds to run (default 60)")
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model file, or '{COPY_LAST}' (no model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--horizon", type=int, default=8, help="frames per prediction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-windows", type=int, default=40, help="windows of the offline eval")
    p.add_argument("--start-timeout", type=float, default=180.0, help="seconds for the node to start")
    return p


def _spawn(name: str, cmd: list[str], out: Path) -> subprocess.Popen:
    log = open(out / f"{name}.log", "w")  # noqa: SIM115 - closed in _stop
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    proc.log_file = log  # type: ignore[attr-defined]
    proc.name = name  # type: ignore[attr-defined]
    return proc


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    from astra_ros.evaluation.evaluate import stop_process

    stop_process(proc, timeout)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _label(width: int, texts: list[str], cell: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (width, 14), (255, 255, 255))
    draw = ImageDraw.Draw(bar)
    for i, text in enumerate(texts):
        draw.text((i * cell + 3, 1), text, fill=(0, 0, 0))
    return np.asarray(bar)


def write_gif(session: dict[str, Any], path: Path, horizon_pick: int | None = None) -> int:
    """GIF of [true t+1 | predicted h1 | true t+H | predicted hH] per prediction. Returns frames."""
    from PIL import Image

    stamps = session["image_stamps"]
    images = session["images"]
    preds = session["pred_frames"]
    index = {int(s): i for i, s in enumerate(stamps)}
    frames = []
    for k, stamp in enumerate(session["pred_stamps"]):
        i = index.get(int(stamp))
        if i is None or preds.ndim != 5:
            continue
        h = min(horizon_pick or preds.shape[1], preds.shape[1])
        if i + h >= len(images):
            continue
        row = np.concatenate([images[i + 1], preds[k, 0], images[i + h], preds[k, h - 1]], axis=1)
        frames.append((row, h))
    if not frames:
        return 0
    step = max(1, len(frames) // MAX_GIF_FRAMES)
    frames = frames[::step]
    size = images.shape[1] * GIF_SCALE
    pictures = []
    for row, h in frames:
        big = row.repeat(GIF_SCALE, axis=0).repeat(GIF_SCALE, axis=1)
        label = _label(big.shape[1], ["true t+1", "predicted h1", f"true t+{h}", f"predicted h{h}"], size)
        pictures.append(Image.fromarray(np.concatenate([label, big], axis=0)))
    pred_recv = session["pred_recv_s"]
    duration = int(1000 * np.median(np.diff(pred_recv)) * step) if len(pred_recv) > 1 else 100
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=max(40, duration), loop=0)
    return len(pictures)


def latency_summary(session: dict[str, Any], seconds: float) -> dict[str, Any]:
    from astra_ros.evaluation.replay import latency_summary as summarise

    lat = session["pred_latency_ms"]
    lat = lat[np.isfinite(lat)]
    recv = session["pred_recv_s"]
    span = float(recv[-1] - recv[0]) if len(recv) > 1 else 0.0
    return {
        "what": "image received -> PredictedFrames received, at the recorder (a planner's view), ms",
        "latency_ms": summarise(lat.tolist()),
        "predictions": int(len(session["pred_stamps"])),
        "images": int(len(session["image_stamps"])),
        "prediction_rate_hz": round((len(recv) - 1) / span, 3) if span > 0 else 0.0,
        "state_resets": int(np.sum(session["pred_state_reset"])),
        "model_id": str(session["model_id"]),
        "command_policy": str(session["command_policy"]),
        "sim_seconds": seconds,
    }


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from astra_ros.ros.isolation import isolate_ros

    out = Path(args.out)
    model = args.model
    if model != COPY_LAST and not Path(model).is_file():
        print(
            f"astra-demo: error: --model {model!r} does not exist. The default model "
            f"{DEFAULT_MODEL} is shipped by the repository (train one with astra-train), or pass "
            f"--model {COPY_LAST} to run the demo without a model.",
            file=sys.stderr,
        )
        return 2
    if model != COPY_LAST:
        model = str(Path(model).resolve())
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("session_bag", "eval"):
        shutil.rmtree(out / stale, ignore_errors=True)
    domain = isolate_ros()
    bag = out / "session_bag"
    npz = out / "session_predictions.npz"
    py = sys.executable
    procs: list[subprocess.Popen] = []
    print(
        f"astra-demo: ROS_DOMAIN_ID={domain} (loopback only), model {model}, {args.seconds:g} s of sim time"
    )
    try:
        node = _spawn(
            "node",
            [
                py,
                "-m",
                "astra_ros.ros.node",
                "--ros-args",
                "-p",
                f"model_path:={model}",
                "-p",
                f"backend:={args.backend}",
                "-p",
                "use_sim_time:=true",
                "-p",
                f"horizon:={args.horizon}",
                "-p",
                f"seed:={args.seed}",
                "-r",
                "image:=/camera/image_raw",
            ],
            out,
        )
        procs.append(node)
        recorder = _spawn("recorder", [py, "-m", "astra_ros.ros.recorder", "--out", str(npz)], out)
        procs.append(recorder)
        sim = _spawn(
            "sim",
            [
                py,
                "-m",
                "astra_ros.ros.sim_publisher",
                "--seconds",
                str(args.seconds),
                "--seed",
                str(args.seed),
                "--bag",
                str(bag),
                "--wait-for-subscribers",
                "2",
                "--wait-timeout",
                str(args.start_timeout),
            ],
            out,
        )
        procs.append(sim)
        bar = tqdm(total=int(args.seconds), desc="astra-demo", unit="sim s")
        deadline = time.monotonic() + args.start_timeout + args.seconds * 3 + 30
        started = None
        while sim.poll() is None:
            for proc in (node, recorder):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.name} exited with code {proc.returncode}:\n"  # type: ignore[attr-defined]
                        f"{_tail(out / f'{proc.name}.log')}"
                    )  # type: ignore[attr-defined]
            if started is None and "publishing" in (out / "sim.log").read_text(errors="replace"):
                started = time.monotonic()
            if started is not None and bar.n < min(int(time.monotonic() - started), int(args.seconds)):
                bar.update(min(int(time.monotonic() - started), int(args.seconds)) - bar.n)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not finish in time; see {out / 'sim.log'}")
            time.sleep(0.2)
        bar.update(int(args.seconds) - bar.n)
        bar.close()
        if sim.returncode != 0:
            raise RuntimeError(f"sim exited with code {sim.returncode}:\n{_tail(out / 'sim.log')}")
        time.sleep(1.0)  # the last predictions reach the recorder
        _stop(recorder)
        _stop(node)
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f"astra-demo: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            _stop(proc)

    if not npz.is_file():
        print(
            f"astra-demo: error: the recorder wrote no {npz}:\n{_tail(out / 'recorder.log')}", file=sys.stderr
        )
        return 1
    session = dict(np.load(npz))
    summary = latency_summary(session, args.seconds)
    (out / "latency.json").write_text(json.dumps(summary, indent=2) + "\n")
    gif_frames = write_gif(session, out / "demo.gif")
    if summary["predictions"] == 0:
        print(
            f"astra-demo: error: the node published no predictions; see {out / 'node.log'}", file=sys.stderr
        )
        return 1

    from astra_ros.evaluation.evaluate import main as eval_main

    eval_args = [
        "--model",
        model,
        "--bag",
        str(bag),
        "--out",
        str(out / "eval"),
        "--context",
        "4",
        "--horizon",
        str(args.horizon),
        "--max-windows",
        str(args.eval_windows),
        "--backend",
        args.backend,
    ]
    rc = eval_main(eval_args)
    if rc != 0:
        print(
            f"astra-demo: error: the offline evaluation failed (astra-eval {' '.join(eval_args)})",
            file=sys.stderr,
        )
        return 1
    lat = summary["latency_ms"]
    print(
        f"astra-demo: {summary['predictions']} predictions at {summary['prediction_rate_hz']} Hz from "
        f"{summary['images']} images; latency p50 {lat['p50']} ms, p99 {lat['p99']} ms "
        f"({summary['model_id']})"
    )
    print(f"astra-demo: outputs in {out}/")
    print(f"  {out / 'demo.gif'}  ({gif_frames} frames: true t+1 | predicted h1 | true t+H | predicted hH)")
    print(f"  {out / 'latency.json'}")
    print(f"  {out / 'eval' / 'report.html'}  and  {out / 'eval' / 'metrics.json'}")
    print(f"  {bag}  (the session as rosbag2),  {npz}  (what the recorder received)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seconds <= 0:
        print(f"astra-demo: error: --seconds={args.seconds}; expected > 0", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
