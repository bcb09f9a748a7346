"""Write the shipped model's planner metrics (``docs/results/astra_small_planner.json``) from its runs.

    python scripts/record_planner.py --eval eval_out/heldout/metrics.json --eval-command "astra-eval ..." \
        --plan runs/plan_model/plan_bench.json --out docs/results/astra_small_planner.json

The held-out evaluation (astra-eval's ``metrics.json``: command ranking, link IoU, end effector, PSNR
and SSIM next to copy-last) and the plan benchmark (``plan_bench.json`` with the model, and the
oracle, stay and random planners run or reused) are checked against issue 25's targets;
``scripts/render_results.py`` renders the README's planner table from the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {
    "ranking_top1_moving": 0.75,
    "ee_lost_h8": 0.20,
    "planning_gain": 0.5,
    "psnr_h8_over_copy_last_db": 1.5,
}


def at(metrics: dict[str, Any], horizon: int) -> int:
    if horizon not in metrics["horizons"]:
        raise ValueError(f"--eval: horizon {horizon} missing; has {metrics['horizons']}")
    return metrics["horizons"].index(horizon)


def record(
    metrics: dict[str, Any], plan: dict[str, Any], eval_command: str, sidecar: dict[str, Any]
) -> dict[str, Any]:
    rank, geo = metrics["ranking"], metrics["geometry"]
    if "error" in rank:
        raise ValueError(f"--eval: the command ranking failed: {rank['error']}")
    h4, h8 = at(metrics, 4), at(metrics, 8)
    ssim_margin = [m - c for m, c in zip(metrics["model"]["ssim"], metrics["copy_last"]["ssim"], strict=True)]
    planners = plan["planners"]
    missing = {"model", "oracle", "stay"} - set(planners)
    if missing:
        raise ValueError(f"--plan: planners {sorted(missing)} missing; run or --reuse them")
    return {
        "what": "Planner metrics of the shipped model against issue 25's targets: command ranking, link "
        "geometry, PSNR and SSIM by astra-eval on the held-out bag; planning by astra-plan-bench.",
        "model_id": metrics["model_id"],
        "checkpoint_sha256": sidecar["checkpoint"]["sha256"],
        "eval_command": eval_command,
        "plan_command": plan["command"],
        "targets": TARGETS,
        "ranking": {
            k: rank[k] for k in ("k", "horizon", "top1_moving", "top1", "mean_rank", "moving_windows")
        }
        | {"chance": rank["chance_top1"]},
        "geometry": {
            "link_iou_h4_h8": {
                v: [geo[v]["link_iou"][h4], geo[v]["link_iou"][h8]] for v in ("model", "copy_last")
            },
            "ee_lost_h8": {v: geo[v]["ee_lost"][h8] for v in ("model", "copy_last")},
        },
        "quality": {
            "psnr_h8_db": {v: metrics[v]["psnr"][h8] for v in ("model", "copy_last")},
            "ssim_worst_margin_over_copy_last": min(ssim_margin),
            "ssim_horizons_below_copy_last": [
                h for h, d in zip(metrics["horizons"], ssim_margin, strict=True) if d < 0
            ],
        },
        "planning": {
            "goals": plan["goals"],
            "candidates": plan["settings"]["candidates"],
            "horizon": plan["settings"]["horizon"],
            "start_ee_distance_mean_m": plan["start_ee_distance_mean_m"],
            "planners": {
                name: {k: r[k] for k in ("closed_fraction_mean", "closed_fraction_ci95", "success_share")}
                | {"ee_distance_median_m": r["ee_distance_median_m"]}
                for name, r in planners.items()
            },
            "oracle_check": plan["oracle_check"],
            "gain": plan["planning_gain"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, required=True, help="astra-eval metrics.json of the shipped model")
    p.add_argument("--eval-command", required=True, help="the astra-eval command that wrote --eval")
    p.add_argument("--plan", type=Path, required=True, help="astra-plan-bench plan_bench.json of the model")
    p.add_argument(
        "--sidecar", type=Path, default=Path("engines/astra_small.json"), help="the model's sidecar"
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        result = record(
            json.loads(args.eval.read_text()),
            json.loads(args.plan.read_text()),
            args.eval_command,
            json.loads(args.sidecar.read_text()),
        )
    except (OSError, KeyError, ValueError) as err:
        print(f"record_planner: error: {err}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"record_planner: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
