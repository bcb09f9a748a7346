"""``astra_planner``: drives a robot toward a goal image by planning with the world model in-process.

Threads (one executor, one worker):
- The executor runs the callbacks. ``image`` and ``goal_image`` only convert (RGB at model size)
  and hand over: the newest camera frame (with the command that was in force while it was
  captured, and for robot-state models the newest ``joint_states`` positions) and the goal; an
  unreadable image or a JointState without the model's joints is dropped, counted and logged
  (throttled). The
  control timer (``control_rate``, 0 = the model's frame rate) publishes the current plan's command
  for now (``ClosedLoop.command_at``: zeros before a plan, after its horizon and with no goal) as
  ``JointState`` velocities on ``joint_commands`` (``joint_velocity`` models) or ``Twist`` on
  ``cmd_vel`` (``twist`` models), stamped with the plan's frame stamp.
- The worker ingests the handed-over frames in order and replans from the newest toward the goal
  (CEM or MPPI over the model's batched ``predict``, ``astra_ros.planning``); a frame that arrives
  while it plans waits for the next round. Diagnostics on ``/diagnostics`` at 1 Hz: plan time
  (last, p50), predicted cost, plans, counts.

The in-process model (not ``~/imagine`` of a world-model node) saves a serialisation of B x H
frames per plan: at 64 x 8 frames of 64x64 RGB that is 6.3 MB of Images per planning step.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from astra_ros.data.images import ImageFormatError, image_message_to_rgb, resize_to_model
from astra_ros.planning.closed_loop import ClosedLoop
from astra_ros.planning.costs import named_cost
from astra_ros.planning.planner import Planner, PlannerConfig, default_elites
from astra_ros.ros.commands import joint_state_to_state
from astra_ros.ros.conversions import ns_to_stamp, stamp_to_ns
from astra_ros.ros.input_limits import InputError
from astra_ros.ros.isolation import default_discovery
from astra_ros.ros.planner_settings import PlannerSettings, declare
from astra_ros.ros.settings import COPY_LAST, resolve_model_path

NODE_NAME = "astra_planner"
STATE_FUTURE_TOLERANCE_NS = 500_000_000  # a joint state stamped further ahead of the clock is refused
MAX_IMAGE_PIXELS = 2**23  # as the world-model node's max_image_pixels default: checked before decoding
DEFAULT_FRAME_PERIOD = 1.0 / 15.0  # a model that does not state its frame period


class PlannerNode(Node):
    def __init__(self, parameter_overrides: list | None = None):
        super().__init__(NODE_NAME, parameter_overrides=parameter_overrides or [])
        s = self.settings = declare(self)
        self.model = self._load_model(s)
        info = self.model.info
        self.modality = "joint_velocity" if "joint_velocity" in info.modalities else info.modalities[0]
        if self.modality not in ("joint_velocity", "twist"):
            raise ValueError(f"model modality {self.modality!r}; expected joint_velocity or twist")
        self.joint_names = list(s.joint_names or info.joint_names)
        if self.modality == "joint_velocity" and not self.joint_names:
            raise ValueError("parameter joint_names=[]; expected the joint names (the model has none)")
        width = len(self.joint_names) if self.modality == "joint_velocity" else 6
        period = info.frame_period or DEFAULT_FRAME_PERIOD
        config = PlannerConfig(
            method=s.method,
            candidates=s.candidates,
            horizon=s.horizon,
            iterations=s.iterations,
            elites=default_elites(s.candidates),
            std=s.sampling_std,
            smoothness=s.smoothness,
            steps=s.denoising_steps,
            seed=s.seed,
        )
        bound = np.full(width, s.max_velocity, np.float32)
        planner = Planner(self.model, self.modality, -bound, bound, named_cost(s.cost), config)
        self.loop = ClosedLoop(planner, round(period * 1e9), s.min_history)
        self._lock = threading.Condition()
        self._frames: deque[tuple[np.ndarray, np.ndarray, int, np.ndarray | None]] = deque(maxlen=64)
        self._state: np.ndarray | None = None  # newest joint positions (robot-state models only)
        self._goal: np.ndarray | None = None
        self._goal_changed = False
        self._in_force = np.zeros(width, np.float32)
        self._stop = False
        self._counts: Counter[str] = Counter()
        self._plan_ms: deque[float] = deque(maxlen=100)
        self._last_cost = float("nan")
        self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data)
        self.create_subscription(Image, "goal_image", self._on_goal, 1)
        if info.state_dim:
            self.create_subscription(
                JointState, "joint_states", self._on_joint_state, qos_profile_sensor_data
            )
        if self.modality == "joint_velocity":
            self._command_pub = self.create_publisher(JointState, "joint_commands", 10)
        else:
            self._command_pub = self.create_publisher(Twist, "cmd_vel", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / (s.control_rate or 1.0 / period), self._on_control)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name=f"{NODE_NAME}_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"planning with {info.backend} ({info.model_id}), {s.method} {s.candidates}x{s.horizon}, "
            f"cost {s.cost}, commands every {period:.3f} s"
        )

    @staticmethod
    def _load_model(s: PlannerSettings):
        if s.model_path == COPY_LAST:
            from astra_ros.runtime.copy_last import CopyLastBackend

            return CopyLastBackend()
        from astra_ros.runtime.loader import load_backend

        return load_backend(resolve_model_path(s.model_path), s.backend, steps=s.denoising_steps)

    # --- callbacks: convert and hand over ----------------------------------------------------------

    def _rgb(self, msg: Image, what: str) -> np.ndarray | None:
        try:
            return resize_to_model(image_message_to_rgb(msg, MAX_IMAGE_PIXELS), self.model.info.image_size)
        except ImageFormatError as err:
            with self._lock:
                self._counts[f"rejected.{what}_{err.reason}"] += 1
            self.get_logger().warning(f"dropped a {what} image: {err}", throttle_duration_sec=5.0)
            return None

    def _on_image(self, msg: Image) -> None:
        rgb = self._rgb(msg, "camera")
        if rgb is None:
            return
        with self._lock:
            if len(self._frames) == self._frames.maxlen:
                self._counts["dropped.frame_queue_full"] += 1
            self._frames.append((rgb, self._in_force.copy(), stamp_to_ns(msg.header.stamp), self._state))
            self._lock.notify()

    def _on_joint_state(self, msg: JointState) -> None:
        """The model's joints' positions by name (``commands.joint_state_to_state``); a bad message
        is dropped, counted and logged (throttled)."""
        now = self.get_clock().now().nanoseconds
        try:
            _, positions = joint_state_to_state(
                msg, self.model.info.joint_names, now, STATE_FUTURE_TOLERANCE_NS
            )
        except InputError as err:
            with self._lock:
                self._counts[f"rejected.{err.reason}"] += 1
            self.get_logger().warning(f"dropped a JointState: {err}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._state = positions

    def _on_goal(self, msg: Image) -> None:
        rgb = self._rgb(msg, "goal")
        if rgb is None:
            return
        with self._lock:
            self._goal, self._goal_changed = rgb, True
            self._counts["goals"] += 1
            self._lock.notify()

    def _on_control(self) -> None:
        now = self.get_clock().now().nanoseconds
        current = self.loop.current
        with self._lock:
            command = self.loop.command_at(now) if self._goal is not None else np.zeros_like(self._in_force)
            self._in_force = command
        stamp = current[1] if current is not None else now
        if self.modality == "joint_velocity":
            msg = JointState()
            msg.header.stamp = ns_to_stamp(stamp)
            msg.name = self.joint_names
            msg.velocity = [float(v) for v in command]
        else:
            msg = Twist()
            msg.linear.x, msg.linear.y, msg.linear.z = (float(v) for v in command[:3])
            msg.angular.x, msg.angular.y, msg.angular.z = (float(v) for v in command[3:])
        self._command_pub.publish(msg)

    # --- worker -------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not (self._frames and self._goal is not None):
                    self._lock.wait()
                if self._stop:
                    return
                frames = list(self._frames)
                self._frames.clear()
                goal, changed = self._goal, self._goal_changed
                self._goal_changed = False
            try:
                for rgb, command, _, state in frames:
                    self.loop.observe(rgb, command, state)
                if changed:
                    self.loop.new_goal()
                started = time.perf_counter()
                plan = self.loop.replan(goal, frames[-1][2])
                with self._lock:
                    if plan is None:
                        self._counts["not_warm"] += 1
                    else:
                        self._plan_ms.append((time.perf_counter() - started) * 1e3)
                        self._last_cost = plan.cost
                        self._counts["plans"] += 1
            except Exception as err:  # noqa: BLE001 - the worker must survive a backend failure
                with self._lock:
                    self._counts["planner_error"] += 1
                self.get_logger().error(
                    f"planning failed: {type(err).__name__}: {err}", throttle_duration_sec=5.0
                )

    def diagnostics(self) -> DiagnosticStatus:
        info = self.model.info
        with self._lock:
            times = list(self._plan_ms)
            values = {
                "model_id": info.model_id,
                "plan_last_ms": f"{times[-1]:.1f}" if times else "",
                "plan_p50_ms": f"{np.percentile(times, 50):.1f}" if times else "",
                "predicted_cost": f"{self._last_cost:.6f}",
                "history": str(self.model.history_length),
                **{f"count.{k}": str(v) for k, v in sorted(self._counts.items())},
            }
            goal = self._goal is not None
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: planner"
        status.hardware_id = info.model_id
        if not goal:
            status.level, status.message = DiagnosticStatus.WARN, "no goal image yet"
        elif not times:
            status.level, status.message = DiagnosticStatus.WARN, "warming up"
        else:
            status.level, status.message = DiagnosticStatus.OK, "planning"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostics()]
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._worker.join(timeout=10.0)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Console script ``astra_planner``: spin the node until shutdown; exit 2 if it cannot start."""
    default_discovery()
    rclpy.init(args=sys.argv if argv is None else [sys.argv[0], *argv])
    try:
        try:
            node = PlannerNode()
        except (ValueError, OSError, InvalidParameterValueException) as err:  # ModelLoadError: ValueError
            print(f"[{NODE_NAME}] cannot start: {err}", file=sys.stderr, flush=True)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
