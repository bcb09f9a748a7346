"""Diagnostics with meaning, ROS-free: the node's ``/diagnostics`` are built from these.

- ``FrequencyStatus`` and ``TimeStampStatus`` follow diagnostic_updater's tasks of the same names
  (diagnostic_updater has no wheel for the PyPI ROS 2 used here): a message rate over the last
  ``window`` diagnostics updates against a min/max expected rate with a tolerance, and the age of
  message stamps (receive time minus stamp) against a min/max acceptable age.
- ``RecentProblems``: the node's level from the RECENT share of rejected or lost messages per input
  (a sliding window), not from cumulative counts, so the node returns to OK once problems stop.
- ``FrameLossDetector``: frames lost from a stream without sequence numbers (a best-effort image
  stream), judged by the stamp gaps of the frames that arrived on the node's timeline, with a
  throttled message for the log.

Levels are the ``diagnostic_msgs/DiagnosticStatus`` bytes; every class takes its clock (a callable
returning seconds), so tests drive them with a fake one.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any

import numpy as np

Clock = Callable[[], float]

LOSS_MESSAGE = (
    "best-effort stream losing frames: {missing} of the last {expected} expected frames missing; "
    "consider image_qos_reliability=reliable"
)
MAX_RUN = 10
"""A gap of more periods than this is a pause or a change of rate of the stream, not loss."""


class Level(IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass
class Status:
    level: Level
    message: str
    values: dict[str, str] = field(default_factory=dict)


def merge(statuses: Iterable[Status]) -> Status:
    """One status from several, as diagnostic_updater's ``mergeSummary``: the highest level; the
    messages of all non-OK parts (or of all parts when every one is OK) joined by '; '."""
    statuses = list(statuses)
    level = max((s.level for s in statuses), default=Level.OK)
    parts = [s for s in statuses if (s.level > Level.OK) == (level > Level.OK)]
    values: dict[str, str] = {}
    for status in statuses:
        values.update(status.values)
    return Status(level, "; ".join(s.message for s in parts if s.message), values)


class FrequencyStatus:
    """Rate of ``tick()`` events over the last ``window`` calls of ``status()``.

    ERROR when no event was recorded in the window (unless ``min_hz`` is 0), WARN below
    ``min_hz * (1 - tolerance)`` or above ``max_hz * (1 + tolerance)``, else OK.
    """

    def __init__(
        self,
        name: str,
        min_hz: float,
        max_hz: float = math.inf,
        tolerance: float = 0.1,
        window: int = 5,
        clock: Clock = time.monotonic,
    ):
        if not 0.0 <= min_hz <= max_hz:
            raise ValueError(f"{name}: min_hz={min_hz}, max_hz={max_hz}; expected 0 <= min_hz <= max_hz")
        if window < 1:
            raise ValueError(f"{name}: window={window}; expected at least 1 update")
        self.name, self.min_hz, self.max_hz, self.tolerance = name, min_hz, max_hz, tolerance
        self._clock = clock
        self._count = 0
        now = clock()
        self._history: deque[tuple[int, float]] = deque([(0, now)] * window, maxlen=window)

    def tick(self) -> None:
        self._count += 1

    def rate(self) -> float:
        """Events per second over the window, without advancing it."""
        old_count, old_time = self._history[0]
        return (self._count - old_count) / max(self._clock() - old_time, 1e-9)

    def status(self) -> Status:
        """The status now; advances the window by one update."""
        now = self._clock()
        old_count, old_time = self._history[0]
        events, span = self._count - old_count, max(now - old_time, 1e-9)
        self._history.append((self._count, now))
        hz = events / span
        key = f"{self.name}.rate"
        values = {f"{key}_hz": f"{hz:.2f}", f"{key}_window_s": f"{span:.2f}", f"{key}_events": str(events)}
        values[f"{key}_min_hz"] = f"{self.min_hz:g}"
        if math.isfinite(self.max_hz):
            values[f"{key}_max_hz"] = f"{self.max_hz:g}"
        if events == 0 and self.min_hz > 0:
            return Status(Level.ERROR, f"{self.name}: no messages in the last {span:.1f} s", values)
        if hz < self.min_hz * (1 - self.tolerance):
            return Status(
                Level.WARN, f"{self.name}: rate {hz:.2f} Hz too low (expected >= {self.min_hz:g} Hz)", values
            )
        if hz > self.max_hz * (1 + self.tolerance):
            return Status(
                Level.WARN, f"{self.name}: rate {hz:.2f} Hz too high (expected <= {self.max_hz:g} Hz)", values
            )
        return Status(Level.OK, f"{self.name}: rate {hz:.2f} Hz", values)


class TimeStampStatus:
    """Age of message stamps (``clock() - stamp`` at ``tick``) since the previous ``status()``.

    ERROR when a stamp was older than ``max_age_s``, further in the future than ``-min_age_s``,
    or zero; WARN when no message came since the previous update; else OK.
    """

    def __init__(self, name: str, min_age_s: float = -1.0, max_age_s: float = 5.0, clock: Clock = time.time):
        if min_age_s > max_age_s:
            raise ValueError(f"{name}: min_age_s={min_age_s} > max_age_s={max_age_s}; expected min <= max")
        self.name, self.min_age_s, self.max_age_s = name, min_age_s, max_age_s
        self._clock = clock
        self._updates: Counter[str] = Counter()  # updates that saw late / early / zero stamps
        self._clear()

    def _clear(self) -> None:
        self._count = 0
        self._ages: list[float] = []
        self._zero = False

    def tick(self, stamp_s: float) -> None:
        self._count += 1
        if stamp_s == 0:
            self._zero = True
        else:
            self._ages.append(self._clock() - stamp_s)

    def status(self) -> Status:
        """The status since the previous call; starts a new interval."""
        key = f"{self.name}.stamp_age"
        values = {
            f"{key}_min_acceptable_s": f"{self.min_age_s:g}",
            f"{key}_max_acceptable_s": f"{self.max_age_s:g}",
        }
        if self._count == 0:
            values.update({f"{key}_{k}_updates": str(self._updates[k]) for k in ("late", "early", "zero")})
            return Status(Level.WARN, f"{self.name}: no messages since the last update", values)
        problems = []
        if self._ages:
            youngest, oldest = min(self._ages), max(self._ages)
            values[f"{key}_min_s"], values[f"{key}_max_s"] = f"{youngest:.3f}", f"{oldest:.3f}"
            if oldest > self.max_age_s:
                self._updates["late"] += 1
                problems.append(f"stamps too old ({oldest:.3f} s; expected <= {self.max_age_s:g} s)")
            if youngest < self.min_age_s:
                self._updates["early"] += 1
                problems.append(
                    f"stamps in the future ({-youngest:.3f} s ahead; expected <= {-self.min_age_s:g} s)"
                )
        if self._zero:
            self._updates["zero"] += 1
            problems.append("zero stamp seen")
        values.update({f"{key}_{k}_updates": str(self._updates[k]) for k in ("late", "early", "zero")})
        self._clear()
        if problems:
            return Status(Level.ERROR, f"{self.name}: " + ", ".join(problems), values)
        return Status(Level.OK, f"{self.name}: stamp age {oldest:.3f} s", values)


class InputHealth:
    """Rate and stamp age of one input, merged: diagnostic_updater's ``TopicDiagnostic``."""

    def __init__(self, frequency: FrequencyStatus, stamps: TimeStampStatus):
        self.frequency, self.stamps = frequency, stamps

    def tick(self, stamp_s: float) -> None:
        self.frequency.tick()
        self.stamps.tick(stamp_s)

    def status(self) -> Status:
        return merge([self.frequency.status(), self.stamps.status()])


