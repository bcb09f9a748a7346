"""Write a shipped model's training record (``engines/<name>.train.json``) from its runs.

    python scripts/record_training.py --model engines/astra_small.pt --runs runs/small_kuka \
        --eval eval_out/heldout/metrics.json --eval-command "astra-eval ..." --data-command "..." \
        --heldout-command "astra-record-sim ..." --out engines/astra_small.train.json

Each run directory is one stage (in order; ``--previous`` puts the stages of the record of the model
the first run started from before them): its ``model.pt`` metadata holds the command, resolved
configuration and the data it read; its ``log.csv`` the steps and optimisation time. The held-out
evaluation is astra-eval's ``metrics.json`` of the shipped ONNX. ``scripts/render_results.py``
renders the README's model card from this file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def stage(run: Path) -> dict[str, Any]:
    from astra_ros.model.checkpoint import load_checkpoint

    meta = load_checkpoint(run / "model.pt").meta
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    return {
        "run": str(run),
        "command": meta["command"],
        "config": meta["config"],
        "steps": int(rows[-1]["step"]),
        "optimisation_seconds": round(float(rows[-1]["elapsed_s"]), 1),
        "train_episodes": meta.get("train_episodes"),
        "val_episodes": meta.get("val_episodes"),
        "data": meta.get("data", []),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the shipped .pt (config inside)")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="the stages' run folders, in order")
    p.add_argument(
        "--previous",
        type=Path,
        help="the training record of the model the first run started from: its stages come first",
    )
    p.add_argument("--eval", type=Path, required=True, help="astra-eval metrics.json of the shipped ONNX")
    p.add_argument("--eval-command", required=True, help="the astra-eval command that wrote --eval")
    p.add_argument("--data-command", required=True, help="the command that recorded the training data")
    p.add_argument("--heldout-command", required=True, help="the command that recorded the held-out data")
    p.add_argument("--machine", default="", help="where it trained, in words")
    p.add_argument("--notes", default="")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from astra_ros.model.checkpoint import load_checkpoint

    shipped = load_checkpoint(args.model)
    earlier = json.loads(args.previous.read_text())["training"]["stages"] if args.previous else []
    stages = earlier + [stage(run) for run in args.runs]
    metrics = json.loads(args.eval.read_text())
    record = {
        "model": f"{args.model} (EMA weights, config inside) and its exported ONNX step graph with sidecar",
        "config": shipped.config.to_dict(),
        "data": {
            "train": args.data_command,
            "heldout": args.heldout_command,
            "bags_read": stages[-1]["data"],
        },
        "training": {"machine": args.machine, "stages": stages},
        "heldout_evaluation": {
            "command": args.eval_command,
            "windows": metrics["windows"],
            "episodes": metrics["episodes"],
            "backend": metrics["backend"],
            "model_id": metrics["model_id"],
            "psnr": {v: metrics[v]["psnr"] for v in ("model", "copy_last", "shuffled_commands")},
            "ssim": {v: metrics[v]["ssim"] for v in ("model", "copy_last")},
        },
        "notes": args.notes,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"record_training: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
