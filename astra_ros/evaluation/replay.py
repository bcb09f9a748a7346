"""Offline replay of recorded episodes through a world-model backend.

Torch-free: uses only the backend interface (reset / ingest / predict / info).

A *window* is ``context + horizon`` consecutive frames of one episode. ``commands[i]`` is the
action of frame ``i``: the command over the interval from frame ``i`` to frame ``i + 1``. For each
window the backend is reset, context frame ``i`` is ingested with ``commands[i - 1]`` (the
interval that ended at it), and ``horizon`` frames are rolled out (B=1) with the true commands from
the last context frame on, ``commands[last .. last + horizon - 1]``, so ``commands[last]`` drives
the first predicted frame. Variants scored on the same windows:

- ``model``: the rollout above.
- ``copy_last``: the last context frame repeated (no backend call).
- ``shuffled_commands``: the rollout with the future commands of another window (a fixed-seed
  derangement of the windows; with a single window, the negated commands). A model that follows
  its actions scores worse here than ``model``.
- ``zero_commands``: the rollout with all-zero future commands.
- ``teacher_forced``: one-step predictions. Horizon ``h`` is the 1-frame prediction of future
  frame ``h`` made after ingesting the context and the ``h - 1`` TRUE future frames before it
  (so it measures single-step quality at growing history length, without compounding errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from astra_ros.evaluation.metrics import HorizonAccumulator
from astra_ros.runtime.base import WorldModelBackend

VARIANTS = ("model", "copy_last", "shuffled_commands", "zero_commands", "teacher_forced")


class EpisodeLike(Protocol):
    frames: np.ndarray  # (T, S, S, 3) uint8
    commands: np.ndarray  # (T, D) float32, command over the interval from each frame to the next
    stamps: np.ndarray  # (T,) int64 ns


@dataclass(frozen=True)
class Window:
    episode: int  # index into the episode list
    start: int  # first context frame
    context: int
    horizon: int

    @property
    def last_context(self) -> int:
        return self.start + self.context - 1

    def context_slice(self) -> slice:
        return slice(self.start, self.start + self.context)

    def future_slice(self) -> slice:
        return slice(self.start + self.context, self.start + self.context + self.horizon)

    def past_commands(self) -> slice:
        """The commands between the context frames (``context - 1`` of them)."""
        return slice(self.start, self.last_context)

    def future_commands(self) -> slice:
        """The commands that drive the future frames, from the last context frame on."""
        return slice(self.last_context, self.last_context + self.horizon)


def select_windows(
    lengths: Sequence[int], context: int, horizon: int, max_windows: int | None = None
) -> list[Window]:
    """Every window (stride 1) of every episode, or ``max_windows`` of them spread evenly.

    With ``max_windows``, the budget is split as evenly as possible over the episodes that have
    windows (an episode with fewer windows than its share gives the rest to the others), and each
    episode's windows are taken at evenly spaced starts.
    """
    if context < 1 or horizon < 1:
        raise ValueError(f"context={context} and horizon={horizon}; expected both >= 1")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows={max_windows}; expected >= 1 or None")
    counts = [max(0, n - context - horizon + 1) for n in lengths]
    if max_windows is None or max_windows >= sum(counts):
        quota = counts
    else:
        quota = [0] * len(counts)
        left = max_windows
        open_eps = [i for i, c in enumerate(counts) if c > 0]
        while left > 0 and open_eps:
            share = max(1, left // len(open_eps))
            for i in list(open_eps):
                take = min(share, counts[i] - quota[i], left)
                quota[i] += take
                left -= take
                if quota[i] == counts[i]:
                    open_eps.remove(i)
                if left == 0:
                    break
    windows = []
    for ep, (count, want) in enumerate(zip(counts, quota, strict=True)):
        if want == 0:
            continue
        starts = np.unique(np.round(np.linspace(0, count - 1, want)).astype(int))
        windows.extend(Window(ep, int(s), context, horizon) for s in starts)
    return windows


def shuffle_pairing(n: int, seed: int = 0) -> np.ndarray:
    """A fixed-seed derangement: window ``i`` takes its shuffled commands from ``pairing[i] != i``.

    Returns ``[0]`` for a single window (the caller negates the commands instead).
    """
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    fixed = np.flatnonzero(perm == np.arange(n))
    if len(fixed) == 1:  # swap the lone fixed point with any other position
        i = int(fixed[0])
        j = (i + 1) % n
        perm[i], perm[j] = perm[j], perm[i]
    elif len(fixed) > 1:  # rotate the fixed points among themselves
        perm[fixed] = perm[np.roll(fixed, 1)]
    return perm


@dataclass
class WindowResult:
    predictions: dict[str, np.ndarray]  # variant -> (H, S, S, 3) uint8
    truth: np.ndarray  # (H, S, S, 3) uint8
    latency_ms: float  # the `model` predict call


def frame_states(backend: WorldModelBackend, episode: Any, frames: slice) -> np.ndarray | None:
    """The joint positions recorded at ``frames`` of an episode, when the backend's model takes them."""
    if not backend.info.state_dim or getattr(episode, "states", None) is None:
        return None
    return episode.states.positions[frames]


