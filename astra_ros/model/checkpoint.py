"""Single-file checkpoints: config, weights, optional optimizer state and training metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from astra_ros.files import atomic_write
from astra_ros.model.astra import AstraWorldModel
from astra_ros.model.config import AstraConfig

FORMAT = "astra_ros.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not an astra_ros checkpoint."""


@dataclass
class Checkpoint:
    config: AstraConfig
    model: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # joint_names, frame_period, modalities, ...
    optimizer: dict[str, Any] | None = None
    trainer: dict[str, Any] | None = None  # step, rng states, ... (exact resume)

    def build_model(self) -> AstraWorldModel:
        model = AstraWorldModel(self.config)
        model.load_state_dict(self.model)
        return model.eval()


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": checkpoint.config.to_dict(),
        "model": checkpoint.model,
        "meta": checkpoint.meta,
        "optimizer": checkpoint.optimizer,
        "trainer": checkpoint.trainer,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an astra_ros checkpoint (expected format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; expected {VERSION}")
    try:
        config = AstraConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has an invalid config: {exc}") from exc
    return Checkpoint(
        config, payload["model"], payload.get("meta") or {}, payload.get("optimizer"), payload.get("trainer")
    )