class RecentEvents:
    """Counts of events by key in the last ``window_s`` seconds, in ``buckets`` time buckets
    (memory bounded by buckets x keys, whatever the event rate)."""

    def __init__(self, window_s: float, clock: Clock = time.monotonic, buckets: int = 10):
        if window_s <= 0:
            raise ValueError(f"window_s={window_s}; expected a positive number of seconds")
        self.window_s = window_s
        self._width = window_s / buckets
        self._clock = clock
        self._buckets: deque[tuple[int, Counter[str]]] = deque()

    def add(self, key: str, n: int = 1) -> None:
        index = math.floor(self._clock() / self._width)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append((index, Counter()))
        self._buckets[-1][1][key] += n

    def counts(self) -> Counter[str]:
        oldest = math.floor((self._clock() - self.window_s) / self._width)
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()
        total: Counter[str] = Counter()
        for _, bucket in self._buckets:
            total.update(bucket)
        return total


MESSAGE_COUNTS = {"count.images": "image", "count.commands": "commands", "count.imagine": "imagine"}
NOT_PROBLEMS = ("dropped.superseded", "dropped.not_warm")  # by design: latest frame wins; warm-up


def problem_stream(key: str) -> str | None:
    """The input a counter's problems belong to: ``image`` (its rejections and every lost frame),
    ``imagine``, ``commands`` (other rejections); None for counters that are no problem."""
    if key.startswith("rejected."):
        reason = key.removeprefix("rejected.")
        return (
            "image"
            if reason.startswith("image_")
            else "imagine"
            if reason.startswith("imagine")
            else "commands"
        )
    if key.startswith("dropped.") and key not in NOT_PROBLEMS:
        return "image"
    return None


