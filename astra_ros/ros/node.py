"""``astra_world_model``: streams camera frames and commands into a world model and publishes its
predictions of the next frames.

Threads (two single-threaded executors, one worker):

- The node's executor runs the image and command callbacks, ``~/reset`` and the diagnostics timer.
  Callbacks only convert, validate and enqueue: image -> RGB at model size, paired with the
  command in force at its stamp (zero-order hold, ``pairing.CommandBuffer``), timeline checks (gap /
  backwards jump reset, out-of-order rejection), decimation to the model's frame period
  (``frame_period``: a 30 Hz camera feeds a 15 Hz model every second image, ``pairing.FrameGrid``),
  then appended to a bounded ingestion queue (oldest dropped and counted when the worker falls
  behind).
- The worker ingests EVERY queued frame, in order, so the causal history stays correct; then,
  if any of those frames was due for prediction (``prediction_rate`` in image time), it predicts
  once from the newest state (latest frame wins; the other due frames are counted as
  ``superseded``, as are those of frames dropped from the full queue, whose due prediction and
  reset pass to the next frame). Ingest and predict run under ``_backend_lock``; ``~/imagine``
  takes the same lock, so the live cache is never used concurrently, and ``predict`` leaves it
  unchanged.
- ``~/imagine`` is served by a small helper node (``<name>_imagine``, same namespace, no
  parameters) spun by its own executor thread, so a long imagination never holds up the
  subscriptions (``spin_node`` spins both; another executor must spin ``imagine_node`` too).
  rclpy's MultiThreadedExecutor, which did this with callback groups, kept its main thread at 13-14%
  of a core at 15 images/s (2% now) and raised the latency p50 from 107-130 to 148-176 ms on a
  2-core machine.

Data stamps are copied from the image (never ``now()``); the node clock (``use_sim_time``
honoured) is only used for latency, for unstamped Twist commands and for rates.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
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
from astra_ros.ros.pairing import (
    CommandBuffer,
    Frame,
    FrameGrid,
    LatencyStats,
    PeriodEstimator,
    RateMeter,
    Timeline,
    due_for_prediction,
    enqueue_dropping_oldest,
    hold_plan,
)
from astra_ros.ros.settings import COPY_LAST, Settings, SettingsError, declare_settings, resolve_model_path
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.srv import Imagine

NODE_NAME = "astra_world_model"
CONFIDENCE_DECAY = 0.9
"""confidence[h-1] = CONFIDENCE_DECAY ** h: a fixed prior that the future gets harder to predict.
No uncertainty is computed (the guided/unguided disagreement mentioned in the message is not
implemented); Imagine reports the mean over the horizon, the same for every candidate."""
DEFAULT_STEP_NS = 33_333_333  # model time step before two image periods were seen and with no frame_period
MAX_IMAGINE_HORIZON = 64


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, model file missing/corrupt/wrong kind)."""


def load_world_model(settings: Settings) -> WorldModelBackend:
    """The backend named by the settings; 'copy_last' needs no model file."""
    if settings.model_path == COPY_LAST:
        from astra_ros.runtime.copy_last import CopyLastBackend

        return CopyLastBackend(max_history=settings.max_history or 8)
    try:
        from astra_ros.runtime.loader import load_backend
    except ImportError as err:
        raise StartupError(
            f"model_path={settings.model_path!r}: backend loader unavailable ({err}); "
            f"use model_path:={COPY_LAST} for bring-up"
        ) from err
    options = dict(
        context_noise=settings.context_noise,
        guidance_scale=settings.guidance_scale,
        steps=settings.denoising_steps,
        precision=settings.precision,
    )
    if settings.engine_cache_dir:
        options["engine_cache_dir"] = settings.engine_cache_dir
    if settings.inference_threads:
        options["threads"] = settings.inference_threads
    if settings.max_history:
        options["max_history"] = settings.max_history
    path = resolve_model_path(settings.model_path)
    try:
        return load_backend(path, settings.backend, **options)
    except (ValueError, OSError) as err:  # ModelLoadError is a ValueError
        raise StartupError(f"model_path={path!r} backend={settings.backend!r}: {err}") from err


