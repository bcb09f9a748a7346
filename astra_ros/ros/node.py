"""``astra_world_model``: streams camera frames and commands into a world model and publishes its
predictions of the next frames.

A managed (lifecycle) node: ``configure`` loads the model and starts a ``StreamSession``
(``runtime/session.py``: queue, worker, decimation, accounting, statistics); ``activate`` creates the
subscriptions and enables the publishers; ``deactivate`` removes the subscriptions and clears the
causal state; ``cleanup`` releases the model. ``autostart`` (default) configures and activates at
start. The callbacks only convert, validate and hand over: messages in, numpy into the session,
each ``Prediction`` out as ``PredictedFrames``. Threads, and one frame followed from callback to
message: docs/node.md. Data stamps are copied from the image (never ``now()``); the node clock
(``use_sim_time`` honoured) is only used for latency, stamp ages and unstamped Twist commands.
"""

from __future__ import annotations

import gc
import math
import signal
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from astra_ros.data.compressed import compressed_to_rgb
from astra_ros.data.images import ImageFormatError, resize_to_model
from astra_ros.msg import PredictedFrames
from astra_ros.ros import commands
from astra_ros.ros.conversions import (
    InputError,
    command_stamp_to_ns,
    command_width,
    commands_to_trajectory,
    image_to_model,
    imagine_actions,
    joint_state_to_command,
    ns_to_duration,
    ns_to_stamp,
    rgb_to_image,
    stamp_to_ns,
    trajectory_to_plan,
    twist_to_command,
)
from astra_ros.ros.health import HealthConfig, NodeHealth
from astra_ros.ros.input_limits import check_frame_id, check_names, check_stamp_ns, truncate_for_log
from astra_ros.ros.isolation import default_discovery
from astra_ros.ros.settings import SPECS, Settings, SettingsError, declare_settings, resolve_model_path
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.loader import load_backend
from astra_ros.runtime.session import ImagineRefused, Prediction, SessionConfig, StreamSession
from astra_ros.srv import Imagine

