"""Closed-loop goal reaching around a ``Planner``, ROS-free: what the ``astra_planner`` node runs.

Observed frames go into the model with the command that was in force while they were captured
(``observe``); ``replan`` plans from the newest frame toward the goal and stamps the plan with that
frame's time; ``command_at(t)`` is the plan's command for the frame period containing ``t`` (zero
order hold), zeros before the first plan and after the plan's horizon (the arm stops rather than
run on an expired plan). A new plan warm-starts from the previous one shifted by the frame
periods between their stamps.
"""

from __future__ import annotations

import numpy as np

from astra_ros.planning.planner import Plan, Planner


class ClosedLoop:
    def __init__(self, planner: Planner, frame_period_ns: int, min_history: int = 1):
        if frame_period_ns <= 0:
            raise ValueError(f"frame_period_ns={frame_period_ns}; expected > 0")
        self.planner = planner
        self.period_ns = int(frame_period_ns)
        self.min_history = min_history
        self.width = planner.low.shape[0]
        self.current: tuple[Plan, int] | None = None  # the plan and its frame stamp, swapped at once

    def reset(self) -> None:
        """Forget the model's state and the plan (a new goal keeps the model state: ``new_goal``)."""
        self.planner.model.reset()
        self.new_goal()

    def new_goal(self) -> None:
        self.current = None
        self.planner.reset()

    def observe(self, frame: np.ndarray, command_before: np.ndarray, state: np.ndarray | None = None) -> None:
        """Ingest ``frame`` with the command in force from the previous frame to it and the joint
        positions measured at it (None: unknown)."""
        self.planner.model.ingest(frame, command_before, self.planner.modality, state)

    def replan(self, goal: np.ndarray, stamp_ns: int) -> Plan | None:
        """Plan from the newest observed frame (stamped ``stamp_ns``); None while the model holds
        fewer than ``min_history`` frames."""
        if self.planner.model.history_length < self.min_history:
            return None
        if self.current is not None:
            self.planner.advance(round((stamp_ns - self.current[1]) / self.period_ns))
        plan = self.planner.plan(goal)
        self.current = (plan, int(stamp_ns))
        return plan

    def command_at(self, stamp_ns: int) -> np.ndarray:
        """The command to hold at ``stamp_ns`` (see the module docstring)."""
        current = self.current
        if current is None:
            return np.zeros(self.width, np.float32)
        plan, stamp = current
        index = (int(stamp_ns) - stamp) // self.period_ns
        if index >= len(plan.actions):
            return np.zeros(self.width, np.float32)
        return plan.actions[max(index, 0)].copy()