class RecentProblems:
    """The node's level from the recent share of problem messages per input stream.

    ``message(stream)`` counts every message received; ``problem(stream, reason)`` one that was
    rejected or lost (``reason`` like ``rejected.image_encoding``). WARN while any problem happened
    in the last ``window_s`` seconds, ERROR while at least ``error_fraction`` of a stream's recent
    messages were problems, OK once a window passes without any.
    """

    def __init__(self, window_s: float = 10.0, error_fraction: float = 0.5, clock: Clock = time.monotonic):
        if not 0.0 < error_fraction <= 1.0:
            raise ValueError(f"error_fraction={error_fraction}; expected a fraction in (0, 1]")
        self.window_s, self.error_fraction = window_s, error_fraction
        self._messages = RecentEvents(window_s, clock)
        self._problems = RecentEvents(window_s, clock)

        self._last_counts: dict[str, int] = {}

    def message(self, stream: str, n: int = 1) -> None:
        self._messages.add(stream, n)

    def problem(self, stream: str, reason: str, n: int = 1) -> None:
        self._problems.add(f"{stream}/{reason}", n)

    def observe(self, counts: dict[str, int]) -> None:
        """Feed the increase of cumulative counters since the previous call (``StreamSession``
        keys: ``count.images`` received, ``count.commands`` / ``count.imagine`` accepted,
        ``rejected.*``, ``dropped.*``; see ``problem_stream``)."""
        for key, total in counts.items():
            delta = total - self._last_counts.get(key, 0)
            if delta <= 0:
                continue
            if key in MESSAGE_COUNTS:
                self.message(MESSAGE_COUNTS[key], delta)
            elif (stream := problem_stream(key)) is not None:
                self.problem(stream, key, delta)
                if stream != "image":  # their message counters count accepted messages only
                    self.message(stream, delta)
        self._last_counts = dict(counts)

    def status(self) -> Status:
        messages, problems = self._messages.counts(), self._problems.counts()
        window = f"{self.window_s:g} s"
        values = {"recent.window_s": f"{self.window_s:g}"}
        values.update({f"recent.{key}": str(n) for key, n in sorted(problems.items())})
        if not problems:
            return Status(Level.OK, f"no problems in the last {window}", values)
        per_stream: Counter[str] = Counter()
        for key, n in problems.items():
            per_stream[key.split("/", 1)[0]] += n
        level, parts = Level.WARN, []
        for stream, n in sorted(per_stream.items()):
            seen = max(messages[stream], n)  # at least the problems, whichever counter came first
            if n >= self.error_fraction * seen:
                level = Level.ERROR
            reasons = ", ".join(
                f"{key.split('/', 1)[1]} {count}"
                for key, count in sorted(problems.items())
                if key.startswith(f"{stream}/")
            )
            parts.append(f"{stream}: {n} of {seen} in the last {window} ({reasons})")
        return Status(level, "; ".join(parts), values)


