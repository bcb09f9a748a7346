"""The per-frame action rule, in one place for the bag reader, the training windows, the node and
Imagine (ROS-free; every time is an integer of nanoseconds).

Rule: the action of frame t is the time-weighted mean of the commands in force (zero-order hold:
the newest command stamped at or before each instant) during the interval from frame t to frame
t+1. A 30 Hz command stream under a 15 Hz camera thus reaches the model whole, not as the one
command in force at each frame. Training: ``episode.commands[i]`` is the mean over
``[t_i, t_{i+1})`` (the last frame: over one frame period from its stamp). Node: when frame t
arrives, the mean over ``[previous frame, t]`` is the command that drove the interval that ended
at t (what ``ingest`` expects). ``plan_means`` applies the same rule to a planned sequence.

Staleness: a command stays in force for ``STALENESS_S`` = 0.5 s after its stamp, the default
velocity-command timeout of ros2_control's controllers (``cmd_vel_timeout``): a robot whose
command stream stops, stops. Policy ``DEFAULT_POLICY`` = ``zero``: past that limit, and before the
first command, the command is zero, which is what such a robot does, so the frame keeps its place
on the time grid (dropping it, as the bag reader once did after 0.25 s, leaves a hole in the
history that the model never sees at run time). ``hold`` keeps the newest command however old;
``skip`` pairs nothing when any part of the interval is stale or has no command (the caller drops
the frame).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_POLICY",
    "STALENESS_S",
    "STALE_COMMAND_POLICIES",
    "CommandBuffer",
    "Paired",
    "check_policy",
    "interval_mean",
    "plan_means",
]

STALE_COMMAND_POLICIES = ("zero", "hold", "skip")
STALENESS_S = 0.5
DEFAULT_POLICY = "zero"


@dataclass(frozen=True)
class Paired:
    """The command paired with one frame; ``command`` None means skip the frame."""

    command: np.ndarray | None
    fallback: str | None  # None, "missing_command" (none yet) or "stale_command" (older than the limit)


def check_policy(policy: str) -> None:
    """Raise ValueError unless ``policy`` is one of ``STALE_COMMAND_POLICIES``."""
    if policy not in STALE_COMMAND_POLICIES:
        raise ValueError(f"stale_command_policy={policy!r}; expected one of {list(STALE_COMMAND_POLICIES)}")


def interval_mean(
    stamps: Sequence[int],
    commands: Sequence[np.ndarray],
    t0_ns: int,
    t1_ns: int,
    staleness_ns: int,
    policy: str,
    width: int,
) -> Paired:
    """Time-weighted mean over ``[t0_ns, t1_ns)`` of the zero-order hold of ``commands`` (sorted
    by ``stamps``), each in force for ``staleness_ns`` after its stamp, then handled by ``policy``.
    ``t1_ns == t0_ns`` gives the command in force at ``t0_ns``."""
    if t1_ns < t0_ns:
        raise ValueError(f"interval [{t0_ns}, {t1_ns}) ns ends before it starts; expected t1_ns >= t0_ns")
    first = bisect.bisect_right(stamps, t0_ns) - 1  # in force at t0 (-1: none yet)
    if t1_ns == t0_ns:
        pieces = [(first, t0_ns, t0_ns + 1)]
    else:
        last = bisect.bisect_left(stamps, t1_ns)  # stamped inside (t0, t1): first+1 .. last-1
        edges = [t0_ns, *(int(stamps[k]) for k in range(first + 1, last)), t1_ns]
        pieces = [(first + i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    total = np.zeros(width, np.float64)
    missing = stale = False
    for k, start, end in pieces:
        if k < 0:
            missing = missing or end > start  # before the first command: zero
            continue
        fresh = min(max(0, int(stamps[k]) + staleness_ns + 1 - start), end - start)
        stale = stale or fresh < end - start
        weight = end - start if policy == "hold" else fresh
        total += np.asarray(commands[k], np.float64) * weight
    fallback = "missing_command" if missing else "stale_command" if stale else None
    if fallback and policy == "skip":
        return Paired(None, fallback)
    return Paired((total / max(1, t1_ns - t0_ns)).astype(np.float32), fallback)


def plan_means(points_ns: Sequence[int], commands: np.ndarray, edges_ns: Sequence[int]) -> np.ndarray | None:
    """The action rule over a planned sequence: row h is the mean of the plan's zero-order hold over
    ``[edges_ns[h], edges_ns[h+1])`` (offsets from the plan start, ``points_ns`` increasing,
    ``commands`` (P, D)); (len(edges_ns) - 1, D), or None when the first edge precedes the plan."""
    if not len(points_ns) or edges_ns[0] < points_ns[0]:
        return None
    width = int(commands.shape[1])
    rows = [
        interval_mean(points_ns, list(commands), a, b, 0, "hold", width).command
        for a, b in zip(edges_ns[:-1], edges_ns[1:], strict=True)
    ]
    return np.stack(rows).astype(np.float32)


class CommandBuffer:
    """The newest commands of a stream (or robot states), paired with frames by the action rule of
    this module.

    Samples are kept in stamp order: one stamped before the newest by at most ``jump_ns`` (a late
    or reordered message) is inserted at its place, so a sample stamped ahead of the others takes
    effect at its stamp and holds none of them up; a larger step back clears the buffer (a bag
    loop; the node confirms such a jump first, ``input_limits.JumpConfirmation``). ``jump_ns`` 0:
    every step back clears it.
    """

    def __init__(
        self,
        width: int,
        staleness_ns: int = int(STALENESS_S * 1e9),
        policy: str = DEFAULT_POLICY,
        jump_ns: int = 0,
        capacity: int = 512,
    ):
        check_policy(policy)
        self.width = width
        self.staleness_ns = staleness_ns
        self.policy = policy
        self.jump_ns = jump_ns
        self.capacity = capacity
        self._stamps: list[int] = []
        self._commands: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._commands.clear()

    @property
    def newest_stamp(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def push(self, stamp_ns: int, command: np.ndarray) -> None:
        """Add a sample at its stamp (the oldest goes beyond ``capacity``); raises ValueError on a
        wrong shape."""
        command = np.asarray(command, np.float32)
        if command.shape != (self.width,):
            raise ValueError(f"command has shape {command.shape}; expected ({self.width},)")
        if self._stamps and self._stamps[-1] - stamp_ns > self.jump_ns:
            self.clear()
        index = bisect.bisect_right(self._stamps, stamp_ns)
        self._stamps.insert(index, stamp_ns)
        self._commands.insert(index, command)
        if len(self._stamps) > self.capacity:
            del self._stamps[0], self._commands[0]

    def newest(self) -> np.ndarray | None:
        return self._commands[-1] if self._commands else None

    def at(self, stamp_ns: int) -> Paired:
        """The command in force at ``stamp_ns``."""
        return self.over(stamp_ns, stamp_ns)

    def over(self, t0_ns: int, t1_ns: int) -> Paired:
        """The time-weighted mean command over ``[t0_ns, t1_ns)``."""
        return interval_mean(
            self._stamps, self._commands, t0_ns, t1_ns, self.staleness_ns, self.policy, self.width
        )
