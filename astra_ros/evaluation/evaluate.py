"""astra-eval: score a world model on a recorded bag, offline through a backend or live through the node.

Offline (default): the backend is loaded in this process and every window of every episode is
replayed through it (see ``astra_ros.evaluation.replay``). ``--live``: the bag is played into a
running ``astra_world_model`` node (see ``astra_ros.evaluation.live``) and the PredictedFrames it
publishes are scored, so the deployed path is what gets measured.

Outputs ``OUT/metrics.json``, ``OUT/report.html`` and PNGs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from astra_ros.runtime.base import WorldModelBackend

COPY_LAST = "copy_last"  # --model value selecting the model-free CopyLastBackend
LPIPS_NOTE = (
    "lpips omitted: no LPIPS backbone with pretrained weights is installable offline "
    "(the lpips package downloads its torchvision backbone at run time)"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help=f"checkpoint (.pt), ONNX file with its sidecar, engine, or '{COPY_LAST}'")
    p.add_argument("--bag", required=True, help="rosbag2 directory (or file) to replay")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--image-topic", default="/camera/image_raw")
    p.add_argument("--command-topic", default=None, help="command topic (default: the bag's only one)")
    p.add_argument("--modality", default="joint_velocity")
    p.add_argument("--context", type=int, default=4, help="frames ingested before each rollout")
    p.add_argument("--horizon", type=int, default=16, help="frames rolled out per window")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--backend", default="auto", help="auto, torch, onnxruntime or tensorrt")
    p.add_argument("--context-noise", type=float, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--max-windows", type=int, default=None, help="sample this many windows evenly")
    p.add_argument("--size", type=int, default=64, help=f"frame size for --model {COPY_LAST}")
    p.add_argument("--seed", type=int, default=0, help="sampler seed and shuffled-commands pairing")
    p.add_argument("--examples", type=int, default=4, help="example strips in the report")
    p.add_argument("--live", action="store_true", help="score the astra_world_model node over ROS 2")
    p.add_argument("--live-timeout", type=float, default=30.0,
                   help="--live: seconds to wait for each PredictedFrames before giving up")
    p.add_argument("--no-progress", action="store_true")
    return p


def open_backend(model: str, backend: str = "auto", size: int = 64, **options: Any) -> WorldModelBackend:
    """``copy_last`` -> CopyLastBackend; anything else goes through the runtime loader."""
    if model == COPY_LAST:
        from astra_ros.runtime.copy_last import CopyLastBackend

        return CopyLastBackend(image_size=size)
    if not Path(model).exists():
        raise FileNotFoundError(f"--model {model!r} does not exist; expected a .pt, .onnx or engine file")
    from astra_ros.runtime.loader import load_backend

    return load_backend(model, backend=backend, **{k: v for k, v in options.items() if v is not None})


def read_episodes(args: argparse.Namespace, size: int) -> tuple[list[Any], Any]:
    from astra_ros.data.bags import read_bag

    if not Path(args.bag).exists():
        raise FileNotFoundError(f"--bag {args.bag!r} does not exist; expected a rosbag2 directory")
    return read_bag(
        args.bag, image_topic=args.image_topic, command_topic=args.command_topic,
        modality=args.modality, size=size,
    )


def base_metrics(args: argparse.Namespace, backend: WorldModelBackend, episodes: list[Any]) -> dict[str, Any]:
    return {
        "backend": backend.info.backend,
        "model_id": backend.info.model_id,
        "bag": str(args.bag),
        "modality": args.modality,
        "episodes": len(episodes),
        "context": args.context,
        "horizon": args.horizon,
        "steps": args.steps,
        "notes": [LPIPS_NOTE],
    }


def finite(obj: Any) -> Any:
    """Replace NaN/inf by None so metrics.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_outputs(metrics: dict[str, Any], examples: list[dict[str, Any]], out: Path) -> Path:
    from astra_ros.evaluation.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(finite(metrics), indent=2) + "\n")
    return write_report(metrics, examples, out)


def run_offline(args: argparse.Namespace) -> dict[str, Any]:
    from astra_ros.evaluation.replay import replay

    backend = open_backend(
        args.model, args.backend, args.size, steps=args.steps,
        context_noise=args.context_noise, guidance_scale=args.guidance_scale,
    )
    episodes, _report = read_episodes(args, backend.info.image_size)
    scores = replay(
        backend, episodes, args.modality, context=args.context, horizon=args.horizon,
        max_windows=args.max_windows, steps=args.steps, seed=args.seed, examples=args.examples,
        progress=not args.no_progress,
    )
    metrics = {**scores.metrics(), **base_metrics(args, backend, episodes), "mode": "offline"}
    report = write_outputs(metrics, scores.examples, Path(args.out))
    metrics["report"] = str(report)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("context", "horizon"):
        if getattr(args, name) < 1:
            print(f"astra-eval: error: --{name}={getattr(args, name)}; expected >= 1", file=sys.stderr)
            return 2
    try:
        if args.live:
            from astra_ros.evaluation.live import run_live

            metrics = run_live(args)
        else:
            metrics = run_offline(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # BagError is a ValueError
        print(f"astra-eval: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    model = metrics.get("model", {}).get("psnr", [])
    copy = metrics.get("copy_last", {}).get("psnr", [])
    print(f"astra-eval: {metrics['windows']} windows from {metrics['episodes']} episodes, "
          f"backend {metrics['backend']} ({metrics['model_id']})")
    if model and copy:
        print(f"  PSNR h1 {model[0]:.2f} dB (copy_last {copy[0]:.2f}), "
              f"h{len(model)} {model[-1]:.2f} dB (copy_last {copy[-1]:.2f})")
    lat = metrics.get("latency_ms", {})
    print(f"  latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    print(f"  wrote {out / 'metrics.json'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
