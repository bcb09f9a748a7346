"""Single-file checkpoints: config, weights, optional optimizer state and training metadata.

``python -m astra_ros.model.checkpoint IN OUT --fp16`` writes the file to ship: the weights only,
stored in float16 (half the size; loading casts them back to float32, which the model computes in).
"""

from __future__ import annotations

import argparse
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


def shipped(checkpoint: Checkpoint, fp16: bool) -> Checkpoint:
    """The weights and metadata only (no optimizer or trainer state), optionally stored in float16."""
    weights = {k: v.half() if fp16 and v.is_floating_point() else v for k, v in checkpoint.model.items()}
    meta = {**checkpoint.meta, "weights_dtype": "float16" if fp16 else "float32"}
    return Checkpoint(checkpoint.config, weights, meta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a checkpoint's weights as the file to ship.")
    parser.add_argument("checkpoint", help="input .pt (a run's model.pt or checkpoint.pt)")
    parser.add_argument("out", help="output .pt")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16")
    args = parser.parse_args(argv)
    try:
        save_checkpoint(args.out, shipped(load_checkpoint(args.checkpoint), args.fp16))
    except CheckpointError as err:
        parser.exit(1, f"error: {err}\n")


if __name__ == "__main__":
    main()
