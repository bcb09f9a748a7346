"""``astra_world_model``: streams camera frames and commands into a world model and publishes its
predictions of the next frames.

The node only converts, validates and hands over: messages in, numpy into a ``StreamSession``
(``runtime/session.py``: queue, worker, decimation, accounting, statistics), each ``Prediction``
out as ``PredictedFrames``. Threads, and one frame followed from callback to message: docs/node.md.
Data stamps are copied from the image (never ``now()``); the node clock (``use_sim_time``
honoured) is only used for latency and for unstamped Twist commands.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from astra_ros.data.images import ImageFormatError, image_message_to_rgb, resize_to_model
from astra_ros.msg import PredictedFrames
from astra_ros.ros.conversions import (
    InputError,
    command_width,
    commands_to_trajectory,
    image_reject_reason,
    imagine_actions,
    joint_state_to_command,
    ns_to_duration,
    ns_to_stamp,
    rgb_to_image,
    stamp_to_ns,
    trajectory_to_plan,
    twist_to_command,
)
from astra_ros.ros.isolation import default_discovery
from astra_ros.ros.settings import Settings, SettingsError, declare_settings, resolve_model_path
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.loader import load_backend
from astra_ros.runtime.session import ImagineRefused, Prediction, SessionConfig, StreamSession
from astra_ros.srv import Imagine

NODE_NAME = "astra_world_model"
CONFIDENCE_DECAY = 0.9
"""confidence[h-1] = CONFIDENCE_DECAY ** h: a fixed prior that the future gets harder to predict.
No uncertainty is computed (the guided/unguided disagreement mentioned in the message is not
implemented); Imagine reports the mean over the horizon, the same for every candidate."""
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


class WorldModelNode(Node):
    def __init__(self, backend: WorldModelBackend | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.settings = s = declare_settings(self)
        except SettingsError as err:
            raise StartupError(str(err)) from err
        self.backend = backend if backend is not None else load_world_model(s)
        info = self.backend.info
        self.modality = s.modality
        self.joint_order: tuple[str, ...] | None = ()  # None: learnt from the first JointState
        if self.modality == "joint_velocity":
            if s.joint_names and info.joint_names and set(s.joint_names) != set(info.joint_names):
                raise StartupError(
                    f"joint_names={list(s.joint_names)}; expected the model's joints {list(info.joint_names)}"
                )
            self.joint_order = tuple(info.joint_names or s.joint_names) or None
        width = None if self.joint_order is None else command_width(self.modality, self.joint_order)
        try:
            config = SessionConfig.from_settings(s)
            self.session = StreamSession(self.backend, config, self._publish, width, self._now_ns, self._log)
        except ValueError as err:
            raise StartupError(str(err)) from err
        image_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=s.image_qos_depth,
            reliability=RELIABILITY[s.image_qos_reliability],
            durability=qos_profile_sensor_data.durability,
        )
        command_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=s.command_qos_depth, reliability=ReliabilityPolicy.RELIABLE
        )
        if s.command_type == "joint_state":
            self.create_subscription(JointState, "joint_commands", self._on_joint_state, command_qos)
        else:
            twist_type = TwistStamped if s.command_type == "twist_stamped" else Twist
            self.create_subscription(twist_type, "cmd_vel", self._on_twist, command_qos)
        self.create_subscription(Image, "image", self._on_image, image_qos)
        if s.future_command_policy == "planned":
            self.create_subscription(JointTrajectory, "planned_commands", self._on_plan, command_qos)
        self._frames_pub = self.create_publisher(PredictedFrames, "predicted_frames", s.output_qos_depth)
        self._image_pub = self.create_publisher(Image, "predicted_image", s.output_qos_depth)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset, qos_profile=every_call)
        self.add_on_set_parameters_callback(self._refuse_parameter_changes)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self.imagine_node = Node(
            f"{self.get_name()}_imagine",
            namespace=self.get_namespace(),
            context=self.context,
            use_global_arguments=False,  # a global __node remap must not give it the node's name
            start_parameter_services=False,
        )
        imagine = self.resolve_service_name("~/imagine")
        self.imagine_node.create_service(Imagine, imagine, self._on_imagine, qos_profile=every_call)
        self.get_logger().info(
            f"ready: backend={info.backend} model_id={info.model_id} image_size={info.image_size} "
            f"modality={self.modality} horizon={s.horizon} min_history={s.min_history} "
            f"cache={self.session.history_cap} prediction_rate={s.prediction_rate} Hz "
            f"frame_period={self.session.frame_period_ns / 1e6:g} ms (0: every image)"
        )

    def _refuse_parameter_changes(self, parameters: list[Parameter]) -> SetParametersResult:
        """Read once at start, ``use_sim_time`` too (switched live, /diagnostics waits for /clock)."""
        names = [p.name for p in parameters]
        return SetParametersResult(successful=False, reason=f"{names} are read at start; restart to change")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _log(self, level: str, text: str, throttled: bool) -> None:
        """The session's log; rclpy throttles per call site, so one line per throttled level."""
        logger = self.get_logger()
        if not throttled:
            getattr(logger, level)(text)
        elif level == "error":
            logger.error(text, throttle_duration_sec=5.0)
        else:
            logger.warning(text, throttle_duration_sec=5.0)

    # --- callbacks: convert, validate, submit -------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        if self.joint_order is None:
            if not msg.name or len(msg.name) != len(msg.velocity) or len(set(msg.name)) != len(msg.name):
                problem = f"cannot learn the joint order from names {list(msg.name)} with {len(msg.velocity)}"
                self.session.reject("joint_names", f"{problem} velocities; set the joint_names parameter")
                return
            self.joint_order = tuple(msg.name)
            self.session.start_commands(command_width(self.modality, self.joint_order))
            self.get_logger().info(f"joint order learnt from the first JointState: {list(self.joint_order)}")
        try:
            command = joint_state_to_command(msg.name, msg.velocity, self.joint_order)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_to_ns(msg.header.stamp) or self._now_ns(), command)

    def _on_twist(self, msg: Twist | TwistStamped) -> None:
        stamped = isinstance(msg, TwistStamped)
        try:
            command = twist_to_command(msg.twist if stamped else msg)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command((stamped and stamp_to_ns(msg.header.stamp)) or self._now_ns(), command)

    def _on_plan(self, msg: JointTrajectory) -> None:
        try:
            offsets, commands = trajectory_to_plan(msg, self.modality, self.joint_order or ())
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_plan(stamp_to_ns(msg.header.stamp), offsets, commands)

    def _on_image(self, msg: Image) -> None:
        self.session.image_received()
        try:
            rgb = resize_to_model(image_message_to_rgb(msg), self.backend.info.image_size)
        except ImageFormatError as err:
            self.session.reject(image_reject_reason(msg), str(err))
            return
        self.session.submit(rgb, stamp_to_ns(msg.header.stamp), msg.header.frame_id)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            cleared = self.session.reset("service")
        except Exception as err:  # noqa: BLE001 - every call is answered
            response.success, response.message = False, f"{type(err).__name__}: {err}"
            self.session.reject("service_error", f"~/reset: {response.message}")
            return response
        response.success = True
        response.message = f"causal state cleared ({cleared} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    def _on_imagine(self, request: Imagine.Request, response: Imagine.Response) -> Imagine.Response:
        info = self.backend.info
        response.model_id = info.model_id
        try:
            joints, max_horizon = self.joint_order or (), self.settings.imagine_max_horizon
            actions = imagine_actions(request, info.modalities, joints, max_horizon)
            imagined = self.session.imagine(actions, request.modality, int(request.seed))
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
                self.session.reject(getattr(err, "reason", "service_error"), f"~/imagine: {response.error}")
            return response
        confidence = float(np.mean(CONFIDENCE_DECAY ** np.arange(1, horizon + 1)))
        response.confidence = [confidence] * batch
        response.success = True
        return response

    # --- output (called by the session's worker) --------------------------------------------------

    def _publish(self, prediction: Prediction) -> None:
        newest, frames, joints = prediction.newest, prediction.frames, self.joint_order or ()
        stamp, step, frame_id = newest.stamp_ns, newest.step_ns, newest.frame_id
        msg = PredictedFrames(
            context_stamps=[ns_to_stamp(ns) for ns in prediction.context_stamps],
            time_step=ns_to_duration(step),
            frames=[rgb_to_image(f, stamp + (i + 1) * step, frame_id) for i, f in enumerate(frames)],
            confidence=[float(CONFIDENCE_DECAY ** (i + 1)) for i in range(len(frames))],
            actions=commands_to_trajectory(prediction.actions, self.modality, joints, stamp, frame_id, step),
            modality=self.modality,
            command_policy=prediction.policy,
            rollout_id=prediction.rollout_id,
            state_reset=prediction.state_reset,
            model_id=self.backend.info.model_id,
        )
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp), frame_id
        self._frames_pub.publish(msg)
        self._image_pub.publish(msg.frames[self.settings.predicted_image_horizon - 1])

    # --- diagnostics -------------------------------------------------------------------------------

    def diagnostics(self) -> DiagnosticStatus:
        info, stats, warm = self.backend.info, self.session.stats(), self.settings.min_history
        values = {
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
        }
        if stats.history < warm:
            level, message = DiagnosticStatus.WARN, f"warming up ({stats.history}/{warm})"
        elif stats.rejected:
            level, message = DiagnosticStatus.WARN, f"predicting; {stats.rejected} messages rejected"
        else:
            level, message = DiagnosticStatus.OK, "predicting"
        return DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: world model",
            message=message,
            hardware_id=info.model_id,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()  # diagnostics are about now, not data
        array.status = [self.diagnostics()]
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        self.session.close()
        self.imagine_node.destroy_node()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Console script ``astra_world_model``: spin the node until shutdown; exit 2 if it cannot start."""
    default_discovery()
    return spin_node(sys.argv if argv is None else [sys.argv[0], *argv])


def spin_node(args: list[str], parameter_overrides: list | None = None) -> int:
    """Init rclpy with ``args`` (ROS arguments), run the node and its executors, shut down."""
    # The worker waits for the GIL after each backend call: at Python's default 5 ms switch interval
    # that added ~80 ms to the p50 latency and up to 2 s to the p99 (2 cores); 0.2 ms removes most.
    sys.setswitchinterval(0.0002)
    rclpy.init(args=args)
    try:
        try:
            node = WorldModelNode(parameter_overrides=parameter_overrides or [])
        except StartupError as err:
            print(f"[{NODE_NAME}] cannot start: {err}", file=sys.stderr, flush=True)
            return 2
        executor, imagine_executor = SingleThreadedExecutor(), SingleThreadedExecutor()
        executor.add_node(node)
        imagine_executor.add_node(node.imagine_node)
        threading.Thread(
            target=_spin, args=(imagine_executor, node), name=f"{NODE_NAME}_imagine", daemon=True
        ).start()
        try:
            _spin(executor, node)
        finally:
            imagine_executor.shutdown()
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


def _spin(executor: SingleThreadedExecutor, node: Node) -> None:
    """Spin until shutdown; an exception escaping a callback (e.g. rclpy's TimeSource on a /clock
    with negative seconds) is logged and spinning goes on: no message kills the node."""
    while rclpy.ok(context=executor.context):
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            return
        except Exception as err:  # noqa: BLE001
            message = f"callback failed: {type(err).__name__}: {err}"
            node.get_logger().error(message, throttle_duration_sec=5.0)


if __name__ == "__main__":
    sys.exit(main())