class WorldModelNode(Node):
    def __init__(self, backend: WorldModelBackend | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.settings = declare_settings(self)
        except SettingsError as err:
            raise StartupError(str(err)) from err
        s = self.settings
        self.backend = backend if backend is not None else load_world_model(s)
        info = self.backend.info
        self.modality = s.modality
        if self.modality not in info.modalities:
            raise StartupError(
                f"command_type={s.command_type!r} gives modality {self.modality!r}; the model "
                f"({info.model_id}) supports {list(info.modalities)}"
            )
        history_cap = min(s.max_history or info.max_history, info.max_history)
        if s.min_history > history_cap:
            raise StartupError(f"min_history={s.min_history}; expected at most the cache size {history_cap}")
        self.joint_order: tuple[str, ...] | None = None
        if self.modality == "joint_velocity":
            if s.joint_names and info.joint_names and set(s.joint_names) != set(info.joint_names):
                raise StartupError(
                    f"joint_names={list(s.joint_names)}; expected the model's joints {list(info.joint_names)}"
                )
            self.joint_order = tuple(info.joint_names or s.joint_names) or None
        else:
            self.joint_order = ()

        # callback-group-owned state (subscriptions and ~/reset)
        self._pairing_lock = threading.Lock()  # CommandBuffer: command group writes, image group reads
        self._commands: CommandBuffer | None = None
        if self.joint_order is not None:
            self._make_command_buffer()
        self._timeline = Timeline(int(s.max_image_gap * 1e9))
        frame_period = info.frame_period if s.frame_period < 0 else s.frame_period
        self._grid = FrameGrid(int(frame_period * 1e9))
        self._image_periods = PeriodEstimator()
        self._frame_periods = PeriodEstimator()  # of the frames the model takes: its time step
        self._last_due_ns: int | None = None
        self._carry_reset: str | None = None  # a reset not yet attached to an enqueued frame
        self._plan: tuple[int, list[int], np.ndarray] | None = None  # (stamp, offsets, commands)

        # worker hand-off
        self._queue: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._backend_lock = threading.Lock()
        # under _backend_lock
        self._context_stamps: deque[int] = deque(maxlen=history_cap)
        self._newest: Frame | None = None
        self._reset_pending = True  # the first message says the state started fresh
        self._rollout_id = 0

        # statistics (under _stats_lock)
        self._stats_lock = threading.Lock()
        self._rejected: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._fallbacks: Counter[str] = Counter()
        self._resets: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._latency_ms = LatencyStats()
        self._ingest_ms = LatencyStats()  # backend calls of the worker, by kind
        self._predict_ms = LatencyStats()
        self._outside_ms = LatencyStats()  # per prediction: latency minus its ingest + predict calls
        self._input_rate = RateMeter()
        self._prediction_rate = RateMeter()
        self._logged_reasons: set[str] = set()

        image_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=s.image_qos_depth,
            reliability=ReliabilityPolicy.BEST_EFFORT
            if s.image_qos_reliability == "best_effort"
            else ReliabilityPolicy.RELIABLE,
            durability=qos_profile_sensor_data.durability,
        )
        command_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=s.command_qos_depth, reliability=ReliabilityPolicy.RELIABLE
        )
        if s.command_type == "joint_state":
            self.create_subscription(
                JointState,
                "joint_commands",
                self._on_joint_state,
                command_qos,
            )
        elif s.command_type == "twist":
            self.create_subscription(Twist, "cmd_vel", self._on_twist, command_qos)
        else:
            self.create_subscription(
                TwistStamped,
                "cmd_vel",
                self._on_twist_stamped,
                command_qos,
            )
        self.create_subscription(Image, "image", self._on_image, image_qos)
        if s.future_command_policy == "planned":
            self.create_subscription(
                JointTrajectory,
                "planned_commands",
                self._on_plan,
                command_qos,
            )
        self._frames_pub = self.create_publisher(PredictedFrames, "predicted_frames", s.output_qos_depth)
        self._image_pub = self.create_publisher(Image, "predicted_image", s.output_qos_depth)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self.imagine_node = Node(
            f"{self.get_name()}_imagine",
            namespace=self.get_namespace(),
            context=self.context,
            use_global_arguments=False,  # a global __node remap must not give it the node's name
            start_parameter_services=False,
        )
        self.imagine_node.create_service(Imagine, self.resolve_service_name("~/imagine"), self._on_imagine)

        self._worker = threading.Thread(target=self._work, name="astra_world_model_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: backend={info.backend} model_id={info.model_id} image_size={info.image_size} "
            f"modality={self.modality} horizon={s.horizon} min_history={s.min_history} "
            f"cache={history_cap} prediction_rate={s.prediction_rate} Hz "
            f"frame_period={self._grid.period_ns / 1e6:g} ms (0: every image)"
        )

    # --- helpers -----------------------------------------------------------------------------

    def _restart_timing(self) -> None:
        """Forget the image timing of the stream before a reset (the camera rate is kept)."""
        self._image_periods.reset()
        self._frame_periods.reset()
        self._grid.reset()
        self._last_due_ns = None

    def _make_command_buffer(self) -> None:
        s = self.settings
        width = command_width(self.modality, self.joint_order or ())
        self._commands = CommandBuffer(  # one reference assignment: safe to read from the image group
            width, int(s.command_staleness * 1e9), s.stale_command_policy, int(s.max_image_gap * 1e9)
        )

    def _count(self, table: Counter[str], key: str) -> None:
        with self._stats_lock:
            table[key] += 1

    def _reject(self, reason: str, message: str) -> None:
        """Count a rejected message; log the first of each reason at WARN, later ones throttled."""
        with self._stats_lock:
            self._rejected[reason] += 1
            first = reason not in self._logged_reasons
            self._logged_reasons.add(reason)
        text = f"rejected ({reason}): {message}"
        if first:
            self.get_logger().warning(text)
        else:
            self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- callbacks (convert, validate, enqueue) -------------------------------------------------

    def _on_joint_state(self, msg: JointState) -> None:
        if self.joint_order is None:
            if not msg.name or len(msg.name) != len(msg.velocity) or len(set(msg.name)) != len(msg.name):
                self._reject(
                    "joint_names",
                    f"cannot learn the joint order from names {list(msg.name)} "
                    f"with {len(msg.velocity)} velocities; set the joint_names parameter",
                )
                return
            self.joint_order = tuple(msg.name)
            self._make_command_buffer()
            self.get_logger().info(f"joint order learnt from the first JointState: {list(self.joint_order)}")
        try:
            command = joint_state_to_command(msg.name, msg.velocity, self.joint_order)
        except InputError as err:
            self._reject(err.reason, str(err))
            return
        self._push_command(stamp_to_ns(msg.header.stamp) or self._now_ns(), command)

    def _on_twist(self, msg: Twist) -> None:
        try:
            command = twist_to_command(msg)
        except InputError as err:
            self._reject(err.reason, str(err))
            return
        self._push_command(self._now_ns(), command)

    def _on_twist_stamped(self, msg: TwistStamped) -> None:
        try:
            command = twist_to_command(msg.twist)
        except InputError as err:
            self._reject(err.reason, str(err))
            return
        self._push_command(stamp_to_ns(msg.header.stamp) or self._now_ns(), command)

    def _push_command(self, stamp_ns: int, command: np.ndarray) -> None:
        assert self._commands is not None
        with self._pairing_lock:
            accepted = self._commands.push(stamp_ns, command)
        if not accepted:
            self._reject(
                "command_out_of_order", f"command stamp {stamp_ns} ns is older than the previous one"
            )
            return
        self._count(self._counts, "commands")

    def _on_plan(self, msg: JointTrajectory) -> None:
        try:
            offsets, commands = trajectory_to_plan(msg, self.modality, self.joint_order or ())
        except InputError as err:
            self._reject(err.reason, str(err))
            return
        self._plan = (
            stamp_to_ns(msg.header.stamp),
            offsets,
            commands,
        )  # one reference: atomic for the worker

    def _on_image(self, msg: Image) -> None:
        self._count(self._counts, "images")
        with self._stats_lock:
            self._input_rate.tick(time.monotonic())
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            rgb = resize_to_model(image_message_to_rgb(msg), self.backend.info.image_size)
        except ImageFormatError as err:
            self._reject(image_reject_reason(msg), str(err))
            return
        verdict = self._timeline.check(stamp_ns)
        if verdict in ("duplicate", "out_of_order"):
            self._reject(
                f"image_{verdict}",
                f"image stamp {stamp_ns} ns is not after the previous image "
                f"{self._timeline.last_ns} ns (within max_image_gap)",
            )
            return
        if verdict in ("gap", "jump_back"):
            self._carry_reset = verdict
            self._restart_timing()
            self.get_logger().warning(
                f"image timeline {verdict} at stamp {stamp_ns} ns: resetting the causal state"
            )
        self._image_periods.add(stamp_ns)
        if not self._grid.take(stamp_ns, self._image_periods.median_ns()):
            self._count(self._counts, "decimated")
            return
        self._frame_periods.add(stamp_ns)
        if self._commands is None:
            self._count(self._dropped, "missing_command")
            return
        with self._pairing_lock:
            paired = self._commands.at(stamp_ns)
        if paired.fallback:
            self._count(self._fallbacks, f"{paired.fallback}_{self.settings.stale_command_policy}")
        if paired.command is None:
            self._count(self._dropped, paired.fallback or "missing_command")
            return
        due = due_for_prediction(stamp_ns, self._last_due_ns, self.settings.prediction_rate)
        if due:
            self._last_due_ns = stamp_ns
        default_step = int(self.backend.info.frame_period * 1e9) or DEFAULT_STEP_NS
        frame = Frame(
            stamp_ns,
            msg.header.frame_id,
            rgb,
            paired.command,
            self._frame_periods.median_ns(default_step),
            int(due),
            self._carry_reset,
        )
        self._carry_reset = None
        with self._cond:
            if enqueue_dropping_oldest(self._queue, frame, self.settings.ingest_queue_size):
                self._count(self._dropped, "ingest_queue_full")
            self._cond.notify()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._cond:
            cleared = len(self._queue)
            self._queue.clear()
        with self._backend_lock:
            self._reset_state("service")
        self._timeline.reset()
        self._restart_timing()
        response.success = True
        response.message = f"causal state cleared ({cleared} queued frames discarded)"
        self.get_logger().info(response.message)
        return response

    def _on_imagine(self, request: Imagine.Request, response: Imagine.Response) -> Imagine.Response:
        info = self.backend.info
        response.model_id = info.model_id
        try:
            actions = imagine_actions(request, info.modalities, self.joint_order or (), MAX_IMAGINE_HORIZON)
        except InputError as err:
            self._reject(err.reason, str(err))
            response.success, response.error = False, str(err)
            return response
        seed = int(request.seed) or self.settings.seed + self._rollout_id
        with self._backend_lock:
            newest = self._newest
            history = self.backend.history_length
            if newest is None or history < self.settings.min_history:
                response.success = False
                response.error = (
                    f"not warm: {history} frames in the cache; expected at least min_history="
                    f"{self.settings.min_history}"
                )
                return response
            try:
                frames = self.backend.predict(
                    actions, request.modality, steps=self.settings.denoising_steps, seed=seed
                )
            except ValueError as err:
                self._reject("imagine_backend", str(err))
                response.success, response.error = False, f"backend refused the request: {err}"
                return response
        batch, horizon = actions.shape[:2]
        response.frames = [
            rgb_to_image(frames[b, h], newest.stamp_ns + (h + 1) * newest.step_ns, newest.frame_id)
            for b in range(batch)
            for h in range(horizon)
        ]
        confidence = float(np.mean(CONFIDENCE_DECAY ** np.arange(1, horizon + 1)))
        response.confidence = [confidence] * batch
        response.success = True
        self._count(self._counts, "imagine")
        return response

    # --- worker ----------------------------------------------------------------------------------

    def _reset_state(self, reason: str) -> None:
        """Clear the causal state; caller holds _backend_lock."""
        self.backend.reset()
        self._context_stamps.clear()
        self._newest = None
        self._reset_pending = True
        with self._stats_lock:
            self._resets[reason] += 1

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                batch = list(self._queue)
                self._queue.clear()
            try:
                self._step(batch)
            except Exception as err:  # noqa: BLE001 - the worker must survive a backend failure
                self._count(self._dropped, "backend_error")
                self.get_logger().error(
                    f"worker step failed: {type(err).__name__}: {err}", throttle_duration_sec=5.0
                )

    def _step(self, batch: list[Frame]) -> None:
        s = self.settings
        due = 0
        result = None
        with self._backend_lock:
            for frame in batch:
                if frame.reset:
                    self._reset_state(frame.reset)
                started = time.perf_counter()
                # the command over the interval that ended at this frame: the previous frame's
                previous = frame.command if self._newest is None else self._newest.command
                self.backend.ingest(frame.rgb, previous, self.modality)
                ingest_ms = (time.perf_counter() - started) * 1e3
                with self._stats_lock:
                    self._ingest_ms.add(ingest_ms)
                self._context_stamps.append(frame.stamp_ns)
                self._newest = frame
                due += frame.due
            newest = batch[-1]
            if due and self.backend.history_length >= s.min_history:
                if due > 1:
                    with self._stats_lock:
                        self._dropped["superseded"] += due - 1
                actions, policy = self._future_commands(newest)
                started = time.perf_counter()
                frames = self.backend.predict(
                    actions[None], self.modality, steps=s.denoising_steps, seed=s.seed + self._rollout_id
                )
                predict_ms = (time.perf_counter() - started) * 1e3
                with self._stats_lock:
                    self._predict_ms.add(predict_ms)
                result = (
                    ingest_ms + predict_ms,
                    frames[0],
                    actions,
                    policy,
                    self._rollout_id,
                    self._reset_pending,
                    list(self._context_stamps),
                )
                self._rollout_id += 1
                self._reset_pending = False
            elif due:
                self._count(self._dropped, "not_warm")
        if result is not None:
            self._publish(newest, *result)

    def _future_commands(self, newest: Frame) -> tuple[np.ndarray, str]:
        horizon = self.settings.horizon
        plan = self._plan
        if self.settings.future_command_policy == "planned" and plan is not None:
            plan_stamp, offsets, commands = plan
            start = plan_stamp or newest.stamp_ns
            # actions[i] drives predicted frame i: the command in force from newest + i steps
            steps = [newest.stamp_ns + i * newest.step_ns - start for i in range(horizon)]
            held = hold_plan(offsets, commands, steps)
            if held is not None and held.shape[1] == newest.command.shape[0]:
                return held, "planned"
            self._count(self._fallbacks, "plan_not_covering")
        return np.repeat(newest.command[None], horizon, axis=0), "hold_last"

    def _publish(
        self,
        newest: Frame,
        backend_ms: float,
        frames: np.ndarray,
        actions: np.ndarray,
        policy: str,
        rollout_id: int,
        state_reset: bool,
        context: list[int],
    ) -> None:
        info = self.backend.info
        msg = PredictedFrames()
        msg.header.stamp = ns_to_stamp(newest.stamp_ns)
        msg.header.frame_id = newest.frame_id
        msg.context_stamps = [ns_to_stamp(ns) for ns in context[-self.backend.history_length :]]
        msg.time_step = ns_to_duration(newest.step_ns)
        msg.frames = [
            rgb_to_image(frame, newest.stamp_ns + (i + 1) * newest.step_ns, newest.frame_id)
            for i, frame in enumerate(frames)
        ]
        msg.confidence = [float(CONFIDENCE_DECAY ** (i + 1)) for i in range(len(frames))]
        msg.actions = commands_to_trajectory(
            actions, self.modality, self.joint_order or (), newest.stamp_ns, newest.frame_id, newest.step_ns
        )
        msg.modality = self.modality
        msg.command_policy = policy
        msg.rollout_id = rollout_id
        msg.state_reset = state_reset
        msg.model_id = info.model_id
        self._frames_pub.publish(msg)
        self._image_pub.publish(msg.frames[self.settings.predicted_image_horizon - 1])
        latency_ms = (self._now_ns() - newest.stamp_ns) / 1e6
        with self._stats_lock:
            self._latency_ms.add(latency_ms)
            self._outside_ms.add(latency_ms - backend_ms)
            self._prediction_rate.tick(time.monotonic())
            self._counts["predictions"] += 1

    # --- diagnostics -------------------------------------------------------------------------------

    def diagnostics(self) -> DiagnosticStatus:
        info = self.backend.info
        now = time.monotonic()
        history = self.backend.history_length
        with self._stats_lock:
            values = {
                "backend": info.backend,
                "model_id": info.model_id,
                "modality": self.modality,
                "input_rate_hz": f"{self._input_rate.rate(now):.2f}",
                "prediction_rate_hz": f"{self._prediction_rate.rate(now):.2f}",
                "latency_p50_ms": f"{self._latency_ms.percentile(50):.2f}",
                "latency_p99_ms": f"{self._latency_ms.percentile(99):.2f}",
                "ingest_p50_ms": f"{self._ingest_ms.percentile(50):.2f}",
                "predict_p50_ms": f"{self._predict_ms.percentile(50):.2f}",
                "outside_backend_p50_ms": f"{self._outside_ms.percentile(50):.2f}",
                "cache_fill": f"{history}/{self._context_stamps.maxlen}",
                "queue_length": str(len(self._queue)),
            }
            for prefix, table in (
                ("count", self._counts),
                ("dropped", self._dropped),
                ("rejected", self._rejected),
                ("command_fallback", self._fallbacks),
                ("reset", self._resets),
            ):
                for key, count in sorted(table.items()):
                    values[f"{prefix}.{key}"] = str(count)
            rejected = sum(self._rejected.values())
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: world model"
        status.hardware_id = info.model_id
        if history < self.settings.min_history:
            status.level, status.message = (
                DiagnosticStatus.WARN,
                f"warming up ({history}/{self.settings.min_history})",
            )
        elif rejected:
            status.level, status.message = DiagnosticStatus.WARN, f"predicting; {rejected} messages rejected"
        else:
            status.level, status.message = DiagnosticStatus.OK, "predicting"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()  # diagnostics are about now, not data
        array.status = [self.diagnostics()]
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            worker.join(timeout=5.0)
        imagine_node = getattr(self, "imagine_node", None)
        if imagine_node is not None:
            imagine_node.destroy_node()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Console script ``astra_world_model``: spin the node until shutdown; exit 2 if it cannot start."""
    default_discovery()
    return spin_node(sys.argv if argv is None else [sys.argv[0], *argv])


def spin_node(args: list[str], parameter_overrides: list | None = None) -> int:
    """Init rclpy with ``args`` (ROS arguments), run the node and its executors, shut down."""
    # The worker runs 15 backend calls per 8-frame prediction; after each it needs the GIL back from
    # the executor threads. At Python's default 5 ms switch interval that wait added ~80 ms to the
    # p50 latency and up to 2 s to the p99 (node diagnostics, 2-core CPU, measured with the earlier
    # multi-threaded executor); 0.2 ms removes most of it.
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
            target=_spin, args=(imagine_executor,), name=f"{NODE_NAME}_imagine", daemon=True
        ).start()
        try:
            _spin(executor)
        finally:
            imagine_executor.shutdown()
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    sys.exit(main())
