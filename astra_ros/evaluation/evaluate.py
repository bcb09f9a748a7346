"""astra-eval: score a world model on a recorded bag, offline through a backend or live through the node.

Offline (default): the backend is loaded in this process and every window of every episode is
replayed through it (see ``astra_ros.evaluation.replay``). ``--live``: the bag is played into a
running ``astra_world_model`` node and the PredictedFrames it
publishes are scored (``run_live``), so the deployed path is what gets measured.

Outputs ``OUT/metrics.json``, ``OUT/report.html`` and PNGs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from astra_ros.data.sources import add_data_arguments
from astra_ros.runtime.base import WorldModelBackend

if TYPE_CHECKING:
    from astra_ros.evaluation.replay import ReplayScores

COPY_LAST = "copy_last"  # --model value selecting the model-free CopyLastBackend
LPIPS_NOTE = (
    "lpips omitted: no LPIPS backbone with pretrained weights is installable offline "
    "(the lpips package downloads its torchvision backbone at run time)"
)
GEOMETRY_NOTE = (
    "geometry omitted: the bag has no segmentation render (/camera/segmentation, recorded by "
    "astra-record-sim --env kuka) to calibrate the link colours against"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-eval", description=__doc__.splitlines()[0])
    p.add_argument(
        "--model",
        required=True,
        help=f"checkpoint (.pt), ONNX file with its sidecar, engine, or '{COPY_LAST}'",
    )
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--context", type=int, default=4, help="frames ingested before each rollout")
    p.add_argument("--horizon", type=int, default=16, help="frames rolled out per window")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--backend", default="auto", help="auto, torch, onnxruntime, openvino or tensorrt")
    p.add_argument(
        "--precision",
        default=None,
        help="fp32, fp16, bf16 (openvino, torch) or int8 (an .onnx with an int8 graph); default: auto",
    )
    p.add_argument("--context-noise", type=float, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--max-windows", type=int, default=None, help="sample this many windows evenly")
    p.add_argument("--size", type=int, default=64, help=f"frame size for --model {COPY_LAST}")
    p.add_argument("--seed", type=int, default=0, help="sampler seed and shuffled-commands pairing")
    p.add_argument("--examples", type=int, default=4, help="example strips in the report")
    p.add_argument("--live", action="store_true", help="score the astra_world_model node over ROS 2")
    p.add_argument(
        "--live-params",
        default=None,
        metavar="YAML",
        help="--live: the node's parameter file (as for astra-ros-run --params): its command_type, "
        "command_modality, joint_names and state_topic say what is played; default: from the data",
    )
    p.add_argument(
        "--live-timeout",
        type=float,
        default=30.0,
        help="--live: seconds to wait for each PredictedFrames before giving up",
    )
    p.add_argument(
        "--ranking-k", type=int, default=8, help="command ranking: candidates per window (0: no ranking)"
    )
    p.add_argument("--ranking-horizon", type=int, default=8, help="command ranking: frame ranked")
    p.add_argument("--no-progress", action="store_true")
    return p


def open_backend(model: str, backend: str = "auto", size: int = 64, **options: Any) -> WorldModelBackend:
    """``copy_last`` -> CopyLastBackend; anything else goes through the runtime loader."""
    if model == COPY_LAST:
        from astra_ros.runtime.copy_last import CopyLastBackend

        return CopyLastBackend(image_size=size)
    if not Path(model).exists():
        raise FileNotFoundError(f"--model {model!r} does not exist; expected a .pt, .onnx or engine file")
    from astra_ros.runtime.loader import load_backend

    return load_backend(model, backend=backend, **{k: v for k, v in options.items() if v is not None})


def read_episodes(args: argparse.Namespace, size: int) -> list[Any]:
    """The ``--data`` episodes at ``size``; sets ``args.modality`` to their one modality."""
    from astra_ros.data.sources import open_episodes

    episodes, _reports = open_episodes(args, size, min_frames=args.context, progress=not args.no_progress)
    modalities = sorted({ep.modality for ep in episodes})
    if len(modalities) != 1:
        raise ValueError(f"--data holds episodes of modalities {modalities}; expected one modality to score")
    args.modality = modalities[0]
    return episodes


def base_metrics(args: argparse.Namespace, backend: WorldModelBackend, episodes: list[Any]) -> dict[str, Any]:
    return {
        "backend": backend.info.backend,
        "model_id": backend.info.model_id,
        "data": [str(d) for d in args.paths],
        "modality": args.modality,
        "episodes": len(episodes),
        "frame_period": args.frame_period,
        "context": args.context,
        "horizon": args.horizon,
        "steps": args.steps,
        "notes": [LPIPS_NOTE],
    }


def finite(obj: Any) -> Any:
    """Replace NaN/inf by None so metrics.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps_metrics(metrics: dict[str, Any]) -> str:
    """Strict JSON, indented, with each list of numbers on one line."""
    text = json.dumps(finite(metrics), indent=2)
    text = re.sub(
        r"\[\s*([-0-9.eE+,\s]*?|null)\s*\]",
        lambda m: "[" + re.sub(r"\s*,\s*", ", ", m.group(1).strip()) + "]",
        text,
    )
    return text + "\n"


