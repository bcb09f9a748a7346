"""Bounds on untrusted input: stamps, string sizes, log lines, image timeline jumps. ROS-free.

Every time is an integer of nanoseconds. ``InputError`` carries the diagnostics counter key
(``rejected.<reason>``); the node drops the message, counts it and logs it throttled.

``ThrottledLog`` bounds the rate of log lines: the session's rejections are logged throttled.

Image timeline jumps (a forward gap or a backwards jump larger than ``max_image_gap``) reset
the causal state, so one stray frame must not be able to cause one: ``JumpConfirmation`` takes a
jump only when ``JUMP_CONFIRM_FRAMES`` frames in a row lie on the new timeline (each within
``max_image_gap`` after the one before). The frames before that are rejected
(``image_unconfirmed_jump``); a frame that continues the old timeline cancels the jump. A bag loop
or a camera restart therefore costs ``JUMP_CONFIRM_FRAMES - 1`` frames, while a second camera with
another clock, interleaved with the real one, is rejected frame by frame and never resets the state.
The command and robot-state timelines use the same gate for a jump back only (``backward_only``: a
command stream may pause), so one stale message cannot clear the samples the next frames need.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

INT32_MAX_NS = (2**31 - 1) * 1_000_000_000 + 999_999_999
"""The newest stamp a ``builtin_interfaces/Time`` (int32 seconds) can hold."""
MAX_FRAME_ID_LENGTH = 256
MAX_JOINT_NAMES = 256
MAX_NAME_LENGTH = 256
LOG_LIMIT = 300
"""Characters of a rejection message that reach the log (the rest is cut, its length noted)."""
JUMP_CONFIRM_FRAMES = 3


class InputError(ValueError):
    """A message the node rejects; ``reason`` is the counter key in /diagnostics."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def truncate_for_log(text: str, limit: int = LOG_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, marked with how much was cut."""
    if len(text) <= limit:
        return text
    tail = f"... [{len(text) - limit} more characters]"
    return text[: max(limit - len(tail), 0)] + tail


class ThrottledLog:
    """The session's ``log(level, text, throttled, key)`` on a logger (rclpy's, or any with
    ``info`` / ``warning`` / ``error``): throttled lines of one ``key`` (default: the level) at most
    once per ``period()`` seconds (rclpy's own throttle cannot change its period between calls)."""

    def __init__(self, logger: Any, period: Callable[[], float], clock: Callable[[], float] = time.monotonic):
        self._logger, self._period, self._clock = logger, period, clock
        self._logged_at: dict[str, float] = {}

    def __call__(self, level: str, text: str, throttled: bool, key: str = "") -> None:
        if throttled:
            key, now = key or level, self._clock()
            if now - self._logged_at.get(key, -math.inf) < self._period():
                return
            self._logged_at[key] = now
        if level == "error":  # rclpy ties a severity to each call site: one line per level
            self._logger.error(text)
        elif level == "warning":
            self._logger.warning(text)
        else:
            self._logger.info(text)


def check_stamp_ns(
    stamp_ns: int, what: str, now_ns: int, future_tolerance_ns: int, reserve_ns: int = 0
) -> int:
    """``stamp_ns`` if it is usable; raises InputError ``<what>_stamp_range`` / ``<what>_stamp_future``.

    Range: not negative, and ``stamp + reserve_ns`` (the stamps derived from it, e.g. predicted
    frames) still fits int32 seconds. Future: at most ``future_tolerance_ns`` after ``now_ns``; not
    checked while the clock reads 0 (sim time before the first /clock).
    """
    if stamp_ns < 0 or stamp_ns + reserve_ns > INT32_MAX_NS:
        raise InputError(
            f"{what}_stamp_range",
            f"{what} stamp {stamp_ns} ns; expected 0..{INT32_MAX_NS - reserve_ns} ns so that "
            f"the stamps derived from it (up to {reserve_ns} ns later) fit int32 seconds",
        )
    if now_ns > 0 and stamp_ns - now_ns > future_tolerance_ns:
        raise InputError(
            f"{what}_stamp_future",
            f"{what} stamp {stamp_ns} ns is {(stamp_ns - now_ns) / 1e9:.3f} s after the node clock; "
            f"expected at most future_stamp_tolerance={future_tolerance_ns / 1e9:g} s",
        )
    return stamp_ns


def stamp_reserve_ns(
    imagine_max_horizon: int, max_image_gap: float, frame_period: float, model_frame_period: float
) -> int:
    """How far past an image the stamps derived from it reach: predicted stamps go
    ``imagine_max_horizon + 1`` model steps ahead, and a step is at most the larger of
    ``max_image_gap`` (else the timeline resets) and the frame period (counted as at least 1 s)."""
    return int((imagine_max_horizon + 1) * max(max_image_gap, frame_period, model_frame_period, 1.0) * 1e9)


def check_frame_id(frame_id: str, what: str) -> str:
    if len(frame_id) > MAX_FRAME_ID_LENGTH:
        raise InputError(
            f"{what}_frame_id",
            f"{what} frame_id has {len(frame_id)} characters "
            f"({truncate_for_log(repr(frame_id), 40)}); expected at most {MAX_FRAME_ID_LENGTH}",
        )
    return frame_id


def check_names(names: list[str], what: str) -> list[str]:
    """Joint names bounded in count and length (reason ``joint_names_limit``)."""
    if len(names) > MAX_JOINT_NAMES:
        raise InputError(
            "joint_names_limit", f"{what} has {len(names)} joint names; expected at most {MAX_JOINT_NAMES}"
        )
    longest = max((len(name) for name in names), default=0)
    if longest > MAX_NAME_LENGTH:
        raise InputError(
            "joint_names_limit",
            f"{what} has a joint name of {longest} characters; expected at most {MAX_NAME_LENGTH}",
        )
    return names


class JumpConfirmation:
    """Gate in front of a timeline: a jump is taken only once confirmed (module docstring);
    ``backward_only``: a forward gap is no jump (the sample timelines of commands and states)."""

    def __init__(self, frames: int = JUMP_CONFIRM_FRAMES, backward_only: bool = False):
        self.frames = frames
        self.backward_only = backward_only
        self._candidate_ns: int | None = None  # newest frame of the unconfirmed new timeline
        self._seen = 0

    def reset(self) -> None:
        self._candidate_ns = None
        self._seen = 0

    def accept(self, stamp_ns: int, last_ns: int | None, max_gap_ns: int) -> bool:
        """False: ``stamp_ns`` jumps away from ``last_ns`` (the timeline's newest) unconfirmed."""
        if last_ns is None or not _is_jump(stamp_ns, last_ns, max_gap_ns, self.backward_only):
            self.reset()
            return True
        if self._candidate_ns is not None and _continues(stamp_ns, self._candidate_ns, max_gap_ns):
            self._seen += 1
        else:
            self._seen = 1
        self._candidate_ns = stamp_ns
        if self._seen >= self.frames:
            self.reset()
            return True
        return False


def _is_jump(stamp_ns: int, last_ns: int, max_gap_ns: int, backward_only: bool) -> bool:
    if stamp_ns < last_ns:
        return not max_gap_ns or last_ns - stamp_ns > max_gap_ns
    return not backward_only and bool(max_gap_ns) and stamp_ns - last_ns > max_gap_ns


def _continues(stamp_ns: int, previous_ns: int, max_gap_ns: int) -> bool:
    return stamp_ns > previous_ns and (not max_gap_ns or stamp_ns - previous_ns <= max_gap_ns)
