"""astra-train: train an Astra world model on rosbag2 recordings or LeRobot datasets.

    astra-train --config config/train/kuka_small.yaml config/train/kuka_small/1_constant.yaml
    astra-train --data PATH [PATH ...] --preset small --out RUN_DIR (--minutes M | --steps N) [--resume]

A run's settings come from its dataclasses (``training/config.py``), then the ``--config`` YAML
files in order, then the flags given here; the run directory gets the resolved ``config.yaml``.
``--data`` takes rosbag2 folders and LeRobot roots (``astra_ros.data.sources``); a bag's modality
follows from its command topic unless ``--modality`` names it, LeRobot gives joint_position.
Several sources of different robots train
one model through the mixture of action experts. ``--device auto`` trains on CUDA when available.
Multi-process: ``torchrun --nproc_per_node N -m astra_ros.training.train ...`` (gloo on CPU, nccl
with one GPU per process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from astra_ros.data.bags import BagError, Episode
from astra_ros.data.lerobot import parse_episodes
from astra_ros.data.sources import open_episodes
from astra_ros.data.windows import split_episodes
from astra_ros.model.actions import JOINT_MODALITIES
from astra_ros.model.checkpoint import load_checkpoint
from astra_ros.model.config import AstraConfig
from astra_ros.model.robot_description import movable_joints
from astra_ros.training.config import (
    DataSettings,
    TrainConfig,
    add_arguments,
    config_from_args,
    model_config,
    to_dict,
)
from astra_ros.training.trainer import Trainer, TrainingError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-train", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", nargs="+", type=Path, metavar="YAML", help="config files merged in order; flags win"
    )
    add_arguments(p)
    return p


def check_config(config: TrainConfig) -> None:
    """What the dataclasses cannot say alone: required settings and one budget."""
    if config.out is None:
        raise TrainingError("out is not set; expected --out RUN_DIR or out: in a config file")
    if not config.data.paths:
        raise TrainingError("data.paths is empty; expected rosbag2 folders or LeRobot roots (--data)")
    s = config.train
    if s.steps is not None and s.minutes is not None:
        raise TrainingError(f"steps={s.steps} and minutes={s.minutes}; expected one budget")
    if s.steps is None and s.minutes is None:
        raise TrainingError("no budget; expected --steps N or --minutes M (train.steps / train.minutes)")


def check_state_joints(cfg: AstraConfig, joint_names: list[str]) -> None:
    """A model with ``kinematics`` reads the chain's joint positions from the state's first entries."""
    if cfg.kinematics is None:
        return
    chain = movable_joints(cfg.kinematics)
    if joint_names[: len(chain)] != chain:
        raise TrainingError(
            f"the data's joint_names {joint_names} do not start with the kinematics chain's joints {chain}; "
            "expected the robot state in chain order"
        )


def load_data(
    data: DataSettings, cfg: AstraConfig, window: int, seed: int
) -> tuple[list[Episode], list[Episode], dict[str, Any]]:
    min_frames = max(window, cfg.max_history + 1)
    if data.val_episodes:
        held = parse_episodes(data.val_episodes)
        overlap = sorted(set(held) & set(parse_episodes(data.episodes))) if data.episodes else held
        if overlap:
            raise TrainingError(
                f"val_episodes={data.val_episodes!r} and episodes={data.episodes!r} share {overlap}; "
                "expected --episodes naming the training episodes, disjoint from --val-episodes"
            )
    episodes, reports = open_episodes(data, cfg.image_size, min_frames=min_frames)
    if data.val_episodes:
        train = episodes
        held_out = replace(data, episodes=data.val_episodes)
        val, _ = open_episodes(held_out, cfg.image_size, min_frames=min_frames)
    else:
        train, val = split_episodes(episodes, data.val_fraction, seed)
    joint_names = next((e.joint_names for e in train if e.modality in JOINT_MODALITIES), ())
    meta = {
        "modalities": sorted({e.modality for e in train}),
        "joint_names": list(joint_names),
        "frame_period": float(np.median([r["frame_period"] for r in reports])),
        "data": reports,
        "train_episodes": len(train),
        "val_episodes": len(val),
        "command": "astra-train " + " ".join(sys.argv[1:]),
    }
    return train, val, meta


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        check_config(config)
        cfg = model_config(config)
        train, val, meta = load_data(config.data, cfg, config.train.window, config.train.seed)
        check_state_joints(cfg, meta["joint_names"])
        meta["config"] = to_dict(config)
        out = config.out
        out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        init = load_checkpoint(config.init) if config.init else None
        trainer = Trainer(cfg, train, val, out, config.train, meta, resume=config.resume, init=init)
        precision = "bf16 autocast" if trainer.bf16 else "fp32"
        print(f"astra-train: {trainer.device}, {precision} (precision {config.train.precision})")
        if trainer.rank == 0:
            (out / "config.yaml").write_text(yaml.safe_dump(meta["config"], sort_keys=False))
        final = trainer.train()
        if trainer.rank == 0:
            trainer.export_model(out / "model.pt")
            print(
                json.dumps(
                    {
                        "model": str(out / "model.pt"),
                        "steps": trainer.step,
                        "wall_seconds": round(time.time() - started, 1),
                        **final,
                    },
                    indent=2,
                )
            )
    except (TrainingError, BagError, ValueError) as exc:
        print(f"astra-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