def write_outputs(metrics: dict[str, Any], examples: list[dict[str, Any]], out: Path) -> Path:
    from astra_ros.evaluation.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(dumps_metrics(metrics))
    return write_report(metrics, examples, out)


def open_inputs(args: argparse.Namespace) -> tuple[WorldModelBackend, list[Any]]:
    """The backend named by the arguments and the bag's episodes at its resolution."""
    backend = open_backend(
        args.model,
        args.backend,
        args.size,
        steps=args.steps,
        context_noise=args.context_noise,
        guidance_scale=args.guidance_scale,
        precision=args.precision,
    )
    if args.frame_period is None and backend.info.frame_period > 0:
        args.frame_period = backend.info.frame_period  # LeRobot frames at the model's training rate
    episodes = read_episodes(args, backend.info.image_size)
    return backend, episodes


def score(
    args: argparse.Namespace,
    backend: WorldModelBackend,
    episodes: list[Any],
    mode: str,
    model_predictions: dict[tuple[int, int], np.ndarray] | None = None,
) -> tuple[ReplayScores, dict[str, Any]]:
    """Replay ``episodes`` through ``backend`` with the command line's window settings."""
    from astra_ros.evaluation.geometry import geometry_scores
    from astra_ros.evaluation.replay import replay

    notes: list[str] = []
    try:
        geometry = geometry_scores(episodes, args.horizon)
    except ValueError as err:  # a link never seen in the recorded segmentation
        geometry = None
        notes.append(f"geometry omitted: cannot calibrate the link colours: {err}")
    if geometry is None and not notes:
        notes.append(GEOMETRY_NOTE)
    scores = replay(
        backend,
        episodes,
        args.modality,
        context=args.context,
        horizon=args.horizon,
        max_windows=args.max_windows,
        steps=args.steps,
        seed=args.seed,
        examples=args.examples,
        progress=not args.no_progress,
        model_predictions=model_predictions,
        observe=geometry.add if geometry is not None else None,
    )
    metrics = {**scores.metrics(), **base_metrics(args, backend, episodes), "mode": mode}
    if geometry is not None:
        metrics["geometry"] = geometry.metrics()
    metrics["notes"] += notes
    if args.ranking_k:
        metrics["ranking"] = rank_commands(args, backend, episodes)
    return scores, metrics


