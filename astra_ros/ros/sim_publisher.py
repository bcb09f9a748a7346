"""astra_sim_publisher: the pybullet KUKA simulator as a ROS 2 node (camera + commands + /clock).

Publishes, in simulated time starting at ``record_sim.START_NS``:

- ``/clock`` (rosgraph_msgs/Clock) at every command tick (30 Hz), before the data of that tick;
- ``/joint_commands`` (sensor_msgs/JointState, ``velocity`` in rad/s, joints
  ``lbr_iiwa_joint_1..7``) at 30 Hz;
- ``/joint_states`` (sensor_msgs/JointState, ``position`` and ``velocity`` of the same joints) at
  30 Hz, the state each command is applied from (what ``astra-record-sim`` records);
- ``/camera/image_raw`` (sensor_msgs/Image rgb8, ``--size`` pixels) at 15 Hz, or with
  ``--image-transport compressed`` ``/camera/image_raw/compressed`` (sensor_msgs/CompressedImage,
  ``--image-codec`` jpeg or png, as image_transport's ``compressed`` plugin writes it).

The simulator (``astra_ros.sim.kuka``), its command process and the bag writer are those of
``astra-record-sim`` (one way to simulate), so a bag written with ``--bag`` holds the camera and
command messages ``astra-record-sim`` would write for the same stream. Time is paced at
``--real-time-factor`` x wall clock. Stops after ``--seconds`` of simulated time, or at
SIGINT/SIGTERM (the bag is closed cleanly either way).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from astra_ros.data.compressed import CODECS
from astra_ros.data.record_sim import IMAGE_TOPIC as CAMERA_TOPIC
from astra_ros.data.record_sim import (
    JOINT_TOPIC,
    KUKA_COMMAND_EVERY,
    START_NS,
    STATE_TOPIC,
    _BagOut,
    check_out_path,
    kuka_command,
    kuka_episode,
)
from astra_ros.sim.kuka import CAMERA_EVERY, PHYSICS_HZ, KukaEnv, SimState
from astra_ros.sim.kuka import JOINT_NAMES as KUKA_JOINTS

NS = 1_000_000_000


class KukaStream:
    """Steps the KUKA simulator tick by tick with astra-record-sim's command process.

    ``tick()`` returns ``(t_ns, command or None, image or None, state or None)`` for the next
    physics tick; a command tick also returns the state the command is applied from.
    """

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        self.sim = KukaEnv(size)
        self.rng = np.random.default_rng(seed)
        self.proc = kuka_episode(self.sim, self.rng)
        self.command = np.zeros(len(KUKA_JOINTS))
        self.k = 0

    def tick(self) -> tuple[int, np.ndarray | None, np.ndarray | None, SimState | None]:
        k = self.k
        t_ns = START_NS + (k * NS) // PHYSICS_HZ
        command = image = state = None
        if k % KUKA_COMMAND_EVERY == 0:
            state = self.sim.state()
            command = self.command = kuka_command(self.sim, self.proc)
        if k % CAMERA_EVERY == 0:
            image = self.sim.render()
        self.sim.step(self.command, self.sim.physics_period)
        self.k += 1
        return t_ns, command, image, state

    def close(self) -> None:
        self.sim.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra_sim_publisher", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.0, help="simulated seconds to run (0: until stopped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="camera image side in pixels")
    p.add_argument("--real-time-factor", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--bag", default=None, help="also record the published stream to this new rosbag2 bag")
    p.add_argument("--image-topic", default=CAMERA_TOPIC)
    p.add_argument(
        "--image-transport",
        choices=("raw", "compressed"),
        default="raw",
        help="compressed: sensor_msgs/CompressedImage on <image-topic>/compressed",
    )
    p.add_argument(
        "--image-codec", choices=CODECS, default="jpeg", help="codec of --image-transport compressed"
    )
    p.add_argument("--command-topic", default=JOINT_TOPIC)
    p.add_argument("--state-topic", default=STATE_TOPIC, help="joint positions and velocities")
    p.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        help="wait until the image topic has this many subscribers before starting",
    )
    p.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for subscribers")
    return p


def main(argv: list[str] | None = None) -> int:
    from astra_ros.ros.process import command_line, parse_node_args

    cli = command_line(argv)
    args = parse_node_args(build_parser(), cli)
    if args.real_time_factor <= 0:
        print(
            f"astra_sim_publisher: error: --real-time-factor={args.real_time_factor}; expected > 0",
            file=sys.stderr,
        )
        return 2
    if args.bag:
        try:
            check_out_path(Path(args.bag))
        except Exception as exc:  # RecordError
            print(f"astra_sim_publisher: error: {exc}", file=sys.stderr)
            return 2

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, Image, JointState

    from astra_ros.ros.conversions import ns_to_stamp, rgb_to_compressed_image, rgb_to_image
    from astra_ros.ros.process import init_stoppable_node

    node, stopped = init_stoppable_node("astra_sim_publisher", cli)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    clock_pub = node.create_publisher(Clock, "/clock", reliable)
    compressed = args.image_transport == "compressed"
    image_topic = f"{args.image_topic}/compressed" if compressed else args.image_topic
    image_pub = node.create_publisher(CompressedImage if compressed else Image, image_topic, reliable)
    cmd_pub = node.create_publisher(JointState, args.command_topic, reliable)
    state_pub = node.create_publisher(JointState, args.state_topic, reliable)
    stream = KukaStream(args.size, args.seed)
    bag = None
    if args.bag:
        bag = _BagOut(Path(args.bag), "mcap", "sensor_msgs/msg/JointState", args.command_topic)
    images = commands = 0
    try:
        deadline = time.monotonic() + args.wait_timeout
        while image_pub.get_subscription_count() < args.wait_for_subscribers and not stopped():
            if time.monotonic() > deadline:
                print(
                    f"astra_sim_publisher: error: {image_pub.get_subscription_count()} subscribers on "
                    f"{args.image_topic} after {args.wait_timeout} s; expected {args.wait_for_subscribers}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.05)
        node.get_logger().info(f"publishing KUKA sim on {image_topic} and {args.command_topic}")
        wall0 = time.monotonic()
        end_ns = START_NS + int(args.seconds * NS) if args.seconds > 0 else None
        while not stopped():
            t_ns, command, image, state = stream.tick()
            if end_ns is not None and t_ns >= end_ns:
                break
            if command is None and image is None:
                continue
            wait = wall0 + (t_ns - START_NS) / NS / args.real_time_factor - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            clock_pub.publish(Clock(clock=ns_to_stamp(t_ns)))
            if state is not None:
                msg = JointState()
                msg.header.stamp = ns_to_stamp(t_ns)
                msg.name = list(KUKA_JOINTS)
                msg.position = [float(v) for v in state.positions]
                msg.velocity = [float(v) for v in state.velocities]
                state_pub.publish(msg)
            if command is not None:
                msg = JointState()
                msg.header.stamp = ns_to_stamp(t_ns)
                msg.header.frame_id = "base"
                msg.name = list(KUKA_JOINTS)
                msg.velocity = [float(v) for v in command]
                cmd_pub.publish(msg)
                commands += 1
                if bag:
                    bag.joint_command(t_ns, KUKA_JOINTS, command)
            if image is not None:
                if compressed:
                    image_pub.publish(rgb_to_compressed_image(image, t_ns, "camera", args.image_codec))
                else:
                    image_pub.publish(rgb_to_image(image, t_ns, "camera"))
                images += 1
                if bag:
                    bag.image(t_ns, image)
    finally:
        if bag:
            bag.close()
        stream.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(
        f"astra_sim_publisher: published {images} images and {commands} commands"
        + (f"; recorded {args.bag}" if args.bag else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
