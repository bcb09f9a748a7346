"""``astra_world_model``: streams camera frames and commands into a world model and publishes its
predictions of the next frames.

A managed (lifecycle) node: ``configure`` loads the model and starts a ``StreamSession``
(``runtime/session.py``: queue, worker, decimation, accounting, statistics); ``activate`` creates the
subscriptions and enables the publishers; ``deactivate`` removes the subscriptions and clears the
causal state; ``cleanup`` releases the model (``autostart``, the default, does the first two at start).
The lifecycle services keep every call, like the node's own (``ros/lifecycle.py``).
Callbacks only convert, validate and hand over; each ``Prediction`` goes out as ``PredictedFrames``
(``ros/messages.py``); threads: docs/node.md. Data stamps are copied from the image, never ``now()``.
"""

from __future__ import annotations

import gc
import sys

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from astra_ros.msg import PredictedFrames
from astra_ros.ros import commands
from astra_ros.ros.conversions import (
    InputError,
    command_stamp_to_ns,
    command_width,
    image_to_model,
    imagine_actions,
    learn_joint_order,
    stamp_to_ns,
    trajectory_to_plan,
    twist_to_command,
)
from astra_ros.ros.diagnostics import diagnostic_array, idle_status, session_statuses
from astra_ros.ros.health import HealthConfig, NodeHealth
from astra_ros.ros.input_limits import ThrottledLog, stamp_reserve_ns, truncate_for_log
from astra_ros.ros.isolation import default_discovery
from astra_ros.ros.lifecycle import serve_lifecycle
from astra_ros.ros.messages import imagine_confidence, imagined_images, predicted_frames, predicted_image
from astra_ros.ros.process import StartupError, helper_node, spin_managed
from astra_ros.ros.settings import SettingsError, declare_settings, joint_order, load_world_model, qos
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.kv_pool import return_free_heap
from astra_ros.runtime.session import ImagineRefused, Prediction, SessionConfig, StreamSession
from astra_ros.srv import Imagine

NODE_NAME = "astra_world_model"