def rank_commands(
    args: argparse.Namespace, backend: WorldModelBackend, episodes: list[Any]
) -> dict[str, Any]:
    """``evaluation.ranking`` with the command line's settings; ``{"k", "horizon", "error"}`` when the
    bag cannot supply the windows (too short, too few distinct command sequences)."""
    from astra_ros.evaluation.ranking import ranking

    try:
        return ranking(
            backend,
            episodes,
            args.modality,
            context=args.context,
            k=args.ranking_k,
            horizon=args.ranking_horizon,
            max_windows=args.max_windows,
            steps=args.steps,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except ValueError as err:
        print(f"astra-eval: ranking skipped: {err}", file=sys.stderr)
        return {"k": args.ranking_k, "horizon": args.ranking_horizon, "error": str(err)}


def run_offline(args: argparse.Namespace) -> dict[str, Any]:
    backend, episodes = open_inputs(args)
    scores, metrics = score(args, backend, episodes, "offline")
    report = write_outputs(metrics, scores.examples, Path(args.out))
    metrics["report"] = str(report)
    return metrics


# ------------------------------------------------------------------------------------------ live

RUN_MODULE = "astra_ros.ros.run"  # astra-ros-run: the node from a parameter file
LIVE_COMMAND_TYPES = ("joint_state", "float64_multi_array", "joint_trajectory")
EPISODE_GAP_FRAMES = 2  # frame periods between the played episodes (stamps only increase)


@dataclass(frozen=True)
class LiveInterface:
    """How the player speaks to the node, from the node's parameters."""

    command_type: str  # one of LIVE_COMMAND_TYPES, on /joint_commands
    modality: str  # joint_velocity | joint_position
    joint_names: tuple[str, ...]  # order of Float64MultiArray data (the node's joint_names)
    state_topic: str | None  # absolute; None: no /joint_states played


def live_parameters(
    args: argparse.Namespace, episodes: list[Any], state_model: bool = False
) -> tuple[dict[str, Any], LiveInterface]:
    """The node's parameters for ``--live`` and the interface they set.

    Start from ``--live-params`` (a YAML for ``astra-ros-run --params``); where it says nothing, the
    command interface follows the data: ``joint_state`` messages for joint_velocity, absolute
    ``float64_multi_array`` targets with ``/joint_states`` for joint_position (``hold`` between
    targets), ``joint_names`` in the episodes' order. Joint states are played where the node
    subscribes to them: for joint_position, or for a model that takes the robot state
    (``state_model``) when the episodes have them.
    """
    from astra_ros.ros.run import load_params
    from astra_ros.ros.settings import SettingsError

    try:
        params = dict(load_params(args.live_params)) if args.live_params else {}
    except SettingsError as err:
        raise ValueError(str(err)) from err
    source = args.live_params or "the data"
    modality = params.setdefault("command_modality", args.modality)
    if modality != args.modality:
        raise ValueError(
            f"--live-params {source}: command_modality={modality!r}; "
            f"the data's commands are {args.modality!r}"
        )
    if modality not in ("joint_velocity", "joint_position"):
        raise ValueError(f"--live plays joint commands; the data's modality is {modality!r}")
    position = modality == "joint_position"
    default_type = "float64_multi_array" if position else "joint_state"
    command_type = params.setdefault("command_type", default_type)
    if command_type not in LIVE_COMMAND_TYPES:
        raise ValueError(
            f"--live-params {source}: command_type={command_type!r}; "
            f"expected one of {list(LIVE_COMMAND_TYPES)}"
        )
    names = tuple(episodes[0].joint_names)
    for ep in episodes:
        if tuple(ep.joint_names) != names:
            raise ValueError(f"{ep.source}: joint names {list(ep.joint_names)}; expected {list(names)}")
        if position and ep.states is None:
            raise ValueError(f"{ep.source}: no joint states; joint_position targets are played with them")
    order = tuple(params.get("joint_names") or names)
    unknown = sorted(set(order) - set(names))
    if unknown:
        raise ValueError(
            f"--live-params {source}: joint_names {unknown} are not in the data's joints {list(names)}"
        )
    params["joint_names"] = list(order)
    if position:
        params.setdefault("stale_command_policy", "hold")
    topic = str(params.setdefault("state_topic", "joint_states"))
    with_states = position or (state_model and all(ep.states is not None for ep in episodes))
    state_topic = ("/" + topic.lstrip("/")) if with_states and topic else None
    return params, LiveInterface(command_type, modality, order, state_topic)


def start_node(
    args: argparse.Namespace, params: dict[str, Any], out: Path, extra: list[str] | None = None
) -> Any:
    """Start the node as ``astra-ros-run --params OUT/node_params.yaml`` with ``params`` in the file
    and what the evaluation needs as ``-p`` overrides (they win); ROS_DOMAIN_ID etc. are inherited."""
    import subprocess

    import yaml

    model = args.model if args.model == COPY_LAST else str(Path(args.model).resolve())
    overrides = {
        "model_path": model,
        "backend": args.backend,
        "use_sim_time": "true",
        "horizon": args.horizon,
        "min_history": args.context,
        "max_history": args.context,  # attend to the newest `context` frames (a sliding window)
        "prediction_rate": "0.0",  # predict at every frame
        "future_command_policy": "planned",  # the bag's true future commands, as offline
        "image_transport": "raw",
        "image_qos_reliability": "reliable",
        "image_qos_depth": 50,
        "seed": args.seed,
    }
    if args.steps is not None:
        overrides["denoising_steps"] = args.steps
    if args.precision is not None:
        overrides["precision"] = args.precision
    if args.context_noise is not None:
        overrides["context_noise"] = args.context_noise
    if args.guidance_scale is not None:
        overrides["guidance_scale"] = args.guidance_scale
    params_path = out / "node_params.yaml"
    document = {"astra_world_model": {"ros__parameters": params}}
    params_path.write_text(yaml.safe_dump(document, sort_keys=False))
    cmd = [sys.executable, "-m", RUN_MODULE, "--params", str(params_path), "--ros-args"]
    for key, value in overrides.items():
        cmd += ["-p", f"{key}:={value}"]
    cmd += extra or []
    log = open(out / "node.log", "w")  # noqa: SIM115 - closed with the process by stop_process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    proc.log_file = log  # type: ignore[attr-defined]
    return proc


def stop_process(proc: Any, timeout: float = 10.0) -> int | None:
    """SIGINT, then SIGTERM, then SIGKILL one child we started."""
    import signal
    import subprocess

    if proc is None:
        return None
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    log = getattr(proc, "log_file", None)
    if log is not None:
        log.close()
    return proc.poll()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def played_commands(ep: Any, modality: str) -> np.ndarray:
    """The commands as the robot was sent them: velocities, or for joint_position the absolute
    targets (the episode's relative command plus the state it is relative to)."""
    if modality == "joint_position":
        return np.asarray(ep.commands, np.float64) + ep.states.positions
    return np.asarray(ep.commands, np.float64)


def command_message(interface: LiveInterface, names: list[str], values: np.ndarray, stamp_ns: int) -> Any:
    """One joint command of ``interface.command_type`` (values in the order of ``names``)."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from astra_ros.ros.conversions import ns_to_stamp

    position = interface.modality == "joint_position"
    if interface.command_type == "float64_multi_array":
        index = {name: i for i, name in enumerate(names)}
        return Float64MultiArray(data=[float(values[index[name]]) for name in interface.joint_names])
    if interface.command_type == "joint_trajectory":
        msg = JointTrajectory(joint_names=names)
        msg.header.stamp = ns_to_stamp(stamp_ns)
        field = "positions" if position else "velocities"
        msg.points = [JointTrajectoryPoint(**{field: [float(v) for v in values]})]
        return msg
    msg = JointState(name=names)
    msg.header.stamp = ns_to_stamp(stamp_ns)
    setattr(msg, "position" if position else "velocity", [float(v) for v in values])
    return msg


def play_into_node(
    args: argparse.Namespace, episodes: list[Any], out: Path, state_model: bool = False
) -> tuple[dict[tuple[int, int], np.ndarray], list[float], float | None]:
    """Play the episodes into a fresh node, frame by frame; collect its PredictedFrames.

    Each frame: /clock, the joint state (``live_parameters``), the command in force in the node's
    ``command_type``, the plan of the true commands from this frame on (planned_commands), then the
    image; from the ``context``-th frame of an episode on, wait for the node's prediction for that
    frame before the next one. Episodes are played one after the other on one increasing timeline
    (each starts ``EPISODE_GAP_FRAMES`` frame periods after the last); between them the node's
    ``~/reset`` service clears its state. Returns ``(episode, frame index) -> (H, S, S, 3)``, the
    image-publish -> prediction-receive latencies (ms) and, for joint_position, the largest
    difference between the targets a prediction says it was conditioned on and those played (rad).
    """
    from astra_ros.ros.isolation import isolate_ros

    isolate_ros()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from astra_ros.msg import PredictedFrames
    from astra_ros.ros.commands import JOINT_COMMAND_TYPES
    from astra_ros.ros.conversions import ns_to_duration, ns_to_stamp, rgb_to_image, stamp_to_ns
    from astra_ros.ros.recorder import predicted_frames_to_numpy

    params, interface = live_parameters(args, episodes, state_model)
    position = interface.modality == "joint_position"
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "node.log"
    node_proc = start_node(args, params, out)
    context = rclpy.Context()
    rclpy.init(context=context)
    player = rclpy.create_node("astra_eval_player", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(player)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    clock_pub = player.create_publisher(Clock, "/clock", reliable)
    image_pub = player.create_publisher(Image, "/image", reliable)
    command_msg = JOINT_COMMAND_TYPES[interface.command_type]
    cmd_pub = player.create_publisher(command_msg, "/joint_commands", reliable)
    plan_pub = player.create_publisher(JointTrajectory, "/planned_commands", reliable)
    state_pub = None
    if interface.state_topic is not None:
        state_pub = player.create_publisher(JointState, interface.state_topic, reliable)
    reset_client = player.create_client(Trigger, "/astra_world_model/reset")
    received: dict[int, tuple[Any, float]] = {}
    player.create_subscription(
        PredictedFrames,
        "/predicted_frames",
        lambda msg: received.__setitem__(stamp_to_ns(msg.header.stamp), (msg, time.monotonic())),
        reliable,
    )

    def spin_until(done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if node_proc.poll() is not None:
                raise RuntimeError(
                    f"astra_world_model exited with code {node_proc.returncode} while waiting for {what}; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; see {log_path}")
            executor.spin_once(timeout_sec=0.01)

    def settle(seconds: float = 0.01) -> None:
        """Let what was just published reach the node before what follows (its clock first)."""
        until = time.monotonic() + seconds
        spin_until(lambda: time.monotonic() > until, 5.0, "settling")

    predictions: dict[tuple[int, int], np.ndarray] = {}
    latencies: list[float] = []
    target_error = 0.0 if position else None
    try:
        publishers = [image_pub, plan_pub, cmd_pub] + ([state_pub] if state_pub else [])
        spin_until(
            lambda: all(p.get_subscription_count() for p in publishers) and reset_client.service_is_ready(),
            max(60.0, args.live_timeout),
            "the astra_world_model node to start",
        )
        settle(0.5)  # let discovery finish on the node's side too
        total = sum(len(ep.frames) for ep in episodes)
        from tqdm import tqdm

        bar = tqdm(total=total, desc="astra-eval --live", unit="frame", disable=args.no_progress)
        cursor = 1_000_000_000  # the first episode starts at 1 s (a zero stamp means "now" to the node)
        for e, ep in enumerate(episodes):
            if e > 0:
                future = reset_client.call_async(Trigger.Request())
                spin_until(future.done, args.live_timeout, "the node's ~/reset")
            period = int(np.median(np.diff(ep.stamps))) if len(ep.stamps) > 1 else 66_666_667
            stamps = np.asarray(ep.stamps, np.int64) - int(ep.stamps[0]) + cursor
            cursor = int(stamps[-1]) + EPISODE_GAP_FRAMES * period
            names = list(ep.joint_names)
            commands = played_commands(ep, interface.modality)
            for t in range(len(ep.frames)):
                stamp = int(stamps[t])
                clock_pub.publish(Clock(clock=ns_to_stamp(stamp)))
                settle()  # a Float64MultiArray is stamped with the node's clock when it arrives
                if state_pub is not None:
                    state = JointState(name=names, position=[float(v) for v in ep.states.positions[t]])
                    state.header.stamp = ns_to_stamp(stamp)
                    state_pub.publish(state)
                cmd_pub.publish(command_message(interface, names, commands[t], stamp))
                plan = JointTrajectory()
                plan.header.stamp = ns_to_stamp(stamp)
                plan.joint_names = names
                for k in range(args.horizon + 2):  # from this frame's command on, a few spare points
                    src = min(t + k, len(ep.frames) - 1)
                    offset = int(stamps[src]) - stamp if t + k < len(ep.frames) else k * period
                    values = [float(v) for v in commands[src]]
                    point = JointTrajectoryPoint(**{"positions" if position else "velocities": values})
                    point.time_from_start = ns_to_duration(offset)  # in force over [its frame, the next)
                    plan.points.append(point)
                plan_pub.publish(plan)
                settle()  # the state, command and plan reach the node before the image
                sent = time.monotonic()
                image_pub.publish(rgb_to_image(ep.frames[t], stamp, "camera"))
                if t >= args.context - 1:
                    spin_until(
                        lambda s=stamp: s in received,
                        args.live_timeout,
                        f"the prediction for episode {e} frame {t}",
                    )
                    msg, recv = received.pop(stamp)
                    predictions[(e, t)] = predicted_frames_to_numpy(msg)
                    latencies.append((recv - sent) * 1e3)
                    if position:
                        target_error = max(target_error, conditioned_error(msg, names, commands, t))
                bar.update(1)
        bar.close()
    finally:
        executor.shutdown()
        player.destroy_node()
        rclpy.try_shutdown(context=context)
        stop_process(node_proc)
    return predictions, latencies, target_error


def conditioned_error(msg: Any, names: list[str], targets: np.ndarray, t: int) -> float:
    """The largest |target the node conditioned on - target played| over the prediction's frames
    that the episode covers (PredictedFrames.actions holds absolute targets for joint_position)."""
    index = [names.index(name) for name in msg.actions.joint_names]
    errors = [
        float(np.max(np.abs(np.asarray(point.positions) - targets[t + h][index])))
        for h, point in enumerate(msg.actions.points)
        if t + h < len(targets)
    ]
    return max(errors, default=0.0)


def run_live(args: argparse.Namespace) -> dict[str, Any]:
    """Score the node's PredictedFrames as ``model``; diagnostics from the same model run offline."""
    from astra_ros.evaluation.replay import latency_summary

    backend, episodes = open_inputs(args)
    out = Path(args.out)
    state_model = bool(backend.info.state_dim)
    predictions, latencies, target_error = play_into_node(args, episodes, out, state_model)
    scores, metrics = score(args, backend, episodes, "live", model_predictions=predictions)
    metrics["offline_latency_ms"] = metrics["latency_ms"]
    metrics["latency_ms"] = latency_summary(latencies)
    metrics["live_predictions"] = len(predictions)
    metrics["live_missing_windows"] = scores.missing
    if target_error is not None:
        metrics["live_target_max_error_rad"] = round(target_error, 6)
    metrics["sources"] = {
        "model": "PredictedFrames of the astra_world_model node (image publish -> receive latency)",
        "offline_model": "the same model through the backend in this process",
        "shuffled_commands/zero_commands/teacher_forced": "offline, through the backend",
    }
    if "offline_model" in metrics:
        diff = np.abs(np.subtract(metrics["model"]["psnr"], metrics["offline_model"]["psnr"]))
        metrics["live_vs_offline_max_psnr_diff_db"] = round(float(diff.max()), 4)
    report = write_outputs(metrics, scores.examples, out)
    metrics["report"] = str(report)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("context", "horizon"):
        if getattr(args, name) < 1:
            print(f"astra-eval: error: --{name}={getattr(args, name)}; expected >= 1", file=sys.stderr)
            return 2
    try:
        if args.live:
            metrics = run_live(args)
        else:
            metrics = run_offline(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # BagError is a ValueError
        print(f"astra-eval: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    model = metrics.get("model", {}).get("psnr", [])
    copy = metrics.get("copy_last", {}).get("psnr", [])
    print(
        f"astra-eval: {metrics['windows']} windows from {metrics['episodes']} episodes, "
        f"backend {metrics['backend']} ({metrics['model_id']})"
    )
    if model and copy:
        print(
            f"  PSNR h1 {model[0]:.2f} dB (copy_last {copy[0]:.2f}), "
            f"h{len(model)} {model[-1]:.2f} dB (copy_last {copy[-1]:.2f})"
        )
    rank = metrics.get("ranking", {})
    if "top1" in rank:
        print(
            f"  ranking k={rank['k']} h{rank['horizon']}: top-1 {rank['top1']:.3f} "
            f"(moving {rank['top1_moving']}), mean rank {rank['mean_rank']:.2f}"
        )
    lat = metrics.get("latency_ms", {})
    print(f"  latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    print(f"  wrote {out / 'metrics.json'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