def ingest_context(
    backend: WorldModelBackend,
    frames: np.ndarray,
    past: np.ndarray,
    width: int,
    modality: str,
    states: np.ndarray | None = None,
) -> None:
    """Reset, then ingest ``frames`` (C) with ``past`` (C - 1): ``past[i]`` is the command from frame
    ``i`` to frame ``i + 1``; the first frame gets zeros of ``width`` (ignored by the backend).
    ``states`` (C, J): the joint positions measured at each frame (None: unknown)."""
    if len(past) != len(frames) - 1:
        want = len(frames) - 1
        raise ValueError(f"past has {len(past)} commands; expected {want} for {len(frames)} frames")
    backend.reset()
    for i, frame in enumerate(frames):
        state = None if states is None else states[i]
        backend.ingest(frame, past[i - 1] if i else np.zeros(width, np.float32), modality, state)


def rollout(
    backend: WorldModelBackend,
    frames: np.ndarray,
    past: np.ndarray,
    future: np.ndarray,
    modality: str,
    steps: int | None = None,
    seed: int | None = 0,
    states: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Ingest the context (``ingest_context``, with the context frames' ``states``) and roll out
    ``len(future)`` frames, ``future[0]`` driving the first one.

    Returns ``(H, S, S, 3)`` uint8 and the predict() wall time in milliseconds.
    """
    ingest_context(backend, frames, past, future.shape[-1], modality, states)
    actions = np.asarray(future, dtype=np.float32)[None]  # (1, H, D)
    start = time.perf_counter()
    out = backend.predict(actions, modality, steps=steps, seed=seed)
    latency = (time.perf_counter() - start) * 1000.0
    return np.asarray(out)[0], latency


def teacher_forced(
    backend: WorldModelBackend,
    frames: np.ndarray,
    commands: np.ndarray,
    context: int,
    modality: str,
    steps: int | None = None,
    seed: int | None = 0,
    states: np.ndarray | None = None,
) -> np.ndarray:
    """One-step predictions of frames ``context .. T-1`` of ``frames`` after the true frames before each.

    ``frames`` hold the whole window (T = context + horizon), ``commands`` the T - 1 commands
    between them, ``states`` (T, J) the joint positions at each frame (None: unknown). Returns
    ``(H, S, S, 3)``.
    """
    context_states = None if states is None else states[:context]
    ingest_context(
        backend, frames[:context], commands[: context - 1], commands.shape[-1], modality, context_states
    )
    out = []
    for t in range(context, len(frames)):
        action = np.asarray(commands[t - 1 : t], dtype=np.float32)[None]  # (1, 1, D)
        out.append(np.asarray(backend.predict(action, modality, steps=steps, seed=seed))[0, 0])
        backend.ingest(frames[t], commands[t - 1], modality, None if states is None else states[t])
    return np.stack(out)


@dataclass
class ReplayScores:
    """Accumulators for every variant plus latencies and a few example windows for the report."""

    horizon: int
    variants: Sequence[str] = VARIANTS
    accumulators: dict[str, HorizonAccumulator] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    missing: int = 0  # live mode: windows the node published no prediction for

    def __post_init__(self) -> None:
        for name in self.variants:
            self.accumulators.setdefault(name, HorizonAccumulator(self.horizon))

    def add(self, name: str, pred: np.ndarray, truth: np.ndarray) -> None:
        self.accumulators[name].add(pred, truth)

    @property
    def windows(self) -> int:
        return self.accumulators["model"].windows

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"horizons": list(range(1, self.horizon + 1))}
        for name, acc in self.accumulators.items():
            if acc.windows:
                out[name] = acc.result()
        out["windows"] = self.windows
        out["latency_ms"] = latency_summary(self.latencies_ms)
        return out


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int]:
    if not len(values_ms):
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "count": 0}
    arr = np.asarray(values_ms, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p99": round(float(np.percentile(arr, 99)), 3),
        "mean": round(float(arr.mean()), 3),
        "max": round(float(arr.max()), 3),
        "count": int(arr.size),
    }


def example_indices(n_windows: int, count: int = 4) -> set[int]:
    """Evenly spaced window indices kept as examples for the report strips."""
    if n_windows == 0:
        return set()
    return {int(i) for i in np.round(np.linspace(0, n_windows - 1, min(count, n_windows)))}


def replay(
    backend: WorldModelBackend,
    episodes: Sequence[EpisodeLike],
    modality: str,
    context: int = 4,
    horizon: int = 16,
    max_windows: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    examples: int = 4,
    progress: bool = True,
    model_predictions: dict[tuple[int, int], np.ndarray] | None = None,
    observe: Callable[[str, np.ndarray, np.ndarray], None] | None = None,
) -> ReplayScores:
    """Score every variant over the windows of ``episodes`` (see the module docstring).

    ``model_predictions`` (live mode): ``(episode, last context frame index) -> (H, S, S, 3)``
    predictions made elsewhere (the deployed node). They are scored as ``model``; the backend's own
    rollout on the same window is scored as ``offline_model``; windows without a prediction are
    skipped and counted in ``scores.missing``. ``observe(variant, predicted, truth)`` sees every
    scored window too (the geometry metrics).
    """
    size = backend.info.image_size
    for i, ep in enumerate(episodes):
        if ep.frames.shape[1:] != (size, size, 3):
            raise ValueError(
                f"episode {i} frames are {ep.frames.shape[1:]}; expected ({size}, {size}, 3) for the model"
            )
    windows = select_windows([len(ep.frames) for ep in episodes], context, horizon, max_windows)
    if not windows:
        lengths = [len(ep.frames) for ep in episodes]
        raise ValueError(
            f"no episode is long enough for context={context} + horizon={horizon} frames; "
            f"episode lengths {lengths}"
        )
    pairing = shuffle_pairing(len(windows), seed)
    keep = example_indices(len(windows), examples)
    variants = tuple(VARIANTS) + (("offline_model",) if model_predictions is not None else ())
    scores = ReplayScores(horizon, variants)
    iterator: Any = enumerate(windows)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(windows), desc="astra-eval", unit="window")
    for index, win in iterator:
        ep = episodes[win.episode]
        if model_predictions is not None and (win.episode, win.last_context) not in model_predictions:
            scores.missing += 1
            continue
        ctx_frames = ep.frames[win.context_slice()]
        past = ep.commands[win.past_commands()]
        truth = ep.frames[win.future_slice()]
        future = ep.commands[win.future_commands()]
        other = windows[int(pairing[index])]
        shuffled = episodes[other.episode].commands[other.future_commands()]
        if len(windows) == 1:
            shuffled = -future
        preds: dict[str, np.ndarray] = {}
        states = frame_states(backend, ep, win.context_slice())
        preds["model"], latency = rollout(backend, ctx_frames, past, future, modality, steps, seed, states)
        scores.latencies_ms.append(latency)
        if model_predictions is not None:
            preds["offline_model"] = preds["model"]
            preds["model"] = model_predictions[(win.episode, win.last_context)][:horizon]
        preds["copy_last"] = np.broadcast_to(ctx_frames[-1], truth.shape).copy()
        preds["shuffled_commands"], _ = rollout(
            backend, ctx_frames, past, shuffled, modality, steps, seed, states
        )
        preds["zero_commands"], _ = rollout(
            backend, ctx_frames, past, np.zeros_like(future), modality, steps, seed, states
        )
        whole = slice(win.start, win.start + context + horizon)
        between = slice(win.start, win.start + context + horizon - 1)
        preds["teacher_forced"] = teacher_forced(
            backend,
            ep.frames[whole],
            ep.commands[between],
            context,
            modality,
            steps,
            seed,
            frame_states(backend, ep, whole),
        )
        for name, pred in preds.items():
            scores.add(name, pred, truth)
            if observe is not None:
                observe(name, pred, truth)
        if index in keep:
            scores.examples.append(
                {
                    "episode": win.episode,
                    "start": win.start,
                    "context": ctx_frames.copy(),
                    "truth": truth.copy(),
                    "predicted": preds["model"].copy(),
                }
            )
    backend.reset()
    return scores