class WorldModelNode(LifecycleNode):
    def __init__(self, **node_kwargs):
        self.backend: WorldModelBackend | None = None
        self.session: StreamSession | None = None
        self.imagine_node: Node | None = None
        super().__init__(NODE_NAME, enable_communication_interface=False, **node_kwargs)
        try:
            self.settings = declare_settings(self)
        except SettingsError as err:
            raise StartupError(str(err)) from err
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.startup_error = ""
        self._log = ThrottledLog(self.get_logger(), lambda: self.settings.log_throttle_period)
        self._subscriptions_active: list = []
        self._health: NodeHealth | None = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
        serve_lifecycle(self, every_call, self._log)
        self.create_service(Trigger, "~/reset", self._on_reset, qos_profile=every_call)
        self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        self.imagine_node = helper_node(self, "imagine")
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
        self.joint_order = joint_order(s, info.joint_names)  # None: learnt from the first JointState
        width = None if self.joint_order is None else command_width(self.modality, self.joint_order)
        reserve = stamp_reserve_ns(s.imagine_max_horizon, s.max_image_gap, s.frame_period, info.frame_period)
        self._stamp_reserve_ns = reserve
        self._future_tolerance_ns = int(s.future_stamp_tolerance * 1e9)
        self._max_ahead_ns = int(s.max_image_gap * 1e9)  # a JointTrajectory point takes effect within it
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
        if kind := commands.JOINT_COMMAND_TYPES.get(s.command_type):
            subs.append(subscribe(kind, "joint_commands", self._on_joint_command, command_qos))
        elif s.command_type == "twist":
            subs.append(subscribe(Twist, "cmd_vel", self._on_twist, command_qos))
        else:
            subs.append(subscribe(TwistStamped, "cmd_vel", self._on_twist, command_qos))
        if s.image_transport == "compressed":  # image_transport's name: <base topic>/compressed
            topic = self.resolve_topic_name("image") + "/compressed"
            images = subscribe(CompressedImage, topic, self._on_image, image_qos)
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
        """Stop the worker and any Imagine in flight, drop the publishers and the model; its memory
        is returned to the system (``return_free_heap``)."""
        if self.session is not None:
            self.session.close()
        for name in ("_frames_pub", "_image_pub"):
            publisher = self.__dict__.pop(name, None)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self.session = self.backend = None
        gc.collect()
        return_free_heap()

    @property
    def active(self) -> bool:
        return bool(self._subscriptions_active)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- live parameters -------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """Validate a change of the live parameters and apply it; the others (``use_sim_time`` too:
        switched live, /diagnostics would wait for a /clock) are read at start."""
        changes = {p.name: p.value for p in parameters}
        try:
            self.settings = self.settings.updated(changes)
        except SettingsError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if self.session is not None:
            self.session.update(SessionConfig.from_settings(self.settings))
        self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    # --- callbacks: convert, validate, submit -------------------------------------------------

    def _on_joint_command(self, msg: commands.JointCommand) -> None:
        s, now = self.settings, self._now_ns()
        self._health.command(commands.header_stamp_ns(msg) or now)
        try:
            if self.joint_order is None:  # joint_state: learnt from the first message
                self.joint_order = learn_joint_order(msg.name, commands.joint_state_field(msg, self.modality))
                self.session.start_commands(command_width(self.modality, self.joint_order))
                learnt = f"joint order learnt from the first JointState: {list(self.joint_order)}"
                self.get_logger().info(truncate_for_log(learnt))
            args = (s.joint_names, self.joint_order, now, self._future_tolerance_ns, s.max_command_magnitude)
            stamp_ns, command = commands.joint_command(msg, self.modality, *args, self._max_ahead_ns)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_ns, command)

    def _on_state(self, msg: JointState) -> None:
        order, now = self.backend.info.joint_names or self.joint_order, self._now_ns()
        limits = (self._future_tolerance_ns, self.settings.max_command_magnitude)
        try:
            stamp_ns, positions = commands.joint_state_to_state(msg, order, now, *limits)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_state(stamp_ns, positions)

    def _on_twist(self, msg: Twist | TwistStamped) -> None:
        """A TwistStamped, or a Twist: stamped with the node clock."""
        stamped, stamp_ns = isinstance(msg, TwistStamped), self._now_ns()
        self._health.command(stamp_to_ns(msg.header.stamp) if stamped else stamp_ns)
        try:
            if stamped:
                stamp_ns = command_stamp_to_ns(msg.header.stamp, stamp_ns, self._future_tolerance_ns)
            command = twist_to_command(msg.twist if stamped else msg, self.settings.max_command_magnitude)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_command(stamp_ns, command)

    def _on_plan(self, msg: JointTrajectory) -> None:
        joints, limit = self.joint_order or (), self.settings.max_command_magnitude
        try:
            offsets, planned = trajectory_to_plan(msg, self.modality, joints, limit)
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        self.session.submit_plan(stamp_to_ns(msg.header.stamp), offsets, planned)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.session.image_received()
        self._health.image(stamp_to_ns(msg.header.stamp))
        s, size, now_ns = self.settings, self.backend.info.image_size, self._now_ns()
        try:
            stamp_ns, rgb = image_to_model(
                msg, size, s.max_image_pixels, now_ns, self._future_tolerance_ns, self._stamp_reserve_ns
            )
        except InputError as err:
            self.session.reject(err.reason, str(err))
            return
        if self.session.submit(rgb, stamp_ns, msg.header.frame_id) != "rejected":  # on the timeline
            if loss := self._health.frame(stamp_ns):
                self._log("warning", loss, True, "frame_loss")

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
        response.success, response.message = True, f"causal state cleared ({cleared} queued frames discarded)"
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
            response.frames = imagined_images(imagined)
        except Exception as err:  # noqa: BLE001 - every call is answered
            known = isinstance(err, (InputError, ImagineRefused))
            response.frames, response.success = [], False
            response.error = str(err) if known else f"{type(err).__name__}: {err}"
            if not isinstance(err, ImagineRefused):  # the session counts its own refusals
                session.reject(getattr(err, "reason", "service_error"), f"~/imagine: {response.error}")
            return response
        response.confidence = imagine_confidence(s.confidence_decay, *actions.shape[:2])
        response.success = True
        return response

    # --- output: predictions (called by the session's worker), diagnostics ------------------------

    def _publish(self, prediction: Prediction) -> None:
        s, joints, model_id = self.settings, self.joint_order or (), self.backend.info.model_id
        msg = predicted_frames(prediction, self.modality, joints, model_id, s.confidence_decay)
        self._frames_pub.publish(msg)
        self._image_pub.publish(predicted_image(msg, s.predicted_image_horizon))

    def _publish_diagnostics(self) -> None:
        """The node's status (level from recent problems and warm-up), then one per input."""
        prefix, session, s = self.get_fully_qualified_name(), self.session, self.settings
        if session is None or not self.active:
            statuses = [idle_status(f"{prefix}: world model", NODE_NAME, session is not None)]
        else:
            statuses = session_statuses(prefix, session, self._health, self.modality, s.min_history)
        self._diag_pub.publish(diagnostic_array(statuses, self.get_clock().now().to_msg()))

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
    """Run the node with ``args`` (ROS arguments) until SIGINT / SIGTERM (``process.spin_managed``)."""
    return spin_managed(NODE_NAME, args, lambda: start_node(parameter_overrides or []))


def start_node(parameter_overrides: list) -> tuple[WorldModelNode, list[Node]]:
    """The node (configured and activated with ``autostart``) and its ``~/imagine`` helper node."""
    node = WorldModelNode(parameter_overrides=parameter_overrides)
    if node.settings.autostart:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.destroy_node()
            raise StartupError(node.startup_error)
        node.trigger_activate()
    return node, [node.imagine_node]


if __name__ == "__main__":
    sys.exit(main())
