"""Render README.md's model card and docs/screening.md's table from the results data, between the
results markers.

    python scripts/render_results.py           # rewrite the blocks
    python scripts/render_results.py --check   # exit 1 when a block is stale

Sources: ``engines/astra_small.train.json`` (training record), ``engines/astra_small.json`` (the
shipped ONNX's sidecar), and ``docs/results/``: ``astra_small_heldout.json`` (astra-eval's
metrics.json for the shipped model), ``astra_small_planner.json`` and ``benchmarks.json``. Results
recorded for another model than the shipped ONNX are refused: re-run the evaluation first.
docs/screening.md's table comes from ``docs/results/screening/*.json`` (``scripts/record_screening.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
SHOWN_HORIZONS = (1, 2, 4, 8, 16)


class ResultsError(ValueError):
    """A results file is missing, malformed, or describes another model than the shipped one."""


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: {err}") from err
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: top level is {type(data).__name__}; expected an object")
    return data


def check_model(results: dict[str, Any], name: str, sidecar: dict[str, Any]) -> None:
    """Refuse results whose model is not the shipped ONNX: its model_id names the ONNX's sha256
    prefix, or its ``checkpoint_sha256`` is the checkpoint the shipped ONNX was exported from (the same
    weights in an export of an older graph interface)."""
    model_id = str(results.get("model_id", ""))
    prefix = model_id.split("/")[0]
    if prefix and sidecar["onnx_sha256"].startswith(prefix):
        return
    if results.get("checkpoint_sha256") == sidecar["checkpoint"]["sha256"]:
        return
    raise ResultsError(
        f"{name}: model_id {model_id!r} is not the shipped {sidecar['onnx_file']} "
        f"(sha256 {sidecar['onnx_sha256'][:12]}) nor an export of its checkpoint; "
        f"re-measure and update {name}"
    )


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def model_lines(train: dict[str, Any], sidecar: dict[str, Any]) -> list[str]:
    c = train["config"]
    stages = train["training"]["stages"]
    data = train["data"]["bags_read"]
    minutes = sum(s["optimisation_seconds"] for s in stages) / 60
    return [
        f"`engines/astra_small.onnx` ({sidecar['precision']}, opset {sidecar['opset']}) and `.pt`: "
        f"{c['image_size']}x{c['image_size']} RGB in {c['patch_size']}x{c['patch_size']} patches, "
        f"width {c['width']}, depth {c['depth']}, history {c['max_history']} frames, "
        f"{c['sampling_steps']} denoising step; commands {', '.join(sidecar['meta']['modalities'])} "
        f"({len(sidecar['meta']['joint_names'])} joints) at a "
        f"{1 / sidecar['meta']['frame_period']:.0f} Hz frame rate"
        f"{', conditioned on the joint positions' if c.get('robot_state') else ''}"
        f"{' and where they put the links in the image' if c.get('kinematics') else ''}"
        f"{'; one pass per predicted frame' if c.get('fused_step') else ''}. "
        f"Trained in {len(stages)} stages, {sum(s['steps'] for s in stages)} steps, "
        f"{minutes:.0f} min on 2 CPU cores, on {sum(d['frames'] for d in data)} frames "
        f"({sum(d['episodes'] for d in data)} simulated KUKA episodes).",
    ]


def heldout_lines(heldout: dict[str, Any]) -> list[str]:
    horizons = heldout["horizons"]
    missing = [h for h in SHOWN_HORIZONS if h not in horizons]
    if missing:
        raise ResultsError(f"horizons {missing} missing; has {horizons}")
    idx = [horizons.index(h) for h in SHOWN_HORIZONS]

    def row(label: str, values: list[float], digits: int) -> list[str]:
        return [label] + [f"{values[i]:.{digits}f}" for i in idx]

    rows = [
        row("PSNR dB, model", heldout["model"]["psnr"], 2),
        row("PSNR dB, copy-last", heldout["copy_last"]["psnr"], 2),
        row("PSNR dB, shuffled commands", heldout["shuffled_commands"]["psnr"], 2),
        row("SSIM, model", heldout["model"]["ssim"], 3),
        row("SSIM, copy-last", heldout["copy_last"]["ssim"], 3),
    ]
    return [
        f"Held-out ({heldout['episodes']} episodes never seen in training, {heldout['windows']} "
        f"windows, context {heldout['context']}, {heldout['backend']}, `{heldout['command']}`):",
        "",
        *table(["horizon"] + [str(h) for h in SHOWN_HORIZONS], rows),
    ]


def planner_lines(planner: dict[str, Any]) -> list[str]:
    r, g, q, p, t = (planner[k] for k in ("ranking", "geometry", "quality", "planning", "targets"))
    iou, lost, psnr = g["link_iou_h4_h8"], g["ee_lost_h8"], q["psnr_h8_db"]
    plans, gain, check = p["planners"], p["gain"], p["oracle_check"]

    def closed(name: str) -> str:
        low, high = plans[name]["closed_fraction_ci95"]
        return f"{plans[name]['closed_fraction_mean']:+.2f} [{low:+.2f}, {high:+.2f}]"

    below = q["ssim_horizons_below_copy_last"]
    return [
        f"Planner metrics against issue 25's targets (same windows; `astra-plan-bench`, {p['goals']} goals, "
        f"{p['candidates']} candidates x {p['horizon']} frames, as in [Planning](#planning)):",
        "",
        *table(
            ["metric", "model", "reference", "target"],
            [
                [
                    f"true command first of {r['k']} (h{r['horizon']}, moving windows)",
                    f"{r['top1_moving']:.2f}",
                    f"chance {r['chance']:.3f}",
                    f">= {t['ranking_top1_moving']:.2f}",
                ],
                [
                    "link mask IoU h4 / h8",
                    " / ".join(f"{v:.3f}" for v in iou["model"]),
                    "copy-last " + " / ".join(f"{v:.3f}" for v in iou["copy_last"]),
                    ">= copy-last",
                ],
                [
                    "end effector lost at h8",
                    f"{lost['model']:.0%}",
                    f"copy-last {lost['copy_last']:.0%}",
                    f"<= {t['ee_lost_h8']:.0%}",
                ],
                [
                    "EE distance closed (mean, 95% CI)",
                    closed("model"),
                    f"oracle {closed('oracle')}, stay {plans['stay']['closed_fraction_mean']:+.2f}",
                    "-",
                ],
                [
                    "planning gain (model / oracle closed)",
                    f"{gain['gain']:+.2f} [{gain['ci95'][0]:+.2f}, {gain['ci95'][1]:+.2f}]" if gain else "-",
                    f"oracle check {'passed' if check and check['passed'] else 'FAILED'}",
                    f">= {t['planning_gain']:.1f}",
                ],
                [
                    "PSNR h8 dB",
                    f"{psnr['model']:.2f} ({psnr['model'] - psnr['copy_last']:+.2f})",
                    f"copy-last {psnr['copy_last']:.2f}",
                    f">= copy-last {t['psnr_h8_over_copy_last_db']:+.1f}",
                ],
                [
                    "SSIM vs copy-last, worst horizon",
                    f"{q['ssim_worst_margin_over_copy_last']:+.3f}",
                    f"below from h{below[0]}" if below else "never below",
                    ">= 0 at every horizon",
                ],
            ],
        ),
    ]


def speed_lines(bench: dict[str, Any]) -> list[str]:
    plan, node = bench["plan"], bench["node"]
    p50, today, ratio, gflops = plan["p50_s"], plan["today_p50_s"], plan["x_today"], plan["gflops"]

    def step(n: str) -> str:
        return (
            f"{p50[n]} s, {ratio[n]:.2f}x the {today[n]} s before; {gflops[n]} GFLOP/s "
            f"({gflops[n] / plan['peak_gflops']:.0%} of the matmul peak)"
        )

    return [
        f"Speed, {plan['date']}, {plan['machine']}, `auto` = {plan['auto']}, matmul peak "
        f"{plan['peak_gflops']} GFLOP/s ([logs](docs/benchmarks.md)):",
        "",
        *table(
            ["measure", "value"],
            [
                ["planning step, 64 candidates x 8 frames, p50", step("64")],
                ["planning step, 256 candidates x 8 frames, p50", step("256")],
                [
                    "live 8-frame prediction, p50",
                    f"{p50['1']} s, {ratio['1']:.2f}x the {today['1']} s before",
                ],
                [
                    "node, image stamp to published, 10/s, p50",
                    f"{min(node['publish_p50_ms']):.0f}-{max(node['publish_p50_ms']):.0f} ms, "
                    f"{node['predictions_per_s']}/s kept up",
                ],
            ],
        ),
    ]


def render_block(root: Path = ROOT) -> str:
    """The text between the markers (markers excluded), ending with a newline."""
    sidecar = load_json(root / "engines/astra_small.json")
    train = load_json(root / "engines/astra_small.train.json")
    heldout = load_json(root / "docs/results/astra_small_heldout.json")
    planner = load_json(root / "docs/results/astra_small_planner.json")
    bench = load_json(root / "docs/results/benchmarks.json")
    for name, results in [
        ("engines/astra_small.train.json heldout_evaluation", train["heldout_evaluation"]),
        ("docs/results/astra_small_heldout.json", heldout),
        ("docs/results/astra_small_planner.json", planner),
    ]:
        check_model(results, name, sidecar)
    sections = [
        ("engines/astra_small.train.json", lambda: model_lines(train, sidecar)),
        ("docs/results/astra_small_heldout.json", lambda: heldout_lines(heldout)),
        ("docs/results/astra_small_planner.json", lambda: planner_lines(planner)),
        ("docs/results/benchmarks.json", lambda: speed_lines(bench)),
    ]
    lines = ["<!-- rendered by scripts/render_results.py from engines/ and docs/results/; do not edit -->"]
    for name, section in sections:
        try:
            lines += [*section(), ""]
        except ResultsError as err:
            raise ResultsError(f"{name}: {err}") from err
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ResultsError(f"{name}: missing or malformed entry ({type(err).__name__}: {err})") from err
    return "\n".join(lines[:-1]) + "\n"


SCREENING_ORDER = ("baseline", "fused", "state", "kinematics", "kinematics_motion", "warmstart")


def screening_block(root: Path = ROOT) -> str:
    """docs/screening.md's table: one row per recorded lever (docs/results/screening/*.json)."""
    records = [load_json(p) for p in sorted((root / "docs/results/screening").glob("*.json"))]
    order = {name: i for i, name in enumerate(SCREENING_ORDER)}
    records.sort(key=lambda r: (order.get(r["lever"], len(order)), r["lever"]))
    rows = []
    for r in records:
        t, h = r["training"], r["heldout"]
        psnr, ssim = h["psnr"], h["ssim"]
        rank, geo = h.get("ranking"), h.get("geometry")
        plan = r.get("planning", {}).get("planners", {}).get("model")
        rows.append(
            [
                f"`{r['lever']}`",
                str(t["steps"]),
                f"{t['seconds_per_step_median']:.2f}",
                f"{psnr['model']['h8']:.2f} ({psnr['model']['h8'] - psnr['copy_last']['h8']:+.2f})",
                f"{psnr['model']['h4'] - psnr['shuffled_commands']['h4']:+.2f}",
                f"{ssim['model']['h8']:.3f} / {ssim['copy_last']['h8']:.3f}",
                f"{rank['top1_moving']:.2f}" if rank else "-",
                f"{geo['model']['link_iou']['h4']:.3f} / {geo['model']['link_iou']['h8']:.3f}"
                if geo
                else "-",
                f"{geo['model']['ee_lost']['h8']:.0%}" if geo else "-",
                f"{plan['closed_fraction_mean']:+.2f}" if plan else "-",
            ]
        )
    copy = (
        records[0]["heldout"]["geometry"]["copy_last"]
        if records and "geometry" in records[0]["heldout"]
        else None
    )
    lines = [
        "<!-- rendered by scripts/render_results.py from docs/results/screening/; do not edit -->",
        *table(
            [
                "lever",
                "steps",
                "s / step",
                "PSNR h8 dB (vs copy-last)",
                "h4 vs shuffled commands dB",
                "SSIM h8 model / copy-last",
                "ranking top-1 (moving)",
                "link IoU h4 / h8",
                "EE lost h8",
                "plan closed",
            ],
            rows,
        ),
    ]
    if copy is not None:
        lines += [
            "",
            f"Copy-last on the same windows: link IoU {copy['link_iou']['h4']:.3f} / "
            f"{copy['link_iou']['h8']:.3f}, end effector lost at h8 {copy['ee_lost']['h8']:.0%}; "
            "ranking chance 0.125.",
        ]
    return "\n".join(lines) + "\n"


def split_readme(text: str, name: str = "README.md") -> tuple[str, str, str]:
    """(before and BEGIN, the block, END and after); raises when the markers are not there once each."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ResultsError(f"{name}: expected one {BEGIN} followed by one {END}")
    head, rest = text.split(BEGIN)
    block, tail = rest.split(END)
    return head + BEGIN + "\n", block.removeprefix("\n"), END + tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when README.md's block is stale")
    p.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = p.parse_args(argv)
    stale = []
    for path, render in (
        (args.root / "README.md", render_block),
        (args.root / "docs/screening.md", screening_block),
    ):
        try:
            head, block, tail = split_readme(path.read_text(), path.name)
            fresh = render(args.root)
        except ResultsError as err:
            print(f"render_results: error: {err}", file=sys.stderr)
            return 2
        if block == fresh:
            continue
        if args.check:
            stale.append(path)
            continue
        path.write_text(head + fresh + tail)
        print(f"render_results: updated {path}")
    for path in stale:
        print(f"render_results: {path} is stale; run python scripts/render_results.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