NODE_NAME = "astra_world_model"
RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, model file missing/corrupt/wrong kind)."""


def load_world_model(settings: Settings) -> WorldModelBackend:
    """The backend named by the settings (``runtime.loader``; 'copy_last' needs no model file)."""
    path = resolve_model_path(settings.model_path)
    try:
        return load_backend(path, settings.backend, **settings.backend_options())
    except (ValueError, OSError) as err:  # ModelLoadError is a ValueError
        raise StartupError(f"model_path={path!r} backend={settings.backend!r}: {err}") from err


def qos(depth: int, reliability: str) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=RELIABILITY[reliability],
        durability=qos_profile_sensor_data.durability,
    )


class WorldModelNode(LifecycleNode):
    def __init__(self, **node_kwargs):
        self.backend: WorldModelBackend | None = None
        self.session: StreamSession | None = None
        self.imagine_node: Node | None = None
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.settings = declare_settings(self)
        except SettingsError as err:
            raise StartupError(str(err)) from err
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.startup_error = ""
        self._logged_at: dict[str, float] = {}
        self._subscriptions_active: list = []
        self._health: NodeHealth | None = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset, qos_profile=every_call)
        self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        self.imagine_node = Node(
            f"{self.get_name()}_imagine",
            namespace=self.get_namespace(),
            context=self.context,
            use_global_arguments=False,  # a global __node remap must not give it the node's name
            start_parameter_services=False,
        )
        imagine = self.resolve_service_name("~/imagine")
        self.imagine_node.create_service(Imagine, imagine, self._on_imagine, qos_profile=every_call)

    # --- lifecycle --------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except StartupError as err:
            self.startup_error = str(err)
            self.get_logger().error(f"cannot configure: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        s = self.settings
        self.backend = load_world_model(s)
        info = self.backend.info
        self.modality = s.modality
        try:  # None: learnt from the first JointState
            self.joint_order = commands.model_joint_order(s.modality, s.joint_names, s.command_type, info)
        except ValueError as err:
            raise StartupError(str(err)) from err
        width = None if self.joint_order is None else command_width(self.modality, self.joint_order)
        # Predicted stamps reach (imagine_max_horizon + 1) model steps past an image; a step is at most
        # the larger of max_image_gap (else the timeline resets) and the frame period.
        longest_step_s = max(s.max_image_gap, s.frame_period, info.frame_period, 1.0)
        self._stamp_reserve_ns = int((s.imagine_max_horizon + 1) * longest_step_s * 1e9)
        self._future_tolerance_ns = int(s.future_stamp_tolerance * 1e9)
        try:
            config = SessionConfig.from_settings(s)
            self.session = StreamSession(self.backend, config, self._publish, width, self._now_ns, self._log)
        except ValueError as err:
            raise StartupError(str(err)) from err
        output_qos = qos(s.output_qos_depth, s.output_qos_reliability)
        self._frames_pub = self.create_lifecycle_publisher(PredictedFrames, "predicted_frames", output_qos)
        self._image_pub = self.create_lifecycle_publisher(Image, "predicted_image", output_qos)
        self.get_logger().info(
            f"configured: backend={info.backend} model_id={info.model_id} image_size={info.image_size} "
            f"modality={self.modality} horizon={s.horizon} min_history={s.min_history} "
            f"cache={self.session.history_cap} prediction_rate={s.prediction_rate} Hz "
            f"frame_period={self.session.frame_period_ns / 1e6:g} ms (0: every image)"
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        s, info = self.settings, self.backend.info
        command_qos = qos(s.command_qos_depth, s.command_qos_reliability)
        image_qos = qos(s.image_qos_depth, s.image_qos_reliability)
        subscribe = self.create_subscription
        subs = self._subscriptions_active
        if s.command_type == "joint_state":
            subs.append(subscribe(JointState, "joint_commands", self._on_joint_state, command_qos))
        elif s.command_type in ("float64_multi_array", "joint_trajectory"):
            kind = Float64MultiArray if s.command_type == "float64_multi_array" else JointTrajectory
            subs.append(subscribe(kind, "joint_commands", self._on_joint_command, command_qos))
        elif s.command_type == "twist":
            subs.append(subscribe(Twist, "cmd_vel", self._on_twist, command_qos))
        else:
            subs.append(subscribe(TwistStamped, "cmd_vel", self._on_twist_stamped, command_qos))
        if s.image_transport == "compressed":  # image_transport's name: <base topic>/compressed
            topic = self.resolve_topic_name("image") + "/compressed"
            images = subscribe(CompressedImage, topic, self._on_compressed_image, image_qos)
        else:
            images = subscribe(Image, "image", self._on_image, image_qos)
        subs.append(images)
        if s.state_topic and (info.state_dim or self.modality == "joint_position"):
            subs.append(subscribe(JointState, s.state_topic, self._on_state, command_qos))
        if s.future_command_policy == "planned":
            subs.append(subscribe(JointTrajectory, "planned_commands", self._on_plan, command_qos))
        config = HealthConfig.from_settings(s, info.frame_period)
        self._health = NodeHealth(config, lambda: self._now_ns() / 1e9)
        self._health.problems.observe(self.session.stats().counts)
        self.get_logger().info(f"active: {s.image_transport} images on {images.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)  # publishers off first: nothing of the old state goes out
        for sub in self._subscriptions_active:
            self.destroy_subscription(sub)
        self._subscriptions_active.clear()
        self._health = None
        cleared = self.session.reset("deactivate")
        self.get_logger().info(f"inactive: causal state cleared ({cleared} queued frames discarded)")
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Stop the worker, drop the publishers and the model (its memory is returned)."""
        if self.session is not None:
            self.session.close()
        for name in ("_frames_pub", "_image_pub"):
            publisher = self.__dict__.pop(name, None)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self.session = self.backend = None
        gc.collect()

    @property
    def active(self) -> bool:
        return bool(self._subscriptions_active)

    # --- live parameters -------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """Validate a change of the live parameters and apply it; the others (``use_sim_time`` too:
        switched live, /diagnostics would wait for a /clock) are read at start."""
        fixed = [p.name for p in parameters if p.name not in SPECS or SPECS[p.name].read_only]
        if fixed:
            reason = f"{fixed} are read at start; restart to change"
            return SetParametersResult(successful=False, reason=reason)
        changes = {p.name: p.value for p in parameters}
        try:
            settings = Settings.from_values({**self._values(), **changes})
        except SettingsError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.settings = settings
        if self.session is not None:
            self.session.update(SessionConfig.from_settings(settings))
        self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    def _values(self) -> dict:
        return {name: getattr(self.settings, name) for name in SPECS}

    # --- helpers ---------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _log(self, level: str, text: str, throttled: bool, key: str = "") -> None:
        """The session's log: throttled lines of one ``key`` (default: the level) at most once per
        ``log_throttle_period`` (rclpy's own throttle cannot change its period between calls)."""
        if throttled:
            key, now = key or level, time.monotonic()
            if now - self._logged_at.get(key, -math.inf) < self.settings.log_throttle_period:
                return
            self._logged_at[key] = now
        logger = self.get_logger()  # rclpy ties a severity to each call site: one line per level
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    # --- callbacks: convert, validate, submit -------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        self._health.command(stamp_to_ns(msg.header.stamp))
        if self.joint_order is None:
            try:
                check_names(list(msg.name), "JointState")
            except InputError as err:
                self.session.reject(err.reason, str(err))
                return
            values = commands.joint_state_field(msg, self.modality)
            if not msg.name or len(msg.name) != len(values) or len(set(msg.name)) != len(msg.name):
                problem = f"cannot learn the joint order from names {list(msg.name)} with {len(values)}"
                self.session.reject("joint_names", f"{problem} values; set the joint_names parameter")
                return
            self.joint_order = tuple(msg.name)
            self.session.start_commands(command_width(self.modality, self.joint_order))
            self.get_logger().info(
                truncate_for_log(f"joint order learnt from the first JointState: {list(self.joint_order)}")
            )
        try:
            values, what = commands.joint_state_field(msg, self.modality), f"JointState {self.modality}"
            command = joint_state_to_command(
                msg.name, values, self.joint_order, self.settings.max_command_magnitude, what
            )
            stamp_ns = command_stamp_to_ns(msg.header.stamp, self._now_ns(), self._future_tolerance_ns)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_ns, command)

    def _on_joint_command(self, msg: Float64MultiArray | JointTrajectory) -> None:
        s, now = self.settings, self._now_ns()
        self._health.command(isinstance(msg, JointTrajectory) and stamp_to_ns(msg.header.stamp) or now)
        try:
            stamp_ns, command = commands.joint_command(
                msg, self.modality, s.joint_names, self.joint_order, now, self._future_tolerance_ns,
                s.max_command_magnitude,
            )
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_ns, command)

    def _on_state(self, msg: JointState) -> None:
        order, now = self.backend.info.joint_names or self.joint_order, self._now_ns()
        try:
            stamp_ns, positions = commands.joint_state_to_state(msg, order, now, self._future_tolerance_ns)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_state(stamp_ns, positions)

    def _on_twist(self, msg: Twist) -> None:
        now = self._now_ns()
        self._health.command(now)
        self._on_twist_at(msg, now)

    def _on_twist_stamped(self, msg: TwistStamped) -> None:
        self._health.command(stamp_to_ns(msg.header.stamp))
        try:
            stamp_ns = command_stamp_to_ns(msg.header.stamp, self._now_ns(), self._future_tolerance_ns)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self._on_twist_at(msg.twist, stamp_ns)

    def _on_twist_at(self, twist: Twist, stamp_ns: int) -> None:
        try:
            command = twist_to_command(twist, self.settings.max_command_magnitude)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_ns, command)

    def _on_plan(self, msg: JointTrajectory) -> None:
        try:
            offsets, commands = trajectory_to_plan(
                msg, self.modality, self.joint_order or (), self.settings.max_command_magnitude
            )
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_plan(stamp_to_ns(msg.header.stamp), offsets, commands)

    def _image_received(self, stamp_ns: int) -> None:
        self.session.image_received()
        if loss := self._health.image(stamp_ns):
            self._log("warning", loss, True, "frame_loss")

    def _on_image(self, msg: Image) -> None:
        self._image_received(stamp_to_ns(msg.header.stamp))
        s = self.settings
        try:
            stamp_ns, rgb = image_to_model(
                msg,
                self.backend.info.image_size,
                s.max_image_pixels,
                self._now_ns(),
                self._future_tolerance_ns,
                self._stamp_reserve_ns,
            )
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit(rgb, stamp_ns, msg.header.frame_id)

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        self._image_received(stamp_to_ns(msg.header.stamp))
        try:
            stamp_ns = check_stamp_ns(
                stamp_to_ns(msg.header.stamp),
                "image",
                self._now_ns(),
                self._future_tolerance_ns,
                self._stamp_reserve_ns,
            )
            check_frame_id(msg.header.frame_id, "image")
            rgb = compressed_to_rgb(msg, self.settings.max_image_pixels)
        except (InputError, ImageFormatError) as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit(resize_to_model(rgb, self.backend.info.image_size), stamp_ns, msg.header.frame_id)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.session is None:
            response.success, response.message = False, "not configured: no causal state to clear"
            return response
        try:
            cleared = self.session.reset("service")
        except Exception as err:  # noqa: BLE001 - every call is answered
            response.success, response.message = False, f"{type(err).__name__}: {err}"
            self.session.reject("service_error", f"~/reset: {response.message}")
            return response
        response.success = True
        response.message = f"causal state cleared ({cleared} queued frames discarded)"
        self._log("info", response.message, True, "reset")
        return response

    def _on_imagine(self, request: Imagine.Request, response: Imagine.Response) -> Imagine.Response:
        session = self.session
        if session is None or not self.active:
            response.success, response.error = False, "not active: the node predicts only in state 'active'"
            return response
        info = session.backend.info
        response.model_id = info.model_id
        s = self.settings
        try:
            joints, limit = self.joint_order or (), s.max_command_magnitude
            actions = imagine_actions(request, info.modalities, joints, s.imagine_max_horizon, limit)
            shared = bool(request.share_noise)
            imagined = session.imagine(actions, request.modality, int(request.seed), shared)
            (batch, horizon), newest = actions.shape[:2], imagined.newest
            response.frames = [
                rgb_to_image(frame, newest.stamp_ns + (h + 1) * newest.step_ns, newest.frame_id)
                for candidate in imagined.frames
                for h, frame in enumerate(candidate)
            ]
        except Exception as err:  # noqa: BLE001 - every call is answered
            known = isinstance(err, (InputError, ImagineRefused))
            response.frames, response.success = [], False
            response.error = str(err) if known else f"{type(err).__name__}: {err}"
            if not isinstance(err, ImagineRefused):  # the session counts its own refusals
                session.reject(getattr(err, "reason", "service_error"), f"~/imagine: {response.error}")
            return response
        decay = self.settings.confidence_decay
        response.confidence = [float(np.mean(decay ** np.arange(1, horizon + 1)))] * batch
        response.success = True
        return response

    # --- output (called by the session's worker) --------------------------------------------------

    def _publish(self, prediction: Prediction) -> None:
        newest, frames, s = prediction.newest, prediction.frames, self.settings
        msg = PredictedFrames()
        msg.header.stamp = ns_to_stamp(newest.stamp_ns)
        msg.header.frame_id = newest.frame_id
        msg.context_stamps = [ns_to_stamp(ns) for ns in prediction.context_stamps]
        msg.time_step = ns_to_duration(newest.step_ns)
        msg.frames = [
            rgb_to_image(frame, newest.stamp_ns + (i + 1) * newest.step_ns, newest.frame_id)
            for i, frame in enumerate(frames)
        ]
        msg.confidence = [float(s.confidence_decay ** (i + 1)) for i in range(len(frames))]
        joints = self.joint_order or ()
        msg.actions = commands_to_trajectory(
            prediction.actions, self.modality, joints, newest.stamp_ns, newest.frame_id, newest.step_ns
        )
        msg.modality = self.modality
        msg.command_policy = prediction.policy
        msg.rollout_id = prediction.rollout_id
        msg.state_reset = prediction.state_reset
        msg.model_id = self.backend.info.model_id
        self._frames_pub.publish(msg)
        self._image_pub.publish(msg.frames[min(s.predicted_image_horizon, len(msg.frames)) - 1])

    # --- diagnostics -------------------------------------------------------------------------------

    def diagnostics(self) -> list[DiagnosticStatus]:
        """The node's status (level from recent problems and warm-up), then one per input."""
        name = f"{self.get_fully_qualified_name()}: world model"
        session = self.session
        if session is None or not self.active:
            state = "inactive" if session is not None else "unconfigured"
            return [
                DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message=state, hardware_id=NODE_NAME)
            ]
        info, stats = session.backend.info, session.stats()
        statuses = self._health.statuses(stats.counts, stats.history, self.settings.min_history)
        statuses["node"].values = {
            "backend": info.backend,
            "model_id": info.model_id,
            "modality": self.modality,
            "input_rate_hz": f"{stats.input_rate_hz:.2f}",
            "prediction_rate_hz": f"{stats.prediction_rate_hz:.2f}",
            "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
            "latency_p99_ms": f"{stats.latency_p99_ms:.2f}",
            "ingest_p50_ms": f"{stats.ingest_p50_ms:.2f}",
            "predict_p50_ms": f"{stats.predict_p50_ms:.2f}",
            "outside_backend_p50_ms": f"{stats.outside_backend_p50_ms:.2f}",
            "cache_fill": f"{stats.history}/{stats.cache_size}",
            "queue_length": str(stats.queue_length),
            **{key: str(count) for key, count in sorted(stats.counts.items())},
            **statuses["node"].values,
        }
        prefix = self.get_fully_qualified_name()
        return [
            DiagnosticStatus(
                level=bytes([int(status.level)]),
                name=name if key == "node" else f"{prefix}: {key}",
                message=status.message,
                hardware_id=f"{info.backend}/{info.model_id}",
                values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
            )
            for key, status in statuses.items()
        ]

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()  # diagnostics are about now, not data
        array.status = self.diagnostics()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        self._release()
        if self.imagine_node is not None:
            self.imagine_node.destroy_node()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Console script ``astra_world_model``: spin the node until shutdown; exit 2 if it cannot start."""
    default_discovery()
    return spin_node(sys.argv if argv is None else [sys.argv[0], *argv])


def spin_node(args: list[str], parameter_overrides: list | None = None) -> int:
    """Init rclpy with ``args`` (ROS arguments), run the node and its executors, shut down.

    SIGINT / SIGTERM stop the spin loop; the worker is stopped and the node shut down before the
    ROS context (rclpy's own handlers would invalidate the context under the worker first).
    """
    # The worker needs the GIL back from the executor threads after each backend call: at Python's
    # default 5 ms switch interval that wait added ~80 ms to the p50 latency and up to 2 s to the p99
    # (2-core CPU, measured with an earlier multi-threaded executor); 0.2 ms removes most of it.
    sys.setswitchinterval(0.0002)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            node = WorldModelNode(parameter_overrides=parameter_overrides or [])
        except StartupError as err:
            print(f"[{NODE_NAME}] cannot start: {err}", file=sys.stderr, flush=True)
            return 2
        if node.settings.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                print(f"[{NODE_NAME}] cannot start: {node.startup_error}", file=sys.stderr, flush=True)
                node.destroy_node()
                return 2
            node.trigger_activate()
        executor, imagine_executor = SingleThreadedExecutor(), SingleThreadedExecutor()
        executor.add_node(node)
        imagine_executor.add_node(node.imagine_node)
        threading.Thread(
            target=_spin, args=(imagine_executor, stop, node), name=f"{NODE_NAME}_imagine", daemon=True
        ).start()
        try:
            _spin(executor, stop, node)
        finally:
            node.trigger_shutdown()
            imagine_executor.shutdown()
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


def _spin(executor: SingleThreadedExecutor, stop: threading.Event, node: Node) -> None:
    """Spin until ``stop`` (checked at least every 0.1 s: a signal cannot wake the wait itself). An
    exception escaping a callback (e.g. rclpy's TimeSource on a /clock with negative seconds) is
    logged and spinning goes on: no message kills the node."""
    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return
        except Exception as err:  # noqa: BLE001
            message = f"callback failed: {type(err).__name__}: {err}"
            node.get_logger().error(message, throttle_duration_sec=5.0)


if __name__ == "__main__":
    sys.exit(main())
