"""astra_prediction_recorder: subscribes to PredictedFrames and the camera like a planner would.

Saves what it received to an ``.npz`` when stopped (SIGINT/SIGTERM or ``--seconds`` of wall time):

- ``image_stamps`` (M,) int64 ns, ``images`` (M, S, S, 3) uint8, ``image_recv_s`` (M,) float64;
- ``pred_stamps`` (N,) int64 ns (stamp of the newest conditioning image), ``pred_frames``
  (N, H, S, S, 3) uint8, ``pred_rollout_ids`` (N,), ``pred_state_reset`` (N,) bool,
  ``pred_time_step_ns`` (N,), ``pred_recv_s`` (N,), ``pred_latency_ms`` (N,): receive time of the
  prediction minus receive time of its conditioning image here (NaN when that image was not seen);
- ``model_id``, ``command_policy`` (str of the last message).

Receive times are this process's monotonic wall clock, so the latency is what a planner sees.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.files import atomic_write


def predicted_frames_to_numpy(msg: Any) -> np.ndarray:
    """PredictedFrames -> (H, S, S, 3) uint8."""
    from astra_ros.data.images import image_message_to_rgb

    if not msg.frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack([image_message_to_rgb(img) for img in msg.frames])


class PredictionLog:
    """What the recorder keeps; ``save`` writes the npz described in the module docstring."""

    def __init__(self) -> None:
        self.image_stamps: list[int] = []
        self.images: list[np.ndarray] = []
        self.image_recv: list[float] = []
        self.recv_by_stamp: dict[int, float] = {}
        self.pred_stamps: list[int] = []
        self.pred_frames: list[np.ndarray] = []
        self.rollout_ids: list[int] = []
        self.state_reset: list[bool] = []
        self.time_step_ns: list[int] = []
        self.pred_recv: list[float] = []
        self.latency_ms: list[float] = []
        self.model_id = ""
        self.command_policy = ""

    def add_image(self, stamp_ns: int, rgb: np.ndarray, recv: float) -> None:
        self.image_stamps.append(stamp_ns)
        self.images.append(rgb)
        self.image_recv.append(recv)
        self.recv_by_stamp[stamp_ns] = recv

    def add_prediction(self, msg: Any, recv: float) -> None:
        from astra_ros.ros.conversions import duration_to_ns, stamp_to_ns

        stamp = stamp_to_ns(msg.header.stamp)
        self.pred_stamps.append(stamp)
        self.pred_frames.append(predicted_frames_to_numpy(msg))
        self.rollout_ids.append(int(msg.rollout_id))
        self.state_reset.append(bool(msg.state_reset))
        self.time_step_ns.append(duration_to_ns(msg.time_step))
        self.pred_recv.append(recv)
        seen = self.recv_by_stamp.get(stamp)
        self.latency_ms.append((recv - seen) * 1e3 if seen is not None else float("nan"))
        self.model_id = msg.model_id
        self.command_policy = msg.command_policy

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shapes = {f.shape for f in self.pred_frames}
        frames = np.stack(self.pred_frames) if len(shapes) == 1 else np.zeros((0, 0, 0, 0, 3), np.uint8)
        with atomic_write(path) as f:
            np.savez_compressed(
                f,
                image_stamps=np.asarray(self.image_stamps, np.int64),
                images=np.stack(self.images) if self.images else np.zeros((0, 0, 0, 3), np.uint8),
                image_recv_s=np.asarray(self.image_recv, np.float64),
                pred_stamps=np.asarray(self.pred_stamps, np.int64),
                pred_frames=frames,
                pred_rollout_ids=np.asarray(self.rollout_ids, np.int64),
                pred_state_reset=np.asarray(self.state_reset, bool),
                pred_time_step_ns=np.asarray(self.time_step_ns, np.int64),
                pred_recv_s=np.asarray(self.pred_recv, np.float64),
                pred_latency_ms=np.asarray(self.latency_ms, np.float64),
                model_id=np.asarray(self.model_id),
                command_policy=np.asarray(self.command_policy),
            )
        return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra_prediction_recorder", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="npz file to write when stopped")
    p.add_argument("--seconds", type=float, default=0.0, help="wall seconds to record (0: until stopped)")
    p.add_argument("--predictions-topic", default="/predicted_frames")
    p.add_argument("--image-topic", default="/camera/image_raw")
    p.add_argument(
        "--image-transport",
        choices=("raw", "compressed"),
        default="raw",
        help="compressed: record sensor_msgs/CompressedImage from <image-topic>/compressed",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from astra_ros.ros.process import command_line, parse_node_args

    cli = command_line(argv)
    args = parse_node_args(build_parser(), cli)
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from astra_ros.data.compressed import compressed_to_rgb
    from astra_ros.data.images import image_message_to_rgb
    from astra_ros.msg import PredictedFrames
    from astra_ros.ros.conversions import stamp_to_ns
    from astra_ros.ros.process import init_stoppable_node

    node, stopped = init_stoppable_node("astra_prediction_recorder", cli)
    log = PredictionLog()
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    compressed = args.image_transport == "compressed"
    decode = compressed_to_rgb if compressed else image_message_to_rgb
    node.create_subscription(
        CompressedImage if compressed else Image,
        f"{args.image_topic}/compressed" if compressed else args.image_topic,
        lambda msg: log.add_image(stamp_to_ns(msg.header.stamp), decode(msg), time.monotonic()),
        reliable,
    )
    node.create_subscription(
        PredictedFrames,
        args.predictions_topic,
        lambda msg: log.add_prediction(msg, time.monotonic()),
        reliable,
    )
    end = time.monotonic() + args.seconds if args.seconds > 0 else None
    try:
        while not stopped() and (end is None or time.monotonic() < end):
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        path = log.save(Path(args.out))
        node.destroy_node()
        rclpy.try_shutdown()
    print(
        f"astra_prediction_recorder: {len(log.pred_stamps)} predictions and {len(log.image_stamps)} images "
        f"-> {path}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
