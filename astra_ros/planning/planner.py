"""Sampling-based planning over a world model's batched ``predict``: CEM and MPPI. Torch-free.

The caller keeps the model's causal state current (``ingest`` each observed frame with the command
that led to it); ``plan(goal)`` then asks the model for ``candidates`` futures of ``horizon``
frames in ONE ``predict`` call per iteration, with shared sampler noise so candidates differ only
through their commands, and scores them with a cost of the predicted frames (``costs``) plus an
optional user cost of the commands and a smoothness penalty. Commands are clipped to the bounds.

- ``cem``: sample around the mean, refit mean and std to the ``elites`` cheapest, repeat; returns
  the cheapest candidate seen.
- ``mppi``: sample around the mean with a fixed std, move the mean to the cost-weighted average
  (``exp(-(c - c_min) / (temperature * (c_max - c_min)))``), repeat; returns the mean.

Candidate 0 is always the current mean itself. Warm start: ``advance(n)`` after executing ``n``
commands shifts the mean by ``n`` (the tail repeats the last command) for the next ``plan``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from astra_ros.planning.costs import Cost
from astra_ros.runtime.base import WorldModelBackend

METHODS = ("cem", "mppi")
CommandCost = Callable[[np.ndarray], np.ndarray]  # (B, H, D) commands -> (B,) cost


def default_elites(candidates: int) -> int:
    """CEM elites for ``candidates`` samples: a quarter of them, 1 to 8."""
    return max(1, min(8, candidates // 4))


@dataclass(frozen=True)
class PlannerConfig:
    method: str = "mppi"
    candidates: int = 64
    horizon: int = 8
    iterations: int = 1
    elites: int = 8  # cem
    temperature: float = 0.1  # mppi, relative to the spread of the candidates' costs
    std: float = 0.5  # sampling std as a fraction of the bound's half width
    min_std: float = 0.05  # cem: the refitted std never falls below this fraction
    smoothness: float = 0.0  # weight of the mean squared command change (scaled by the bounds)
    knots: int = 0  # sampled command segments, each held for horizon / knots frames (0: one per frame)
    steps: int | None = None  # denoising steps of the model (None: its default)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; expected one of {METHODS}")
        for name in ("candidates", "horizon", "iterations", "elites"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")
        if not 0 <= self.knots <= self.horizon:
            raise ValueError(f"knots={self.knots}; expected 0 (one per frame) .. horizon={self.horizon}")
        if self.method == "cem" and self.elites > self.candidates:
            raise ValueError(f"elites={self.elites}; expected at most candidates={self.candidates}")
        if self.temperature <= 0 or self.std <= 0:
            raise ValueError(f"temperature={self.temperature}, std={self.std}; expected both > 0")


@dataclass
class Plan:
    actions: np.ndarray  # (H, D) float32, actions[0] to execute now
    cost: float  # cost of the returned plan as predicted (mppi: the weighted mean over candidates)
    predicted: np.ndarray  # (H, S, S, 3) uint8: the cheapest candidate's frames (cem: the plan's)
    seconds: float  # wall time of plan()


class Planner:
    """Plans ``(horizon, D)`` commands of ``modality`` within ``[low, high]`` toward a goal image."""

    def __init__(
        self,
        model: WorldModelBackend,
        modality: str,
        low: np.ndarray,
        high: np.ndarray,
        cost: Cost,
        config: PlannerConfig | None = None,
        command_cost: CommandCost | None = None,
    ):
        self.model = model
        self.modality = modality
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        if self.low.shape != self.high.shape or self.low.ndim != 1 or np.any(self.low >= self.high):
            raise ValueError(f"bounds low={self.low} high={self.high}; expected (D,) arrays with low < high")
        self.cost = cost
        self.command_cost = command_cost
        self.config = config or PlannerConfig()
        self._calls = 0
        self.reset()

    @property
    def scale(self) -> np.ndarray:
        return (self.high - self.low) / 2.0

    def reset(self, previous: np.ndarray | None = None) -> None:
        """Forget the warm start (the plan restarts from zero commands, clipped into the bounds);
        ``previous``: the command in force now (for the smoothness penalty), else the same."""
        rest = np.clip(np.zeros_like(self.low), self.low, self.high)
        self._mean = np.repeat(rest[None], self.config.horizon, 0)
        self._previous = rest if previous is None else np.asarray(previous, np.float32)

    def advance(self, executed: int) -> None:
        """``executed`` commands of the last plan were carried out: shift the warm start."""
        n = min(max(int(executed), 0), self.config.horizon)
        if n == 0:
            return
        self._previous = self._mean[n - 1].copy()
        self._mean = np.concatenate([self._mean[n:], np.repeat(self._mean[-1:], n, 0)])

    def plan(self, goal: np.ndarray) -> Plan:
        cfg = self.config
        started = time.perf_counter()
        rng = np.random.default_rng((cfg.seed, self._calls))
        self._calls += 1
        mean = self._mean.copy()
        std = np.broadcast_to(cfg.std * self.scale, mean.shape).astype(np.float32)
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        expected = float("nan")
        for _ in range(cfg.iterations):
            noise = self._sample_noise(rng)
            noise[0] = 0.0  # candidate 0: the mean itself
            candidates = np.clip(mean + noise * std, self.low, self.high)  # (B, H, D)
            seed = int(rng.integers(0, 2**31 - 1))
            frames = self.model.predict(
                candidates, self.modality, steps=cfg.steps, seed=seed, share_noise=True
            )
            costs = self._total_cost(frames, candidates, goal)
            i = int(np.argmin(costs))
            if best is None or costs[i] < best[0]:
                best = (float(costs[i]), candidates[i], frames[i])
            if cfg.method == "cem":
                elites = candidates[np.argsort(costs)[: cfg.elites]]
                mean = elites.mean(0)
                std = np.maximum(elites.std(0), cfg.min_std * self.scale)
            else:
                spread = max(float(costs.max() - costs.min()), 1e-12)
                weights = np.exp(-(costs - costs.min()) / (cfg.temperature * spread))
                weights /= weights.sum()
                mean = np.tensordot(weights, candidates, axes=1).astype(np.float32)
                expected = float(weights @ costs)
        assert best is not None
        if cfg.method == "cem":
            cost, actions, predicted = best
        else:
            cost, actions, predicted = expected, np.clip(mean, self.low, self.high), best[2]
        self._mean = actions.astype(np.float32).copy()
        return Plan(actions.astype(np.float32), cost, predicted, time.perf_counter() - started)

    def _sample_noise(self, rng: np.random.Generator) -> np.ndarray:
        """Standard normal perturbations ``(B, H, D)``; with ``knots`` one draw per segment of
        consecutive frames (segment ``k`` covers frames ``h`` with ``h * knots // horizon == k``)."""
        cfg = self.config
        width = self.low.shape[0]
        if not cfg.knots:
            return rng.standard_normal((cfg.candidates, cfg.horizon, width)).astype(np.float32)
        draws = rng.standard_normal((cfg.candidates, cfg.knots, width)).astype(np.float32)
        segment = np.arange(cfg.horizon) * cfg.knots // cfg.horizon
        return draws[:, segment]

    def _total_cost(self, frames: np.ndarray, candidates: np.ndarray, goal: np.ndarray) -> np.ndarray:
        cost = np.asarray(self.cost(frames, goal), np.float64)
        if self.config.smoothness:
            before = np.broadcast_to(self._previous, candidates[:, :1].shape)
            steps = np.diff(np.concatenate([before, candidates], 1), axis=1)  # (B, H, D)
            cost = cost + self.config.smoothness * np.mean((steps / self.scale) ** 2, axis=(1, 2))
        if self.command_cost is not None:
            extra = np.asarray(self.command_cost(candidates), np.float64)
            if extra.shape != cost.shape:
                raise ValueError(f"command_cost returned shape {extra.shape}; expected {cost.shape}")
            cost = cost + extra
        return cost
