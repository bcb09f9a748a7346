"""``astra-bench train``: training steps per second of one recipe in fp32, with bf16 autocast and with
``torch.compile``, on this machine, as ratios from one run.

Takes astra-train's own arguments (``--config`` files and flags; the budget and ``out`` are ignored)
and builds one ``Trainer`` per variant on the same windows. After warm-up steps (compilation happens
there) the variants take turns, ``--steps`` optimisation steps each per round, for ``--rounds``
rounds; each variant's time per step is the median over its rounds. bf16 variants run only where
the CPU computes bf16 natively (AVX512-BF16 or AMX), unless ``--emulated-bf16``: elsewhere autocast
emulates it, far slower than fp32.

Prints a table with the CPU named and writes it with the command to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from astra_ros.runtime.cpu import cpu_summary
from astra_ros.training.config import config_from_args, model_config
from astra_ros.training.train import build_parser as train_parser
from astra_ros.training.train import load_data
from astra_ros.training.trainer import Trainer, TrainingError, native_bf16

VARIANTS = {  # name: (precision, compile)
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "fp32+compile": ("fp32", True),
    "bf16+compile": ("bf16", True),
}


def build_parser() -> argparse.ArgumentParser:
    p = train_parser()
    p.prog = "astra-bench train"
    p.description = __doc__.splitlines()[0]
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--warmup", type=int, default=8, help="steps per variant before timing (compiles)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps-per-round", type=int, default=5)
    p.add_argument("--emulated-bf16", action="store_true", help="time bf16 also without native support")
    p.add_argument("--results", type=Path, default=None, help="write the table as JSON here")
    return p


def measure(args: argparse.Namespace) -> dict[str, Any]:
    config = config_from_args(args)
    if not config.data.paths:
        raise TrainingError("data.paths is empty; expected --data or a --config with data.paths")
    cfg = model_config(config)
    settings = replace(config.train, steps=10**9, minutes=None, val_every=10**9, checkpoint_minutes=10**9)
    train, _, meta = load_data(config.data, cfg, settings.window, settings.seed)
    native = native_bf16()
    names = [v for v in args.variants if native or args.emulated_bf16 or VARIANTS[v][0] != "bf16"]
    with tempfile.TemporaryDirectory(prefix="astra_throughput_") as tmp:
        trainers = {}
        for name in names:
            precision, compiled = VARIANTS[name]
            run = Path(tmp) / name
            run.mkdir()
            variant = replace(settings, precision=precision, compile=compiled)
            trainers[name] = Trainer(cfg, train, [], run, variant, meta)
        for trainer in trainers.values():
            trainer.model.train()
            for _ in range(args.warmup):
                trainer.train_step()
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                for _ in range(args.steps_per_round):
                    trainer.train_step()
                seconds[name].append((time.perf_counter() - start) / args.steps_per_round)
    per_step = {name: statistics.median(s) for name, s in seconds.items()}
    base = per_step.get("fp32")
    rows = [
        {
            "variant": name,
            "seconds_per_step": round(t, 3),
            "samples_per_s": round(settings.batch_size / t, 2),
            "speedup_vs_fp32": round(base / t, 2) if base else None,
        }
        for name, t in per_step.items()
    ]
    return {
        "command": "astra-bench train " + " ".join(sys.argv[2:] if args.argv is None else args.argv),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_summary(),
        "native_bf16": native,
        "preset": config.preset,
        "model": config.model,
        "batch_size": settings.batch_size,
        "window": settings.window or cfg.max_history + 1,
        "objective": vars(settings.objective),
        "rounds": args.rounds,
        "steps_per_round": args.steps_per_round,
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    lines = [
        f"{cpu['model']}, {cpu['cores']} cores, class {cpu['class']} (native bf16: {result['native_bf16']}); "
        f"preset {result['preset']}, batch {result['batch_size']} x {result['window']} frames",
        "",
        "| variant | s / step | samples / s | x fp32 |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['variant']} | {r['seconds_per_step']} | {r['samples_per_s']} | {r['speedup_vs_fp32']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        result = measure(args)
    except (TrainingError, ValueError) as err:
        print(f"astra-bench train: error: {err}", file=sys.stderr)
        return 2
    print(render(result))
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
