"""``StreamSession``: the ROS-free streaming engine between a camera/command stream and a backend.

One session owns one backend. ``submit`` (any thread, typically the node's image callback) checks
the frame's timeline (gap / backwards jump reset, out-of-order and duplicate rejection), decimates to
the model's frame period (a 30 Hz camera feeds a 15 Hz model every second image), pairs the frame
with the command in force at its stamp (``CommandBuffer``, zero-order hold), marks it due for a
prediction under ``prediction_rate`` (image time) and appends it to a bounded ingestion queue (the
oldest is dropped and counted when the worker falls behind; its due prediction and reset pass to the
next frame).

One worker thread ingests EVERY queued frame, in order, so the causal history stays correct; then,
if any of those frames was due, it predicts once from the newest state (latest frame wins; the
other due frames are counted as ``superseded``) and hands a ``Prediction`` to the callback. Ingest,
predict and ``imagine`` run under one backend lock, so the live cache is never used concurrently;
``predict`` leaves it unchanged. ``imagine`` takes the lock per chunk of its rollout (the
backend's ``start_rollout``, which keeps its own copy of the cache) and lets the worker's waiting
frames go first between chunks, so live predictions go on during a long Imagine.

Modality ``joint_position``: commands (and plans, and Imagine candidates) are absolute joint position
targets; the backend gets them relative to the robot state (``model.actions.relative_targets``): a
frame's command is the mean target over its interval minus the state at the interval's start, a
future step's the target minus the one before (the first: minus the newest frame's state). A frame
without both states is dropped (``dropped.missing_state``), and one before the first target
(``dropped.missing_command``: no target is not a zero target). ``Prediction.actions`` stay absolute.

Commands and states keep one timeline rule (``CommandBuffer``, ``_push_sample``): a late sample is
inserted at its stamp, a jump back beyond ``max_image_gap`` is rejected until confirmed. A frame
dropped for a missing input is logged with the reason (throttled, also in ``stats().drop_reasons``)
and still ends its interval, so the next frame is paired from it and the stream recovers with the
next valid inputs; when frames were dropped for longer than ``max_image_gap`` (beyond one model frame
period) the next one resets the causal state (``reset.input_gap``), as an image gap would.

Counters (``stats().counts``) are keyed ``count.*``, ``dropped.*``, ``rejected.*``,
``command_fallback.*`` and ``reset.*``; every submitted frame ends in exactly one of them or in a
prediction. All stamps are integers of nanoseconds in the caller's clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np

from astra_ros.data.pairing import CommandBuffer, Paired, plan_means
from astra_ros.model.actions import relative_targets
from astra_ros.ros.input_limits import JUMP_CONFIRM_FRAMES, JumpConfirmation, truncate_for_log
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.timing import (
    FrameGrid,
    LatencyStats,
    PeriodEstimator,
    RateMeter,
    Timeline,
    due_for_prediction,
)

DEFAULT_STEP_NS = 33_333_333  # model time step before two frames were seen, when the model records none

Log = Callable[[str, str, bool, str], None]  # level, text, throttled, throttle key
"""``log(level, text, throttled)``: level is ``info``, ``warning`` or ``error``."""


def _python_log(level: str, text: str, throttled: bool, key: str) -> None:  # noqa: ARG001 - no throttling here
    getattr(logging.getLogger("astra_ros.session"), level)(text)


STATE_BUFFER = 256  # robot states kept for pairing (about 2.5 s of a 100 Hz /joint_states)


@dataclass(frozen=True)
class SessionConfig:
    """The streaming part of the node's parameters: same names and meaning as in
    ``astra_ros.ros.settings.PARAMETERS`` (the defaults live there)."""

    modality: str
    horizon: int
    min_history: int
    max_history: int  # 0: the model's own limit
    prediction_rate: float
    frame_period: float  # -1: the model's own, 0: every image
    max_image_gap: float
    ingest_queue_size: int
    command_staleness: float
    stale_command_policy: str
    future_command_policy: str
    denoising_steps: int
    seed: int
    imagine_max_candidates: int
    imagine_max_horizon: int
    imagine_memory_mb: float

    @classmethod
    def from_settings(cls, settings: object) -> SessionConfig:
        """The fields of any object with these attributes (the node's ``Settings``)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass
class Frame:
    """One camera frame paired with its command, waiting in the ingestion queue."""

    stamp_ns: int
    frame_id: str
    rgb: np.ndarray  # (S, S, 3) uint8
    command: np.ndarray  # (D,) float32
    step_ns: int  # model time step (median period of the frames taken) when it arrived
    due: int  # predictions due under prediction_rate: 1 or 0, plus those of frames dropped before it
    reset: str | None  # reset the state before ingesting it: "gap", "jump_back"
    interval_ns: int = 0  # length of the interval ``command`` is the mean over (ending at stamp_ns)
    current: np.ndarray | None = None  # the command in force at stamp_ns (held over the future)
    state: np.ndarray | None = None  # joint positions at stamp_ns (newest state at or before it)
    relative_to: np.ndarray | None = None  # joint_position: the state at the interval's start

    def model_command(self) -> np.ndarray:
        """``command`` as the backend takes it (joint_position: relative to ``relative_to``)."""
        if self.relative_to is None:
            return self.command
        return relative_targets(self.command[None, None], self.relative_to)[0, 0]


@dataclass(frozen=True)
class Prediction:
    """One live prediction, handed to the session's callback."""

    newest: Frame  # the newest ingested frame: stamps, frame_id and time step of the output
    frames: np.ndarray  # (H, S, S, 3) uint8
    actions: np.ndarray  # (H, D) commands the prediction was conditioned on (joint_position: absolute)
    policy: str  # "hold_last" or "planned"
    rollout_id: int
    state_reset: bool  # first prediction after a reset
    context_stamps: list[int]  # stamps of the frames in the cache, oldest first


@dataclass(frozen=True)
class Imagined:
    frames: np.ndarray  # (B, H, S, S, 3) uint8
    newest: Frame  # the frame the candidates continue from


@dataclass(frozen=True)
class SessionStats:
    input_rate_hz: float
    prediction_rate_hz: float
    latency_p50_ms: float  # image stamp -> callback returned (published), in the session clock
    latency_p99_ms: float
    ingest_p50_ms: float  # backend calls of the worker
    predict_p50_ms: float
    outside_backend_p50_ms: float  # per prediction: latency minus its ingest + predict calls
    history: int
    cache_size: int
    queue_length: int
    counts: dict[str, int]
    drop_reasons: dict[str, str]  # dropped.<reason> -> why the newest frame of that reason was dropped

    @property
    def rejected(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("rejected."))


class ImagineRefused(RuntimeError):
    """``imagine`` cannot run (too large, cache not warm, backend refused); the message says why."""


class StreamSession:
    def __init__(
        self,
        backend: WorldModelBackend,
        config: SessionConfig,
        on_prediction: Callable[[Prediction], None],
        command_width: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        log: Log = _python_log,
        imagine_chunk: int = 1,
    ):
        """``imagine_chunk``: Imagine frames (of every candidate) rolled out per hold of the backend."""
        info = backend.info
        if config.modality not in info.modalities:
            raise ValueError(
                f"modality {config.modality!r} (from command_type, command_modality); the model "
                f"({info.model_id}) supports {list(info.modalities)}"
            )
        self.history_cap = min(config.max_history or info.max_history, info.max_history)
        if config.min_history > self.history_cap:
            raise ValueError(
                f"min_history={config.min_history}; expected at most the cache size {self.history_cap}"
            )
        self.backend = backend
        self.config = config
        self.imagine_chunk = imagine_chunk
        self._on_prediction = on_prediction
        self._clock = clock
        self._log = log
        self._default_step_ns = int(info.frame_period * 1e9) or DEFAULT_STEP_NS

        # input side (under _input_lock)
        self._input_lock = threading.Lock()
        self._commands: CommandBuffer | None = None
        if command_width is not None:
            self.start_commands(command_width)
        self._timeline = Timeline(int(config.max_image_gap * 1e9))
        self._jumps = JumpConfirmation()
        frame_period = info.frame_period if config.frame_period < 0 else config.frame_period
        self._grid = FrameGrid(int(frame_period * 1e9))
        self._image_periods = PeriodEstimator()
        self._frame_periods = PeriodEstimator()  # of the frames the model takes: its time step
        self._last_due_ns: int | None = None
        self._last_frame_ns: int | None = None  # previous frame (taken or dropped): the interval starts there
        self._carry_reset: str | None = None  # a reset not yet attached to an enqueued frame
        self._plan: tuple[int, list[int], np.ndarray] | None = None  # (stamp, offsets, commands)
        self._states: CommandBuffer | None = None  # joint positions, from the first state on
        self._command_jumps = JumpConfirmation(backward_only=True)
        self._state_jumps = JumpConfirmation(backward_only=True)
        self._last_taken_ns: int | None = None  # the newest frame in the queue or the history

        # worker hand-off
        self._queue: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._worker_rounds = 0  # worker loop passes (a step or an idle wait each)
        self._imagines = 0  # Imagine calls in flight
        self._stop = False
        self._reset_requested = False  # a reset() waiting for the backend (applied before its next use)
        self._backend_lock = threading.Lock()
        # under _backend_lock
        self._context_stamps: deque[int] = deque(maxlen=self.history_cap)
        self._newest: Frame | None = None
        self._reset_pending = True  # the first prediction says the state started fresh
        self._rollout_id = 0

        # statistics (under _stats_lock)
        self._stats_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._logged_reasons: set[str] = set()
        self._drop_reasons: dict[str, str] = {}  # dropped.<reason> -> why, the newest
        self._latency_ms = LatencyStats()
        self._ingest_ms = LatencyStats()
        self._predict_ms = LatencyStats()
        self._outside_ms = LatencyStats()
        self._input_rate = RateMeter()
        self._prediction_rate = RateMeter()

        self._worker = threading.Thread(target=self._work, name="astra_stream_worker", daemon=True)
        self._worker.start()

    @property
    def frame_period_ns(self) -> int:
        """Model frame period the stream is decimated to (0: every image)."""
        return self._grid.period_ns

    # --- input ------------------------------------------------------------------------------

    def start_commands(self, width: int) -> None:
        """Start pairing commands of ``width`` values (once the command layout is known)."""
        c = self.config
        self._commands = CommandBuffer(
            width, int(c.command_staleness * 1e9), c.stale_command_policy, int(c.max_image_gap * 1e9)
        )

    def update(self, config: SessionConfig) -> None:
        """Apply changed live parameters (prediction rate, horizon, command staleness and policy);
        the others must equal the running config."""
        with self._input_lock:
            self.config = config  # one reference: the worker reads it per step
            for buffer in (self._commands, self._states):
                if buffer is not None:
                    buffer.staleness_ns = int(config.command_staleness * 1e9)
            if self._commands is not None:
                self._commands.policy = config.stale_command_policy

    def count(self, key: str) -> None:
        with self._stats_lock:
            self._counts[key] += 1

    def reject(self, reason: str, message: str) -> None:
        """Count a rejected input; log the first of each reason, later ones throttled."""
        with self._stats_lock:
            self._counts[f"rejected.{reason}"] += 1
            first = reason not in self._logged_reasons
            self._logged_reasons.add(reason)
        text = f"rejected ({reason}): {truncate_for_log(message)}"
        self._log("warning", text, not first, f"rejected.{reason}")

    def image_received(self) -> None:
        """Count an incoming image (before conversion) for ``count.images`` and the input rate."""
        with self._stats_lock:
            self._counts["count.images"] += 1
            self._input_rate.tick(time.monotonic())

    def submit_command(self, stamp_ns: int, command: np.ndarray) -> bool:
        """Add a command at its stamp; False (counted, logged) for an unconfirmed jump back."""
        if self._commands is None:
            raise RuntimeError("submit_command() before start_commands()")
        return self._push_sample("command", self._commands, self._command_jumps, stamp_ns, command)

    def submit_state(self, stamp_ns: int, positions: np.ndarray) -> bool:
        """Add a measured robot state (joint positions in the model's joint order) at its stamp; each
        frame gets the newest one at or before its stamp, within ``command_staleness``. False
        (counted, logged) for an unconfirmed jump back."""
        if self._states is None:
            limit_ns, gap_ns = int(self.config.command_staleness * 1e9), int(self.config.max_image_gap * 1e9)
            self._states = CommandBuffer(len(positions), limit_ns, "skip", gap_ns, STATE_BUFFER)
        return self._push_sample("state", self._states, self._state_jumps, stamp_ns, positions)

    def _push_sample(
        self, what: str, buffer: CommandBuffer, jumps: JumpConfirmation, stamp_ns: int, values: np.ndarray
    ) -> bool:
        """The timeline rule of commands and states: a sample older than the newest by at most
        ``max_image_gap`` is inserted at its place, one older still is a jump back (a bag loop) that
        is taken only once ``JUMP_CONFIRM_FRAMES`` samples in a row confirm it, so one stale message
        can never clear the samples the next frames are paired with."""
        with self._input_lock:
            newest = buffer.newest_stamp
            accepted = jumps.accept(stamp_ns, newest, buffer.jump_ns)
            if accepted:
                buffer.push(stamp_ns, values)
        if not accepted:
            self.reject(
                f"{what}_unconfirmed_jump",
                f"{what} stamp {stamp_ns} ns is {(newest - stamp_ns) / 1e9:.3f} s before the newest {what}; "
                f"expected at most max_image_gap={buffer.jump_ns / 1e9:g} s (a jump back is taken after "
                f"{JUMP_CONFIRM_FRAMES} {what}s in a row on the new timeline)",
            )
            return False
        self.count(f"count.{what}s")
        return True

    def _state_at(self, stamp_ns: int) -> np.ndarray | None:
        """The newest state at or before ``stamp_ns`` within the staleness limit; caller holds _input_lock."""
        return None if self._states is None else self._states.at(stamp_ns).command

    def submit_plan(self, stamp_ns: int, offsets_ns: list[int], commands: np.ndarray) -> None:
        """Planned future commands (``future_command_policy: planned``); stamp 0 = from each frame."""
        self._plan = (stamp_ns, offsets_ns, commands)  # one reference: atomic for the worker

    def submit(self, rgb: np.ndarray, stamp_ns: int, frame_id: str = "") -> str:
        """Hand over one model-size RGB frame; returns ``queued``, ``decimated``, ``rejected`` or
        ``dropped`` (counted under the reason)."""
        with self._input_lock:
            if not self._jumps.accept(stamp_ns, self._timeline.last_ns, self._timeline.max_gap_ns):
                self.reject(
                    "image_unconfirmed_jump",
                    f"image stamp {stamp_ns} ns is {(stamp_ns - (self._timeline.last_ns or 0)) / 1e9:+.3f} s "
                    f"from the previous image; a jump beyond max_image_gap is taken after "
                    f"{JUMP_CONFIRM_FRAMES} frames in a row on the new timeline",
                )
                return "rejected"
            verdict = self._timeline.check(stamp_ns)
            if verdict in ("duplicate", "out_of_order"):
                self.reject(
                    f"image_{verdict}",
                    f"image stamp {stamp_ns} ns is not after the previous image "
                    f"{self._timeline.last_ns} ns (within max_image_gap)",
                )
                return "rejected"
            if verdict in ("gap", "jump_back"):
                self._carry_reset = verdict
                self._restart_timing()
                message = f"image timeline {verdict} at stamp {stamp_ns} ns: resetting the causal state"
                self._log("warning", message, True, "timeline")
            self._image_periods.add(stamp_ns)
            if not self._grid.take(stamp_ns, self._image_periods.median_ns()):
                self.count("count.decimated")
                return "decimated"
            self._frame_periods.add(stamp_ns)
            gap_ns, last_taken = self._timeline.max_gap_ns, self._last_taken_ns
            if last_taken is not None and gap_ns and stamp_ns - last_taken > gap_ns + self._grid.period_ns:
                self._carry_reset = self._carry_reset or "input_gap"  # frames dropped over max_image_gap
                last_taken = None
            # a fresh history starts with this frame; else its interval starts at the previous frame,
            # taken or dropped (a dropped one never holds up the next)
            fresh = last_taken is None or self._last_frame_ns is None
            start_ns = stamp_ns if fresh else min(self._last_frame_ns, stamp_ns)
            self._last_frame_ns = stamp_ns
            paired, current, state, relative_to = None, None, self._state_at(stamp_ns), None
            if self._commands is not None:
                paired = self._commands.over(start_ns, stamp_ns)
                current = self._commands.at(stamp_ns).command
                if paired.fallback:
                    self.count(f"command_fallback.{paired.fallback}_{self.config.stale_command_policy}")
            if self.config.modality == "joint_position":
                relative_to = self._state_at(start_ns)
            if missing := self._missing_input(start_ns, stamp_ns, paired, state, relative_to):
                return self._drop(*missing)
            due = due_for_prediction(stamp_ns, self._last_due_ns, self.config.prediction_rate)
            if due:
                self._last_due_ns = stamp_ns
            frame = Frame(
                stamp_ns,
                frame_id,
                rgb,
                paired.command,
                self._frame_periods.median_ns(self._default_step_ns),
                int(due),
                self._carry_reset,
                stamp_ns - start_ns,
                current,
                state,
                relative_to,
            )
            self._carry_reset = None
            self._last_taken_ns = stamp_ns
        with self._cond:
            if enqueue_dropping_oldest(self._queue, frame, self.config.ingest_queue_size):
                self.count("dropped.ingest_queue_full")
            self._cond.notify_all()
        return "queued"

    def _missing_input(
        self,
        start_ns: int,
        stamp_ns: int,
        paired: Paired | None,
        state: np.ndarray | None,
        relative_to: np.ndarray | None,
    ) -> tuple[str, str] | None:
        """(reason, why) when the frame over ``[start_ns, stamp_ns]`` lacks an input, else None."""
        c = self.config
        if paired is None:
            return "missing_command", "no command yet (the joint order comes from the first JointState)"
        newest_command = _newest(self._commands, stamp_ns)
        if paired.command is None:
            return paired.fallback or "missing_command", (
                f"no command in force over the frame interval [{start_ns}, {stamp_ns}] ns within "
                f"command_staleness={c.command_staleness:g} s (stale_command_policy=skip); newest command "
                f"{newest_command}"
            )
        if c.modality != "joint_position":
            return None
        if paired.fallback == "missing_command":  # absolute targets: none is not zero
            return "missing_command", (
                f"no joint_position target in force at the frame interval start {start_ns} ns (a missing "
                f"target is not a zero target); newest target {newest_command}"
            )
        if state is None or relative_to is None:
            at, which = (stamp_ns, "stamp") if state is None else (start_ns, "interval start")
            return "missing_state", (
                f"no robot state from state_topic within command_staleness={c.command_staleness:g} s "
                f"before the frame {which} {at} ns; newest state {_newest(self._states, stamp_ns)}"
            )
        return None

    def _drop(self, reason: str, why: str) -> str:
        """Drop a frame for a missing input: counted (``dropped.<reason>``), logged (throttled) and
        kept for /diagnostics (``stats().drop_reasons``), so a lasting cause is named, not only counted."""
        with self._stats_lock:
            self._counts[f"dropped.{reason}"] += 1
            self._drop_reasons[f"dropped.{reason}"] = why
        self._log("warning", f"frame dropped ({reason}): {truncate_for_log(why)}", True, f"dropped.{reason}")
        return "dropped"

    def reset(self, reason: str) -> int:
        """Clear the causal state, the queue and the timeline; returns the queued frames discarded.

        Never waits for the backend: while the worker or ``imagine`` holds it, the state is cleared
        before its next use (``stats().history`` and ``imagine`` see the reset at once).
        """
        self.count(f"reset.{reason}")
        with self._cond:
            cleared = len(self._queue)
            self._queue.clear()
            self._reset_requested = True
            self._cond.notify_all()
        with self._input_lock:
            self._timeline.reset()
            self._jumps.reset()
            self._restart_timing()
        if self._backend_lock.acquire(blocking=False):
            try:
                self._apply_requested_reset()
            finally:
                self._backend_lock.release()
        return cleared

    def _restart_timing(self) -> None:
        """Forget the image timing of the stream before a reset (the camera rate is kept)."""
        self._image_periods.reset()
        self._frame_periods.reset()
        self._grid.reset()
        self._last_due_ns = None
        self._last_frame_ns = None
        self._last_taken_ns = None

    # --- imagine ----------------------------------------------------------------------------

    def imagine(
        self, actions: np.ndarray, modality: str, seed: int = 0, share_noise: bool = False
    ) -> Imagined:
        """Roll out ``(B, H, D)`` candidate commands from the live state (left unchanged);
        ``seed`` 0 = the session's seed + rollout id; ``share_noise``: one noise for every candidate.
        The rollout runs ``imagine_chunk`` frames at a time under the backend lock; live frames
        waiting in between go first; ``close()`` stops it between chunks. Raises ImagineRefused."""
        self._check_imagine_size(actions)
        seed = int(seed) or self.config.seed + self._rollout_id
        with self._cond:
            self._imagines += 1
        try:
            return self._imagine(actions, modality, seed, share_noise)
        finally:
            with self._cond:
                self._imagines -= 1
                self._cond.notify_all()

    def _imagine(self, actions: np.ndarray, modality: str, seed: int, share_noise: bool) -> Imagined:
        with self._backend_lock:
            self._apply_requested_reset()
            newest = self._newest
            history = self.backend.history_length
            if newest is None or history < self.config.min_history:
                raise ImagineRefused(
                    f"not warm: {history} frames in the cache; expected at least min_history="
                    f"{self.config.min_history}"
                )
            actions = self._model_actions(actions, modality, newest)
            with self._refused_by_backend():
                steps = self.config.denoising_steps
                rollout = self.backend.start_rollout(actions, modality, steps, seed, share_noise)
        try:
            while not rollout.done:
                self._let_live_frames_pass()
                if self._stop:  # the node is cleaned up or shut down: its model goes with this rollout
                    raise ImagineRefused("cancelled: the node was cleaned up or shut down during the Imagine")
                with self._backend_lock, self._refused_by_backend():
                    rollout.advance(self.imagine_chunk)
        finally:
            with self._backend_lock:
                rollout.close()
        self.count("count.imagine")
        return Imagined(rollout.result(), newest)

    @contextmanager
    def _refused_by_backend(self) -> Iterator[None]:
        """Turn the backend's refusal of an Imagine (bad shape, out of memory) into ImagineRefused."""
        try:
            yield
        except (ValueError, MemoryError) as err:
            self.reject("imagine_backend", f"{type(err).__name__}: {err}")
            raise ImagineRefused(f"backend refused the request: {type(err).__name__}: {err}") from err

    def _let_live_frames_pass(self) -> None:
        """Between Imagine chunks: while live frames are queued or being ingested, wait for the worker
        to finish its step (the live stream goes first; the Imagine still advances a chunk per step)."""
        with self._cond:
            if self._queue or self._busy:
                seen = self._worker_rounds
                self._cond.wait_for(lambda: self._worker_rounds != seen or self._stop)

    def imagine_bytes(self, batch: int, horizon: int) -> int:
        """Memory an Imagine of ``batch`` x ``horizon`` needs, estimated: the frames three times (the
        backend's output, the messages, their serialization) and the candidates' key/value caches
        (backends that report ``kv_bytes(batch, horizon)``)."""
        size = self.backend.info.image_size
        kv_bytes = getattr(self.backend, "kv_bytes", None)
        return 3 * batch * horizon * size * size * 3 + (kv_bytes(batch, horizon) if kv_bytes else 0)

    def _check_imagine_size(self, actions: np.ndarray) -> None:
        """Refuse (counted, before any allocation) an Imagine over the limits or the memory budget."""
        c = self.config
        if actions.ndim != 3:
            return  # the backend names the shape problem
        batch, horizon = actions.shape[:2]
        problem = None
        if batch > c.imagine_max_candidates:
            problem = "imagine_limits", f"num_candidates={batch}; expected at most {c.imagine_max_candidates}"
        elif horizon > c.imagine_max_horizon:
            problem = "imagine_limits", f"horizon={horizon}; expected at most {c.imagine_max_horizon}"
        elif (need := self.imagine_bytes(batch, horizon)) > c.imagine_memory_mb * 2**20:
            problem = (
                "imagine_memory",
                (
                    f"num_candidates={batch} x horizon={horizon} needs about {need / 2**20:.0f} MB; "
                    f"expected at most imagine_memory_mb={c.imagine_memory_mb:g}"
                ),
            )
        if problem is not None:
            self.reject(*problem)
            raise ImagineRefused(problem[1])

    # --- worker -----------------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued frame is ingested (and its prediction handed over)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._busy and not self._reset_requested, timeout
            )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker and every Imagine in flight (within one chunk), so that nothing holds the
        backend or the candidates' caches once this returns (within ``timeout`` s each)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._imagines, timeout)
        self._worker.join(timeout)

    def _reset_state(self) -> None:
        """Clear the causal state; caller holds _backend_lock."""
        self.backend.reset()
        self._context_stamps.clear()
        self._newest = None
        self._reset_pending = True

    def _apply_requested_reset(self) -> None:
        """Carry out a ``reset()`` that found the backend busy; caller holds _backend_lock."""
        with self._cond:
            requested, self._reset_requested = self._reset_requested, False
        if requested:
            self._reset_state()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._worker_rounds += 1
                self._cond.notify_all()
                while not self._queue and not self._stop and not self._reset_requested:
                    self._cond.wait()
                if self._stop:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                if batch:
                    self._step(batch)
                else:
                    with self._backend_lock:
                        self._apply_requested_reset()
            except Exception as err:  # noqa: BLE001 - the worker must survive a backend failure
                self.count("dropped.backend_error")
                self._log("error", f"worker step failed: {type(err).__name__}: {err}", True, "worker")

    def _step(self, batch: list[Frame]) -> None:
        c = self.config
        due = 0
        result = None
        with self._backend_lock:
            self._apply_requested_reset()
            for frame in batch:
                if frame.reset:
                    self._reset_state()
                    self.count(f"reset.{frame.reset}")
                started = time.perf_counter()
                self.backend.ingest(frame.rgb, frame.model_command(), c.modality, frame.state)
                ingest_ms = (time.perf_counter() - started) * 1e3
                with self._stats_lock:
                    self._ingest_ms.add(ingest_ms)
                self._context_stamps.append(frame.stamp_ns)
                self._newest = frame
                due += frame.due
            newest = batch[-1]
            if due and self.backend.history_length >= c.min_history:
                if due > 1:
                    with self._stats_lock:
                        self._counts["dropped.superseded"] += due - 1
                actions, policy = self._future_commands(newest)
                started = time.perf_counter()
                frames = self.backend.predict(
                    self._model_actions(actions[None], c.modality, newest),
                    c.modality,
                    steps=c.denoising_steps,
                    seed=c.seed + self._rollout_id,
                )
                predict_ms = (time.perf_counter() - started) * 1e3
                with self._stats_lock:
                    self._predict_ms.add(predict_ms)
                context = list(self._context_stamps)[-self.backend.history_length :]
                result = Prediction(
                    newest, frames[0], actions, policy, self._rollout_id, self._reset_pending, context
                )
                backend_ms = ingest_ms + predict_ms
                self._rollout_id += 1
                self._reset_pending = False
            elif due:
                self.count("dropped.not_warm")
        if result is not None:
            self._on_prediction(result)
            latency_ms = (self._clock() - newest.stamp_ns) / 1e6
            with self._stats_lock:
                self._latency_ms.add(latency_ms)
                self._outside_ms.add(latency_ms - backend_ms)
                self._prediction_rate.tick(time.monotonic())
                self._counts["count.predictions"] += 1

    def _model_actions(self, actions: np.ndarray, modality: str, newest: Frame) -> np.ndarray:
        """``(B, H, D)`` commands as the backend takes them: joint_position targets relative to the
        newest frame's state (refused and counted without one), the others unchanged."""
        if modality != "joint_position" or actions.ndim != 3:
            return actions
        if newest.state is None or newest.state.shape[0] != actions.shape[2]:
            have = "no robot state" if newest.state is None else f"{newest.state.shape[0]} joint positions"
            problem = (
                f"joint_position targets need the robot state at the newest frame; it has {have} "
                f"(expected {actions.shape[2]}, from state_topic)"
            )
            self.reject("imagine_missing_state", problem)
            raise ImagineRefused(problem)
        return relative_targets(actions, newest.state)

    def _future_commands(self, newest: Frame) -> tuple[np.ndarray, str]:
        horizon = self.config.horizon
        plan = self._plan
        if self.config.future_command_policy == "planned" and plan is not None:
            plan_stamp, offsets, commands = plan
            start = plan_stamp or newest.stamp_ns
            edges = [newest.stamp_ns + i * newest.step_ns - start for i in range(horizon + 1)]
            held = plan_means(offsets, commands, edges)
            if held is not None and held.shape[1] == newest.command.shape[0]:
                return held, "planned"
            self.count("command_fallback.plan_not_covering")
        held = newest.command if newest.current is None else newest.current
        return np.repeat(held[None], horizon, axis=0), "hold_last"

    # --- statistics -------------------------------------------------------------------------

    def stats(self) -> SessionStats:
        now = time.monotonic()
        with self._stats_lock:
            return SessionStats(
                input_rate_hz=self._input_rate.rate(now),
                prediction_rate_hz=self._prediction_rate.rate(now),
                latency_p50_ms=self._latency_ms.percentile(50),
                latency_p99_ms=self._latency_ms.percentile(99),
                ingest_p50_ms=self._ingest_ms.percentile(50),
                predict_p50_ms=self._predict_ms.percentile(50),
                outside_backend_p50_ms=self._outside_ms.percentile(50),
                history=0 if self._reset_requested else self.backend.history_length,
                cache_size=self.history_cap,
                queue_length=len(self._queue),
                counts=dict(self._counts),
                drop_reasons=dict(self._drop_reasons),
            )


def _newest(buffer: CommandBuffer | None, stamp_ns: int) -> str:
    """The newest sample of ``buffer`` relative to a frame stamp, for a log line."""
    newest = None if buffer is None else buffer.newest_stamp
    if newest is None:
        return "none received"
    return f"stamped {newest} ns ({(newest - stamp_ns) / 1e9:+.3f} s from the frame)"


def enqueue_dropping_oldest(queue: deque[Frame], frame: Frame, size: int) -> bool:
    """Append ``frame``; when ``queue`` holds ``size`` frames, drop the oldest first and return True.

    The next frame inherits the dropped one's reset, due predictions and command interval (its
    command becomes the time-weighted mean over both intervals), so none of them is lost.
    """
    dropped = len(queue) >= size
    if dropped:
        oldest = queue.popleft()
        heir = queue[0] if queue else frame
        heir.reset = heir.reset or oldest.reset
        heir.due += oldest.due
        span = oldest.interval_ns + heir.interval_ns
        if span > 0 and heir.reset is None:
            heir.command = (
                (oldest.command * oldest.interval_ns + heir.command * heir.interval_ns) / span
            ).astype(np.float32)
            heir.interval_ns = span
            heir.relative_to = oldest.relative_to
    queue.append(frame)
    return dropped