class FrameLossDetector:
    """Frames missing from a stream without sequence numbers, judged by the gaps between stamps.

    The nominal period starts as the median of the recent gaps; while at least a tenth of the gaps
    are shorter than 0.6 of it, it is the median of those instead (once more than half of the
    frames are lost, the plain median spans lost frames). A gap of n periods (rounded) holds n - 1
    missing frames. Regular loss (every second frame) looks like a slower camera and is not seen.
    Gaps longer than ``max_gap_s`` or than ``MAX_RUN`` periods are pauses (or a burst that changed
    the rate), not loss, and are left out of the figures, so the expected frames never exceed the
    judged gaps' arrivals plus what those gaps can hold; a stamp that does not increase starts the
    judgement afresh. ``add`` returns the log message (``LOSS_MESSAGE``) when at least
    ``min_missing_fraction`` of the frames expected over the judged gaps among the last ``window``
    (at least ``min_gaps``) are missing, at most once per ``throttle_s`` seconds of ``clock``.
    """

    def __init__(
        self,
        window: int = 64,
        min_missing_fraction: float = 0.1,
        throttle_s: float = 10.0,
        max_gap_s: float = 1.0,
        min_gaps: int = 16,
        clock: Clock = time.monotonic,
    ):
        self.min_missing_fraction, self.throttle_s, self.min_gaps = min_missing_fraction, throttle_s, min_gaps
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._clock = clock
        self._gaps: deque[int] = deque(maxlen=window)
        self._last: int | None = None
        self._logged_at: float | None = None

    def reset(self) -> None:
        self._gaps.clear()
        self._last = None

    def missing(self) -> tuple[int, int]:
        """(missing, expected) frames over the judged recent gaps (``expected - missing`` of them
        arrived); (0, 0) before ``min_gaps`` judged gaps."""
        if len(self._gaps) < self.min_gaps:
            return 0, 0
        gaps = np.asarray(self._gaps, np.float64)
        period = float(np.median(gaps))
        while (shorter := gaps[gaps < 0.6 * period]).size >= max(3, gaps.size // 10):
            period = float(np.median(shorter))
        runs = np.maximum(1, np.rint(gaps / period))
        runs = runs[runs <= MAX_RUN]
        if runs.size < self.min_gaps:
            return 0, 0
        expected = int(runs.sum())
        return expected - runs.size, expected

    def add(self, stamp_ns: int) -> str | None:
        last, self._last = self._last, stamp_ns
        if last is None:
            return None
        if stamp_ns <= last:
            self._gaps.clear()
            return None
        if stamp_ns - last > self.max_gap_ns:
            return None
        self._gaps.append(stamp_ns - last)
        missing, expected = self.missing()
        if not expected or missing < self.min_missing_fraction * expected:
            return None
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self.throttle_s:
            return None
        self._logged_at = now
        return LOSS_MESSAGE.format(missing=missing, expected=expected)


@dataclass(frozen=True)
class HealthConfig:
    """The node's diagnostics parameters (same names and meaning as in ``ros/settings.py``)."""

    diagnostics_period: float
    diagnostics_window: float
    image_min_rate: float  # resolved: the model's frame rate for -1
    image_max_rate: float  # 0: no maximum
    command_min_rate: float
    min_stamp_age: float
    max_stamp_age: float
    max_image_gap: float
    best_effort_images: bool

    @classmethod
    def from_settings(cls, settings: Any, model_frame_period: float) -> HealthConfig:
        """From the node's ``Settings``; ``image_min_rate`` -1 becomes the model's frame rate."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        if values["image_min_rate"] < 0:
            values["image_min_rate"] = 1.0 / model_frame_period if model_frame_period > 0 else 0.0
        values["best_effort_images"] = settings.image_qos_reliability == "best_effort"
        return cls(**values)


class NodeHealth:
    """What the active node's /diagnostics say: its level from the recent problems of its session
    (and warm-up), then one status per input (rate, stamp age); frame loss of best-effort images.

    ``stamp_clock`` reads the clock stamps are compared with (the node clock, in seconds).
    """

    def __init__(self, config: HealthConfig, stamp_clock: Clock, clock: Clock = time.monotonic):
        window = max(1, round(config.diagnostics_window / config.diagnostics_period))
        rates = {
            "image": (config.image_min_rate, config.image_max_rate),
            "commands": (config.command_min_rate, 0.0),
        }
        self.inputs = {
            name: InputHealth(
                FrequencyStatus(name, low, high or math.inf, window=window, clock=clock),
                TimeStampStatus(name, config.min_stamp_age, config.max_stamp_age, clock=stamp_clock),
            )
            for name, (low, high) in rates.items()
        }
        self.problems = RecentProblems(config.diagnostics_window, clock=clock)
        self.loss = (
            FrameLossDetector(throttle_s=0.0, max_gap_s=config.max_image_gap, clock=clock)
            if config.best_effort_images
            else None
        )

    def image(self, stamp_ns: int) -> None:
        """An image arrived (any stamp: its rate and stamp age)."""
        self.inputs["image"].tick(stamp_ns / 1e9)

    def frame(self, stamp_ns: int) -> str | None:
        """An image was taken onto the timeline (its stamp checked); returns the frame-loss message
        while a best-effort stream loses frames."""
        return self.loss.add(stamp_ns) if self.loss is not None else None

    def command(self, stamp_ns: int) -> None:
        self.inputs["commands"].tick(stamp_ns / 1e9)

    def statuses(
        self, counts: dict[str, int], history: int, min_history: int, reasons: dict[str, str] | None = None
    ) -> dict[str, Status]:
        """``{"node": ..., "image input": ..., "commands input": ...}``; advances the windows.
        ``reasons``: why frames were dropped (``dropped.<reason>`` -> text, the session's
        ``drop_reasons``); those of recent drops are added to the node's message and values."""
        self.problems.observe(counts)
        node = self.problems.status()
        for key, why in sorted((reasons or {}).items()):
            if f"recent.image/{key}" in node.values:
                node.message += f"; {key}: {why}"
                node.values[f"{key}.reason"] = why
        if history < min_history and node.level == Level.OK:
            node = Status(Level.WARN, f"warming up ({history}/{min_history})", node.values)
        if self.loss is not None:
            missing, expected = self.loss.missing()
            node.values["image.frames_missing_recent"] = f"{missing}/{expected}"
        return {"node": node, **{f"{name} input": health.status() for name, health in self.inputs.items()}}
