"""Record one screened lever as docs/results/screening/<name>.json: the commands that produced it, the
training run's cost and the held-out planner metrics (astra-eval's metrics.json, optionally
astra-plan-bench's plan_bench.json).

    python scripts/record_screening.py NAME --run runs/screen/NAME --eval runs/screen/NAME/eval \
        [--plan runs/screen/NAME/plan] --train-command "..." --eval-command "..." [--plan-command "..."]

``scripts/render_results.py`` renders every recorded lever into the table of docs/screening.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HORIZONS = (1, 4, 8)


def at_horizons(values: list[float], horizons: list[int]) -> dict[str, float]:
    return {f"h{h}": round(values[horizons.index(h)], 4) for h in HORIZONS if h in horizons}


def training_cost(run: Path) -> dict[str, Any]:
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    per_step = [float(b["elapsed_s"]) - float(a["elapsed_s"]) for a, b in zip(rows, rows[1:], strict=False)]
    config = yaml.safe_load((run / "config.yaml").read_text())
    return {
        "steps": int(rows[-1]["step"]),
        "optimisation_seconds": round(float(rows[-1]["elapsed_s"]), 1),
        "seconds_per_step_median": round(statistics.median(per_step), 3) if per_step else None,
        "final_loss_mean_last_50": round(statistics.mean(float(r["loss"]) for r in rows[-50:]), 6),
        "config": config,
    }


def eval_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    horizons = metrics["horizons"]
    out: dict[str, Any] = {
        "model_id": metrics["model_id"],
        "backend": metrics["backend"],
        "windows": metrics["windows"],
        "psnr": {
            v: at_horizons(metrics[v]["psnr"], horizons) for v in ("model", "copy_last", "shuffled_commands")
        },
        "ssim": {v: at_horizons(metrics[v]["ssim"], horizons) for v in ("model", "copy_last")},
    }
    ranking = metrics.get("ranking", {})
    if "top1_moving" in ranking:
        out["ranking"] = {
            k: ranking[k] for k in ("k", "horizon", "top1_moving", "top1", "mean_rank", "moving_windows")
        }
    geometry = metrics.get("geometry")
    if geometry is not None:
        gh = list(range(1, len(geometry["model"]["link_iou"]) + 1))
        out["geometry"] = {
            v: {
                "link_iou": at_horizons(geometry[v]["link_iou"], gh),
                "ee_lost": at_horizons(geometry[v]["ee_lost"], gh),
            }
            for v in ("model", "copy_last")
        }
    return out


def plan_metrics(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "goals": report["goals"],
        "settings": report["settings"],
        "planners": {
            name: {k: r[k] for k in ("closed_fraction_mean", "closed_fraction_ci95", "success_share")}
            for name, r in report["planners"].items()
        },
        "planning_gain": report["planning_gain"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--eval", type=Path, required=True)
    p.add_argument("--plan", type=Path, default=None)
    p.add_argument("--train-command", required=True)
    p.add_argument("--eval-command", required=True)
    p.add_argument("--plan-command", default=None)
    p.add_argument("--cpu", default="", help="the machine, in words")
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs/results/screening")
    args = p.parse_args(argv)
    record: dict[str, Any] = {
        "lever": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": args.cpu,
        "commands": {"train": args.train_command, "eval": args.eval_command},
        "training": training_cost(args.run),
        "heldout": eval_metrics(json.loads((args.eval / "metrics.json").read_text())),
    }
    if args.plan is not None:
        record["commands"]["plan"] = args.plan_command
        record["planning"] = plan_metrics(json.loads((args.plan / "plan_bench.json").read_text()))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"record_screening: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
