"""astra-train: train an Astra world model on rosbag2 recordings.

    astra-train --data PATH [PATH ...] --preset small --out RUN_DIR [--minutes M | --steps N] [--resume]

``--data`` takes rosbag2 folders and LeRobot dataset roots (``astra_ros.data.sources``). Each bag's
modality follows from its command topic (``/joint_commands`` -> joint_velocity, ``/cmd_vel`` ->
twist) unless ``--modality`` names them; LeRobot datasets give joint_position. Several sources of
different robots train one model through the mixture of action experts. Multi-process:
``torchrun --nproc_per_node N -m astra_ros.training.train ...`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.data.bags import BagError, Episode
from astra_ros.data.sources import add_data_arguments, open_episodes
from astra_ros.data.windows import split_episodes
from astra_ros.model.actions import JOINT_MODALITIES
from astra_ros.model.checkpoint import load_checkpoint
from astra_ros.model.config import PRESETS, AstraConfig
from astra_ros.training.objective import ObjectiveSettings
from astra_ros.training.trainer import Trainer, TrainingError, TrainSettings, native_bf16


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-train", description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoint.pt, log.csv, model.pt)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float)
    budget.add_argument("--steps", type=int)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument(
        "--init", type=Path, help="start from the weights of this model.pt or checkpoint.pt, fresh optimizer"
    )
    p.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    p.add_argument("--window", type=int, default=0, help="frames per window (default max_history + 1)")
    p.add_argument("--lr", type=float, default=TrainSettings.lr)
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default=TrainSettings.lr_schedule,
        help="after warm-up: constant, or cosine decay to --lr-min at --steps",
    )
    p.add_argument("--lr-min", type=float, default=TrainSettings.lr_min)
    p.add_argument(
        "--ema-decay", type=float, default=TrainSettings.ema_decay, help="EMA decay of the shipped weights"
    )
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val-every", type=int, default=TrainSettings.val_every)
    p.add_argument("--rollout-prob", type=float, default=ObjectiveSettings.rollout_prob)
    p.add_argument("--rollout-passes", type=int, default=ObjectiveSettings.rollout_passes)
    p.add_argument(
        "--full-noise-prob",
        type=float,
        default=ObjectiveSettings.full_noise_prob,
        help="share of targets trained at noise level 1, what a 1-step sampler sees (the rest: uniform)",
    )
    p.add_argument(
        "--structure-weight",
        type=float,
        default=ObjectiveSettings.structure_weight,
        help="weight of 1 - SSIM of the predicted frames, added to the loss (0: mean squared error only)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="CPU matmul precision; auto: bf16 autocast where the CPU has native bf16, else fp32",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="AstraConfig overrides")
    return p


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise TrainingError(f"--set {item!r}; expected KEY=VALUE")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    return out


def load_data(
    args: argparse.Namespace, cfg: AstraConfig
) -> tuple[list[Episode], list[Episode], dict[str, Any]]:
    episodes, reports = open_episodes(args, cfg.image_size, min_frames=max(args.window, cfg.max_history + 1))
    train, val = split_episodes(episodes, args.val_fraction, args.seed)
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
        cfg = AstraConfig.preset(args.preset, **parse_overrides(args.set))
        settings = TrainSettings(
            batch_size=args.batch_size,
            ema_decay=args.ema_decay,
            window=args.window,
            lr=args.lr,
            lr_schedule=args.lr_schedule,
            lr_min=args.lr_min,
            steps=args.steps,
            minutes=args.minutes,
            val_every=args.val_every,
            bf16=args.precision == "bf16" or (args.precision == "auto" and native_bf16()),
            seed=args.seed,
            objective=ObjectiveSettings(
                rollout_prob=args.rollout_prob,
                rollout_passes=args.rollout_passes,
                full_noise_prob=args.full_noise_prob,
                structure_weight=args.structure_weight,
            ),
        )
        print(f"astra-train: {'bf16 autocast' if settings.bf16 else 'fp32'} (--precision {args.precision})")
        train, val, meta = load_data(args, cfg)
        args.out.mkdir(parents=True, exist_ok=True)
        started = time.time()
        init = load_checkpoint(args.init) if args.init else None
        trainer = Trainer(cfg, train, val, args.out, settings, meta, resume=args.resume, init=init)
        final = trainer.train()
        if trainer.rank == 0:
            trainer.export_model(args.out / "model.pt")
            print(
                json.dumps(
                    {
                        "model": str(args.out / "model.pt"),
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
