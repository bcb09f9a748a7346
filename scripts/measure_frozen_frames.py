"""Frozen frames on a LeRobot dataset: what each frame policy leaves for a world model to learn.

For each policy (frozen repeats kept or dropped, every frame or at least --period apart) prints the
frames kept, the share of zero-change targets (the next frame's pixels equal this frame's), the
spread of frame periods, and copy-last PSNR at horizons 1, 4 and 8 (window-averaged MSE). Writes the
table as JSON with --out.

    PYTHONPATH=$PWD .venv/bin/python scripts/measure_frozen_frames.py ../shared/data/g1_pick_bottle
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from astra_ros.data.lerobot import DEFAULT_CACHE_DIR, parse_episodes, read_lerobot
from astra_ros.evaluation.metrics import psnr_from_mse

HORIZONS = (1, 4, 8)


def measure(episodes: list, horizons: tuple[int, ...] = HORIZONS) -> dict[str, float]:
    out: dict[str, float] = {}
    for h in horizons:
        errors = [
            ((ep.frames[h:].astype(np.float64) - ep.frames[:-h]) / 255.0) ** 2
            for ep in episodes
            if len(ep) > h
        ]
        out[f"copy_last_psnr_h{h}"] = round(psnr_from_mse(np.concatenate(errors).mean()), 2)
    changed = np.concatenate([np.any(ep.frames[1:] != ep.frames[:-1], axis=(1, 2, 3)) for ep in episodes])
    periods = np.concatenate([np.diff(ep.stamps) / 1e6 for ep in episodes])
    out["zero_change_targets"] = round(float(1.0 - changed.mean()), 4)
    out["frame_period_ms_p10_p50_p90"] = [round(float(v), 1) for v in np.percentile(periods, [10, 50, 90])]
    out["frames"] = int(sum(len(ep) for ep in episodes))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--episodes", default=None)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--period", type=float, default=1 / 15)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    selection = parse_episodes(args.episodes) if args.episodes else None
    rows = []
    for frozen in ("keep", "drop"):
        for period in (None, args.period):
            episodes, report = read_lerobot(
                args.root,
                selection,
                size=args.size,
                frozen=frozen,
                frame_period=period,
                cache_dir=args.cache_dir,
            )
            rows.append({"frozen": frozen, "frame_period": period, **measure(episodes)})
    repeats = sum(e.repeats for e in report.episodes) / sum(e.rows for e in report.episodes)
    print(f"{len(report.episodes)} episodes, {100 * repeats:.1f} % of the frames are exact repeats\n")
    print(
        "| frozen | frame period | frames | zero-change | period p10/p50/p90 ms | copy-last h1/h4/h8 |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        period = "every frame" if r["frame_period"] is None else f">= {1000 * r['frame_period']:.1f} ms"
        psnr = " / ".join(f"{r[f'copy_last_psnr_h{h}']:.2f}" for h in HORIZONS)
        spread = "/".join(f"{v:g}" for v in r["frame_period_ms_p10_p50_p90"])
        zero = f"{100 * r['zero_change_targets']:.1f} %"
        print(f"| {r['frozen']} | {period} | {r['frames']} | {zero} | {spread} | {psnr} dB |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
