"""Plots and a self-contained HTML report for astra-eval results (matplotlib Agg, base64 images)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CURVE_STYLE = {
    "model": dict(color="tab:blue", marker="o", lw=2),
    "copy_last": dict(color="black", ls="--"),
    "shuffled_commands": dict(color="tab:orange", ls=":"),
    "zero_commands": dict(color="tab:green", ls=":"),
    "teacher_forced": dict(color="tab:purple", ls="-."),
    "offline_model": dict(color="tab:cyan", ls="--"),
}
ERROR_GAIN = 2  # abs error is shown amplified so small errors are visible
Y_LABELS = {
    "psnr": "PSNR (dB, from window-mean MSE)",
    "ssim": "SSIM",
    "link_iou": "link IoU (strict per-link masks)",
}
GEOMETRY_KEYS = ("link_iou", "ee_lost", "ee_hit_3px")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(metrics: dict[str, Any], key: str, path: Path) -> Path | None:
    """``key`` (one of ``Y_LABELS``) vs horizon for every variant that has it."""
    plt = _pyplot()
    horizons = metrics["horizons"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    drawn = 0
    for name, style in CURVE_STYLE.items():
        values = metrics.get(name, {}).get(key) if isinstance(metrics.get(name), dict) else None
        if values:
            ax.plot(horizons, values, label=name, **style)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("horizon (frames)")
    ax.set_ylabel(Y_LABELS[key])
    ax.set_title(f"{key.upper()} vs horizon ({metrics.get('windows', '?')} windows)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def strip_image(truth: np.ndarray, predicted: np.ndarray, max_columns: int = 8) -> np.ndarray:
    """Rows true | predicted | abs error (x ERROR_GAIN), columns = horizon steps. uint8 RGB."""
    horizon = len(truth)
    cols = np.unique(np.round(np.linspace(0, horizon - 1, min(max_columns, horizon))).astype(int))
    error = np.clip(np.abs(predicted.astype(np.int16) - truth.astype(np.int16)) * ERROR_GAIN, 0, 255)
    rows = [truth[cols], predicted[cols], error.astype(np.uint8)[cols]]
    size = truth.shape[1]
    pad = 2
    out = np.full((3 * (size + pad) - pad, len(cols) * (size + pad) - pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            out[r * (size + pad) : r * (size + pad) + size, c * (size + pad) : c * (size + pad) + size] = img
    return out


def plot_strip(example: dict[str, Any], path: Path, max_columns: int = 8) -> Path:
    plt = _pyplot()
    truth, predicted = example["truth"], example["predicted"]
    horizon = len(truth)
    cols = np.unique(np.round(np.linspace(0, horizon - 1, min(max_columns, horizon))).astype(int))
    image = strip_image(truth, predicted, max_columns)
    size = truth.shape[1]
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 1.2, 3.8), dpi=100)
    ax.imshow(image, interpolation="nearest")
    ax.set_yticks([(size + 2) * r + size / 2 for r in range(3)])
    ax.set_yticklabels(["true", "predicted", f"|error| x{ERROR_GAIN}"])
    ax.set_xticks([(size + 2) * c + size / 2 for c in range(len(cols))])
    ax.set_xticklabels([f"h{int(c) + 1}" for c in cols])
    ax.set_title(f"episode {example['episode']}, window start {example['start']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(metrics: dict[str, Any], names: Sequence[str]) -> str:
    horizons = metrics["horizons"]
    head = "".join(f"<th>h{h}</th>" for h in horizons)
    rows = []
    for name in names:
        entry = metrics.get(name)
        if not isinstance(entry, dict):
            continue
        for key in ("psnr", "ssim", "lpips"):
            values = entry.get(key)
            if values:
                fmt = "{:.2f}" if key == "psnr" else "{:.4f}"
                cells = "".join(f"<td>{fmt.format(v)}</td>" for v in values)
                rows.append(f"<tr><th>{html.escape(name)}</th><td>{key}</td>{cells}</tr>")
    return f"<table><tr><th>variant</th><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _geometry_table(geometry: dict[str, Any], horizons: Sequence[int]) -> str:
    head = "".join(f"<th>h{h}</th>" for h in horizons)
    rows = []
    for name, entry in geometry.items():
        if not isinstance(entry, dict):
            continue
        for key in GEOMETRY_KEYS:
            cells = "".join("<td>-</td>" if v is None else f"<td>{v:.3f}</td>" for v in entry.get(key, []))
            rows.append(f"<tr><th>{html.escape(name)}</th><td>{key}</td>{cells}</tr>")
    return (
        f"<p>Colour classifier against the recorded segmentation: link IoU "
        f"{geometry.get('classifier_iou')}; end effector visible (at least {geometry.get('ee_min_pixels')} "
        f"px) in {geometry.get('ee_visible_windows')} windows per horizon; hit = centroid within "
        f"{geometry.get('hit_radius_px')} px.</p>"
        f"<table><tr><th>variant</th><th>metric</th>{head}</tr>{''.join(rows)}</table>"
    )


def _ranking(metrics: dict[str, Any]) -> str:
    """One paragraph on ``metrics["ranking"]`` (``evaluation.ranking``), empty without it."""
    r = metrics.get("ranking")
    if not isinstance(r, dict):
        return ""
    if "error" in r:
        return f"<h2>Command ranking</h2><p>not computed: {html.escape(str(r['error']))}</p>"
    moving = "-" if r.get("top1_moving") is None else f"{r['top1_moving']:.3f}"
    return (
        "<h2>Command ranking</h2>"
        f"<p>The true command sequence against {r['k'] - 1} others, ranked by the MSE of the predicted "
        f"frame at h{r['horizon']} to the true one: top-1 {r['top1']:.3f} over {r['windows']} windows, "
        f"{moving} over the {r['moving_windows']} moving ones (chance {1 / r['k']:.3f}); mean rank "
        f"{r['mean_rank']:.2f} of {r['k']}.</p>"
    )


def write_report(metrics: dict[str, Any], examples: Sequence[dict[str, Any]], out_dir: Path) -> Path:
    """Write the PNGs and ``report.html`` into ``out_dir``; returns the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[tuple[Path, str]] = []
    for key in ("psnr", "ssim"):
        path = plot_curves(metrics, key, out_dir / f"{key}_vs_horizon.png")
        if path:
            images.append((path, f"{key} vs horizon"))
    geometry = metrics.get("geometry")
    if geometry:
        curves = {**geometry, "horizons": metrics["horizons"], "windows": metrics.get("windows")}
        path = plot_curves(curves, "link_iou", out_dir / "link_iou.png")
        if path:
            images.append((path, "link IoU vs horizon"))
    for i, example in enumerate(examples):
        images.append((plot_strip(example, out_dir / f"strip_{i}.png"), f"strip {i}"))
    latency = metrics.get("latency_ms", {})
    summary = {
        k: metrics.get(k)
        for k in ("backend", "model_id", "mode", "data", "windows", "episodes", "context", "horizon", "steps")
        if k in metrics
    }
    names = [n for n in CURVE_STYLE if n in metrics]
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in metrics.get("notes", []))
    body = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>astra-eval report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 5px;text-align:right}img{max-width:100%;margin:6px 0}"
        "pre{background:#f6f6f6;padding:8px}</style></head><body>",
        "<h1>astra-eval report</h1>",
        f"<pre>{html.escape(json.dumps(summary, indent=1))}</pre>",
        f"<p>Latency per predict call (ms): p50 {latency.get('p50')}, p99 {latency.get('p99')}, "
        f"calls {latency.get('count')}.</p>",
        "<p>PSNR per horizon comes from the MSE averaged over all windows. teacher_forced at horizon h "
        "is the one-step prediction after ingesting the context and the h-1 true frames before it.</p>",
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>Metrics</h2>",
        _table(metrics, names),
        *(["<h2>Geometry</h2>", _geometry_table(geometry, metrics["horizons"])] if geometry else []),
        _ranking(metrics),
        "<h2>Curves and examples</h2>",
    ]
    body += [f"<div>{_img_tag(p, alt)}</div>" for p, alt in images]
    body.append("</body></html>")
    report = out_dir / "report.html"
    report.write_text("\n".join(body), encoding="utf-8")
    return report
