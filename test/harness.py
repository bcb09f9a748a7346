"""Shared by the node tests: the node in a subprocess driven over DDS (``NodeProcess``, ``Driver``,
``stream``), message makers, and a copy-last ``StreamSession`` set-up for tests without DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.ros.settings import SPECS, Settings, load_world_model
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.session import SessionConfig

COPY_LAST_JOINTS = [f"joint_{i}" for i in range(7)]


def session_config(**params: Any) -> tuple[WorldModelBackend, SessionConfig]:
    """A copy-last backend and the session config of the node's ``Settings`` with ``params``."""
    settings = Settings.from_values({"model_path": "copy_last", "joint_names": COPY_LAST_JOINTS, **params})
    return load_world_model(settings), SessionConfig.from_settings(settings)


def own_rss_kb(pid: int | str = "self") -> int:
    """VmRSS of a process (this one by default) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def ros_arg(name: str, value: Any) -> str:
    """One ``-p name:=value`` argument whose YAML parses back to the declared type."""
    kind = type(SPECS[name].default) if name in SPECS else type(value)
    if kind is float:
        text = repr(float(value))
    elif kind is bool or isinstance(value, bool):
        text = "true" if value else "false"
    elif kind is list:
        text = "[" + ", ".join(f"'{v}'" for v in value) + "]"
    else:
        text = str(value)
    return f"{name}:={text}"


class NodeProcess:
    """The node in a subprocess with the given parameters; always killed on exit."""

    def __init__(
        self, params: dict[str, Any], extra_args: list[str] | None = None, module: str = "astra_ros.ros.node"
    ):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="astra_node_", suffix=".log", delete=False)
        args = [sys.executable, "-m", module, *(extra_args or []), "--ros-args"]
        for name, value in params.items():
            args += ["-p", ros_arg(name, value)]
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def rss_kb(self) -> int:
        return own_rss_kb(self.proc.pid)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: clean rclpy shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def make_image(
    stamp_ns: int, size: int = 64, value: int = 0, encoding: str = "rgb8", frame_id: str = "camera"
):
    from sensor_msgs.msg import Image

    from astra_ros.ros.conversions import ns_to_stamp

    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height = msg.width = size
    msg.encoding = encoding
    msg.step = 3 * size
    msg.data = np.full((size, size, 3), value % 256, np.uint8).tobytes()
    return msg


def make_joint_state(stamp_ns: int, names: list[str], velocities: list[float]):
    from sensor_msgs.msg import JointState

    from astra_ros.ros.conversions import ns_to_stamp

    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.name = list(names)
    msg.velocity = [float(v) for v in velocities]
    return msg


class Driver:
    """Test/bench side: publishers, a PredictedFrames and /diagnostics sink, service clients.

    Uses reliable QoS for images so nothing is lost on the wire (the node's image QoS is chosen by
    the test through ``image_qos_reliability``).
    """

    def __init__(
        self,
        namespace: str = "",
        node_name: str = "astra_world_model",
        reliable_images: bool = True,
        depth: int = 50,
    ):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, JointState
        from std_srvs.srv import Trigger

        from astra_ros.msg import PredictedFrames
        from astra_ros.srv import Imagine

        self.rclpy = rclpy
        self.node = rclpy.create_node("astra_test_driver", namespace=namespace)
        image_qos = QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable_images else ReliabilityPolicy.BEST_EFFORT,
        )
        self.image_pub = self.node.create_publisher(Image, "image", image_qos)
        self.joint_pub = self.node.create_publisher(JointState, "joint_commands", depth)
        self.predictions: list[tuple[Any, int]] = []  # (msg, receipt ns)
        self.predicted_images: list[Any] = []
        self.diagnostics: list[Any] = []
        self.node.create_subscription(
            PredictedFrames,
            "predicted_frames",
            lambda m: self.predictions.append((m, time.time_ns())),
            max(depth, 100),
        )
        self.node.create_subscription(Image, "predicted_image", self.predicted_images.append, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 100)
        # Clients keep every request and reply: a keep-last client (the default depth 10) that fires
        # hundreds of calls at once overwrites its own requests before the node can read them.
        every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        self.imagine = self.node.create_client(Imagine, f"{node_name}/imagine", qos_profile=every_call)
        self.reset = self.node.create_client(Trigger, f"{node_name}/reset", qos_profile=every_call)

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_connected(self, proc: NodeProcess | None = None, timeout: float = 30.0) -> bool:
        def ready() -> bool:
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"node exited with {proc.proc.returncode}:\n{proc.output()}")
            return (
                self.image_pub.get_subscription_count() > 0
                and self.joint_pub.get_subscription_count() > 0
                and self.imagine.service_is_ready()
                and self.reset.service_is_ready()
            )

        return self.spin_until(ready, timeout)

    def call(self, client, request, timeout: float = 20.0):
        future = client.call_async(request)
        self.spin_until(future.done, timeout)
        if not future.done():
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout} s")
        return future.result()

    def latest_diagnostics(self) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith("/"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self) -> None:
        self.node.destroy_node()


def stream(
    driver: Driver,
    count: int,
    rate_hz: float,
    joints: list[str],
    size: int = 64,
    start_ns: int | None = None,
    velocity: Callable[[int], list[float]] | None = None,
) -> int:
    """Publish ``count`` image+command pairs at ``rate_hz`` (0 = as fast as possible); returns the
    last stamp. Commands are stamped 1 ms before their image."""
    period_ns = int(1e9 / rate_hz) if rate_hz > 0 else 33_333_333
    stamp = start_ns if start_ns is not None else time.time_ns()
    next_wall = time.monotonic()
    for i in range(count):
        if start_ns is None and rate_hz > 0:
            stamp = time.time_ns()
        vel = velocity(i) if velocity else [0.1 * ((i // 10) % 3 - 1)] * len(joints)
        driver.joint_pub.publish(make_joint_state(stamp - 1_000_000, joints, vel))
        driver.image_pub.publish(make_image(stamp, size, i))
        driver.rclpy.spin_once(driver.node, timeout_sec=0)
        if rate_hz > 0:
            next_wall += 1.0 / rate_hz
            while (delay := next_wall - time.monotonic()) > 0:
                driver.rclpy.spin_once(driver.node, timeout_sec=min(delay, 0.01))
        if start_ns is not None or rate_hz <= 0:
            stamp += period_ns
    return stamp

