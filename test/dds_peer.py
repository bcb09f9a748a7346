"""One side of the PredictedFrames DDS round trip used by test_interfaces_dds.py (run as a script).

``pub OUT``: publish one deterministic PredictedFrames once a subscriber matched, write its
serialized bytes to OUT and stay up until the subscriber left. ``sub OUT``: print ``ready``, wait
for one PredictedFrames and write its serialized bytes to OUT. Both use reliable, transient-local
QoS, bounded waits and ``isolate_ros()`` (domain from the environment) before ``rclpy.init()``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from astra_ros.ros.isolation import isolate_ros

TOPIC = "astra_test/predicted_frames"
N_FRAMES, H, W = 8, 64, 64
SEED = 1234


def make_message():
    """The message the publisher sends; deterministic in SEED so the test can rebuild it."""
    from builtin_interfaces.msg import Duration, Time
    from sensor_msgs.msg import Image
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from astra_ros.msg import PredictedFrames

    rng = np.random.default_rng(SEED)
    msg = PredictedFrames()
    msg.header.stamp = Time(sec=1_700_000_123, nanosec=456_789_012)
    msg.header.frame_id = "camera_color_optical_frame"
    msg.context_stamps = [Time(sec=1_700_000_122, nanosec=100_000_000 * i + 7) for i in range(4)]
    msg.time_step = Duration(sec=0, nanosec=66_666_667)
    frames = []
    for i in range(N_FRAMES):
        img = Image()
        ns = msg.header.stamp.nanosec + (i + 1) * msg.time_step.nanosec
        img.header.stamp = Time(sec=msg.header.stamp.sec + ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        img.header.frame_id = msg.header.frame_id
        img.height, img.width, img.encoding, img.step = H, W, "rgb8", W * 3
        img.data = rng.integers(0, 256, size=H * W * 3, dtype=np.uint8).tobytes()
        frames.append(img)
    msg.frames = frames
    msg.confidence = [float(c) for c in np.linspace(1.0, 0.3, N_FRAMES, dtype=np.float32)]
    msg.actions = JointTrajectory()
    msg.actions.joint_names = [f"iiwa_joint_{j + 1}" for j in range(7)]
    points = []
    for i in range(N_FRAMES):
        ns = (i + 1) * msg.time_step.nanosec
        points.append(
            JointTrajectoryPoint(
                velocities=[float(v) for v in rng.uniform(-1, 1, 7)],
                time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
            )
        )
    msg.actions.points = points
    msg.modality = "joint_velocity"
    msg.command_policy = "hold_last"
    msg.rollout_id = 2**40 + 17
    msg.state_reset = True
    msg.model_id = "0123abcd/-/fp32"
    return msg


def _qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["pub", "sub"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    isolate_ros()
    import rclpy
    from rclpy.serialization import serialize_message

    from astra_ros.msg import PredictedFrames

    rclpy.init()
    node = rclpy.create_node(f"astra_dds_test_{args.role}")
    deadline = time.monotonic() + args.timeout
    try:
        if args.role == "sub":
            received = []
            node.create_subscription(PredictedFrames, TOPIC, received.append, _qos())
            print("ready", flush=True)
            while not received and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
            if not received:
                print(f"sub: no PredictedFrames on {TOPIC} within {args.timeout} s", file=sys.stderr)
                return 2
            args.out.write_bytes(serialize_message(received[0]))
            return 0
        pub = node.create_publisher(PredictedFrames, TOPIC, _qos())
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        if pub.get_subscription_count() < 1:
            print(f"pub: no subscriber matched on {TOPIC} within {args.timeout} s", file=sys.stderr)
            return 2
        msg = make_message()
        pub.publish(msg)
        args.out.write_bytes(serialize_message(msg))
        # Stay up (reliable delivery) until the subscriber has gone.
        while pub.get_subscription_count() > 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        return 0
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
