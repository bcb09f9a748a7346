"""Command pairing: the command in force at an image stamp (zero-order hold).

No ROS imports; every time is an integer of nanoseconds in the node clock's time base.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from astra_ros.ros.settings import STALE_COMMAND_POLICIES


@dataclass(frozen=True)
class Paired:
    """The command paired with one image; ``command`` None means skip the image."""

    command: np.ndarray | None
    fallback: str | None  # None, "missing_command" (none yet) or "stale_command" (older than the limit)


class CommandBuffer:
    """Zero-order hold: the command in force at time t is the newest one stamped at or before t.

    A command older than ``staleness_ns`` at t, or none at all, is handled by ``policy``:
    ``zero`` pairs a zero command, ``hold`` the newest command stamped before t however old
    (zero if none),
    ``skip`` pairs nothing (the caller drops the image).
    Commands must arrive in stamp order; a backwards step larger than ``jump_ns`` clears the
    buffer (bag loop), a smaller one is rejected (``push`` returns False).
    """

    def __init__(self, width: int, staleness_ns: int, policy: str, jump_ns: int, capacity: int = 512):
        if policy not in STALE_COMMAND_POLICIES:
            raise ValueError(
                f"stale_command_policy={policy!r}; expected one of {list(STALE_COMMAND_POLICIES)}"
            )
        self.width = width
        self.staleness_ns = staleness_ns
        self.policy = policy
        self.jump_ns = jump_ns
        self._stamps: deque[int] = deque(maxlen=capacity)
        self._commands: deque[np.ndarray] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._commands.clear()

    def push(self, stamp_ns: int, command: np.ndarray) -> bool:
        command = np.asarray(command, np.float32)
        if command.shape != (self.width,):
            raise ValueError(f"command has shape {command.shape}; expected ({self.width},)")
        if self._stamps and stamp_ns < self._stamps[-1]:
            if self._stamps[-1] - stamp_ns <= self.jump_ns:
                return False
            self.clear()
        self._stamps.append(stamp_ns)
        self._commands.append(command)
        return True

    def newest(self) -> np.ndarray | None:
        return self._commands[-1] if self._commands else None

    def at(self, stamp_ns: int) -> Paired:
        index = bisect.bisect_right(self._stamps, stamp_ns) - 1
        if index >= 0 and stamp_ns - self._stamps[index] <= self.staleness_ns:
            return Paired(self._commands[index], None)
        fallback = "stale_command" if self._stamps else "missing_command"
        if self.policy == "skip":
            return Paired(None, fallback)
        if self.policy == "hold" and index >= 0:
            return Paired(self._commands[index], fallback)
        return Paired(np.zeros(self.width, np.float32), fallback)
