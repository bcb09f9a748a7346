"""Command ranking: does the model tell the true command sequence from others, as a planner needs?

Torch-free. For each window the backend is reset and the context ingested
(``replay.ingest_context``), then ``k`` candidate sequences of ``horizon`` commands are predicted
in one batched call with shared sampler noise: the true future commands and ``k - 1`` sequences
that differ from them, drawn from all windows of the bag (other episodes first; windows of the same
episode only when other episodes do not offer enough). Each candidate's predicted frame at
``horizon`` is scored by its MSE to the true frame at ``horizon``, and the true sequence gets a
rank among the ``k``.

Ties: the true sequence takes the mean rank of its tie group, and its top-1 score is ``1 / n``
when it ties with ``n - 1`` others at the lowest error (the expectation under a random tie
break). A model that ignores its commands (copy-last) ties every candidate and scores chance
exactly: top-1 ``1 / k``, mean rank ``(k + 1) / 2``.

A window is *moving* when the true frame at ``horizon`` differs from the last context frame by an
MSE above ``MOVING_MSE`` on the [0, 1] scale (copy-last below 30 dB PSNR there): in a paused
window every command sequence that keeps still is equally right.

``DIFFERENT_COMMANDS``: a candidate differs from the true sequence when some command differs by
more than this (in the command's units, rad/s for joint velocities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from astra_ros.evaluation.metrics import to_unit
from astra_ros.evaluation.replay import EpisodeLike, frame_states, ingest_context, select_windows
from astra_ros.runtime.base import WorldModelBackend

MOVING_MSE = 1e-3
DIFFERENT_COMMANDS = 0.05


def true_rank(errors: np.ndarray) -> tuple[float, float]:
    """``errors[0]`` is the true candidate's -> (rank in 1..k, top-1 score), ties as documented."""
    true = errors[0]
    better = int(np.sum(errors[1:] < true))
    tied = int(np.sum(errors[1:] == true))
    rank = 1.0 + better + tied / 2.0
    top1 = 1.0 / (1 + tied) if better == 0 else 0.0
    return rank, top1


def distractors(
    futures: np.ndarray,
    owners: np.ndarray,
    truth: np.ndarray,
    episode: int,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` of the future-command sequences ``futures`` ``(W, H, D)`` (windows of the episodes
    ``owners`` ``(W,)``) that differ from ``truth`` ``(H, D)``, from episodes other than ``episode``
    first."""
    differ = np.abs(futures - truth).max(axis=(1, 2)) > DIFFERENT_COMMANDS
    other = np.flatnonzero(differ & (owners != episode))
    same = np.flatnonzero(differ & (owners == episode))
    picked = rng.choice(other, min(count, len(other)), replace=False)
    if len(picked) < count and len(same):
        more = rng.choice(same, min(count - len(picked), len(same)), replace=False)
        picked = np.concatenate([picked, more])
    if len(picked) < count:
        raise ValueError(
            f"{len(picked)} command sequences of the bag's windows differ from this window's; expected "
            f"ranking k - 1 = {count} (lower --ranking-k or use a longer bag)"
        )
    return futures[picked]


def ranking(
    backend: WorldModelBackend,
    episodes: Sequence[EpisodeLike],
    modality: str,
    context: int = 4,
    k: int = 8,
    horizon: int = 8,
    max_windows: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """``{k, horizon, top1, top1_moving, mean_rank, windows, moving_windows}`` over the windows of
    ``episodes`` (``top1_moving`` is None without moving windows)."""
    if k < 2 or horizon < 1:
        raise ValueError(f"ranking k={k} and horizon={horizon}; expected k >= 2 and horizon >= 1")
    windows = select_windows([len(ep.frames) for ep in episodes], context, horizon, max_windows)
    if not windows:
        raise ValueError(
            f"no episode is long enough for ranking: context={context} + horizon={horizon} frames"
        )
    iterator: Any = enumerate(windows)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(windows), desc="astra-eval ranking", unit="window")
    pool = select_windows([len(ep.frames) for ep in episodes], context, horizon)  # every window
    futures = np.stack([episodes[w.episode].commands[w.future_commands()] for w in pool])
    futures = futures.astype(np.float32)
    owners = np.array([w.episode for w in pool])
    ranks, top1, moving = [], [], []
    for index, win in iterator:
        ep = episodes[win.episode]
        rng = np.random.default_rng((seed, index))
        true_commands = ep.commands[win.future_commands()].astype(np.float32)
        others = distractors(futures, owners, true_commands, win.episode, k - 1, rng)
        candidates = np.concatenate([true_commands[None], others])
        past = ep.commands[win.past_commands()]
        states = frame_states(backend, ep, win.context_slice())
        ingest_context(backend, ep.frames[win.context_slice()], past, futures.shape[-1], modality, states)
        predicted = backend.predict(candidates, modality, steps=steps, seed=seed, share_noise=True)
        truth = ep.frames[win.last_context + horizon]
        errors = np.mean((to_unit(predicted[:, horizon - 1]) - to_unit(truth)) ** 2, axis=(1, 2, 3))
        rank, first = true_rank(errors)
        ranks.append(rank)
        top1.append(first)
        moving.append(
            float(np.mean((to_unit(truth) - to_unit(ep.frames[win.last_context])) ** 2)) > MOVING_MSE
        )
    backend.reset()
    top1_arr, moving_arr = np.asarray(top1), np.asarray(moving)
    return {
        "k": k,
        "horizon": horizon,
        "top1": float(top1_arr.mean()),
        "top1_moving": float(top1_arr[moving_arr].mean()) if moving_arr.any() else None,
        "mean_rank": float(np.mean(ranks)),
        "windows": len(windows),
        "moving_windows": int(moving_arr.sum()),
        "moving_mse": MOVING_MSE,
        "chance_top1": 1.0 / k,
    }
