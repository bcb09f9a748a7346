"""Validation during training: held-out episodes, autoregressive and teacher-forced PSNR next to copy-last."""

from __future__ import annotations

from typing import Any

import numpy as np

from astra_ros.evaluation.metrics import HorizonAccumulator
from astra_ros.evaluation.replay import frame_states, rollout, select_windows, teacher_forced
from astra_ros.model.astra import AstraWorldModel
from astra_ros.runtime.base import model_info
from astra_ros.runtime.torch_backend import TorchBackend


def validate(
    model: AstraWorldModel,
    episodes: list[Any],
    context: int = 4,
    horizon: int = 8,
    max_windows: int = 12,
    meta: dict[str, Any] | None = None,
) -> dict[str, float]:
    """PSNR at horizon 1 and ``horizon`` for the rollout, teacher-forced one-step and copy-last
    (``meta``: the run's joint names and frame period, which robot-state models need)."""
    backend = TorchBackend(model, model_info("torch", meta or {}, model.cfg, "validation"), seed=0)
    windows = select_windows([len(e.frames) for e in episodes], context, horizon, max_windows)
    if not windows:
        return {}
    scores = {name: HorizonAccumulator(horizon, with_ssim=False) for name in ("model", "teacher", "copy")}
    for w in windows:
        ep = episodes[w.episode]
        frames, commands = ep.frames, ep.commands
        truth = frames[w.future_slice()]
        pred, _ = rollout(
            backend,
            frames[w.context_slice()],
            commands[w.past_commands()],
            commands[w.future_commands()],
            ep.modality,
            seed=0,
            states=frame_states(backend, ep, w.context_slice()),
        )
        scores["model"].add(pred, truth)
        whole = slice(w.start, w.start + context + horizon)
        between = slice(w.start, w.start + context + horizon - 1)
        scores["teacher"].add(
            teacher_forced(
                backend,
                frames[whole],
                commands[between],
                context,
                ep.modality,
                states=frame_states(backend, ep, whole),
            ),
            truth,
        )
        scores["copy"].add(np.repeat(frames[w.last_context][None], horizon, 0), truth)
    out: dict[str, float] = {"val_windows": float(len(windows))}
    for name, acc in scores.items():
        psnr = acc.result()["psnr"]
        out[f"val_{name}_psnr_h1"] = psnr[0]
        out[f"val_{name}_psnr_h{horizon}"] = psnr[-1]
    return out
