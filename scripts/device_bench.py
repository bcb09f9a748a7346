"""GPU benchmarks for scripts/device_check.sh (runs from the source tree: torch, numpy and the
pure-Python packages the check carries; no simulator, no ROS, no bag reader).

    python scripts/device_bench.py env OUT.json
    python scripts/device_bench.py model OUT.json [--device cuda] [--presets small base]
    python scripts/device_bench.py train OUT.json [--device cuda] [--steps 40] [--compile]

``model``: per preset, the cached streaming step against recomputing the whole history, achieved
FLOP/s of one denoising step against this device's measured matmul peak (MFU) in fp32 and bf16
autocast, and predicted frames per second through the torch backend (horizon 8, 1 and 16
candidates). ``train``: steps/s of the default model's stage settings (config/train/kuka_small*.yaml)
on synthetic KUKA-shaped windows; the first two steps (warm-up, compilation) are not counted.
Every number in one output comes from one run; timings are medians over repeats.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))  # runtime_fixtures.synthetic_episodes


def timed_ms(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall ms of ``fn``, synchronising the device around each call."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            bf16=torch.cuda.is_bf16_supported(),
        )
    return info


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int) -> float:
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    ms = timed_ms(lambda: a @ b, device, repeats=10, warmup=3)
    return 2 * size**3 / (ms / 1000) / 1e9


def model_bench(preset: str, device: torch.device, repeats: int, batches: list[int]) -> dict[str, Any]:
    from astra_ros.bench import step_flops
    from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
    from astra_ros.model.config import AstraConfig
    from astra_ros.model.rope import rope_tables
    from astra_ros.runtime.base import model_info
    from astra_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    cfg = AstraConfig.preset(preset)
    model = AstraWorldModel(cfg).to(device).eval()
    s, c, a, history = cfg.image_size, cfg.channels, cfg.action_dim, cfg.max_history

    def acts(*lead: int) -> Actions:
        return Actions(
            torch.randn(*lead, a, device=device),
            torch.ones(*lead, a, device=device),
            torch.zeros(*lead, dtype=torch.long, device=device),
        )

    def step_inputs(batch: int) -> tuple:
        empty = model.empty_cache(batch, device)
        cache = KVCache(
            torch.randn_like(empty.keys), torch.randn_like(empty.values), torch.ones_like(empty.valid)
        )
        cos, sin = (torch.from_numpy(x).to(device) for x in rope_tables(np.full(batch, 1000), cfg.head_dim))
        frame = torch.randn(batch, c, s, s, device=device)
        return frame, frame, torch.full((batch,), 0.5, device=device), acts(batch), cache, cos, sin

    out: dict[str, Any] = {"preset": preset, "max_history": history, "params_m": 0.0, "rows": []}
    out["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    flops = step_flops(model, step_inputs(1))
    peaks = {"fp32": matmul_peak_gflops(device, torch.float32, 4096 if device.type == "cuda" else 512)}
    if device.type == "cuda":
        peaks["bf16"] = matmul_peak_gflops(device, torch.bfloat16, 8192)
    with torch.inference_mode():
        ctx = torch.randn(1, history, c, s, s, device=device)
        level = torch.full((1, history), 0.05, device=device)
        recompute = timed_ms(
            lambda: model(ctx, level, acts(1, history), ctx, level + 0.5, acts(1, history)), device, repeats
        )
        for precision in peaks:
            for batch in batches:
                inputs = step_inputs(batch)
                with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                    ms = timed_ms(lambda i=inputs: model.step(*i), device, repeats)
                achieved = flops * batch / (ms / 1000) / 1e9
                out["rows"].append(
                    {
                        "precision": precision,
                        "batch": batch,
                        "step_ms": round(ms, 3),
                        "gflops": round(achieved, 1),
                        "matmul_peak_gflops": round(peaks[precision], 1),
                        "mfu_of_measured_peak": round(achieved / peaks[precision], 4),
                        "recompute_ms_batch1": round(recompute, 3)
                        if batch == 1 and precision == "fp32"
                        else None,
                    }
                )
    out["cached_vs_recompute"] = round(recompute / out["rows"][0]["step_ms"], 2)  # fp32, batch 1
    out["gflop_per_step"] = round(flops / 1e9, 3)
    backend = TorchBackend(model, model_info("torch", {}, cfg, "bench"), device, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(history):
        backend.ingest(
            rng.integers(0, 256, (s, s, 3), dtype=np.uint8), np.zeros(7, np.float32), "joint_velocity"
        )
    frames_per_s = {}
    for batch in batches:
        actions = rng.normal(size=(batch, 8, 7)).astype(np.float32)
        ms = timed_ms(lambda x=actions: backend.predict(x, "joint_velocity"), device, max(3, repeats // 4), 1)
        frames_per_s[batch] = round(batch * 8 / (ms / 1000), 1)
    out["predicted_frames_per_s_horizon8"] = frames_per_s
    return out


def train_bench(
    device: str, steps: int, compile_network: bool, stage: str, preset: str | None
) -> dict[str, Any]:
    from runtime_fixtures import synthetic_episodes

    from astra_ros.training.config import config_from_args, load_yaml, model_config, to_dict
    from astra_ros.training.train import build_parser
    from astra_ros.training.trainer import Trainer

    files = [ROOT / "config/train/kuka_small.yaml", ROOT / f"config/train/kuka_small/{stage}.yaml"]
    load_yaml(files)  # fail early on a broken file
    flags = ["--config", *map(str, files), "--steps", str(steps), "--device", device, "--val-every", "100000"]
    flags += ["--precision", "bf16" if device == "cuda" else "auto", "--no-resume"]
    flags += ["--compile"] if compile_network else []
    flags += ["--preset", preset] if preset else []
    config = config_from_args(build_parser().parse_args(flags))
    cfg = model_config(config)
    episodes = synthetic_episodes(cfg.image_size, episodes=4, length=60)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, episodes, [], Path(tmp), config.train, {})
        trainer.train()
        rows = list(csv.DictReader(open(Path(tmp) / "log.csv")))
    elapsed = [float(r["elapsed_s"]) for r in rows]
    counted = len(elapsed) - 2
    return {
        "device": str(trainer.device),
        "bf16": trainer.bf16,
        "compile": compile_network,
        "stage": stage,
        "preset": config.preset,
        "batch_size": config.train.batch_size,
        "window": config.train.window,
        "steps": len(rows),
        "steps_per_s": round(counted / (elapsed[-1] - elapsed[1]), 3) if counted > 0 else None,
        "final_loss": float(rows[-1]["loss"]),
        "config": to_dict(config)["train"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("env", "model", "train"))
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="cuda")
    p.add_argument("--presets", nargs="+", default=["small", "base"])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="candidates per step / rollout")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--stage", default="3_rollout", help="stage file of config/train/kuka_small/")
    p.add_argument("--preset", default=None, help="override the stage's preset (dry runs: tiny)")
    args = p.parse_args()
    if args.what == "env":
        result: Any = environment()
    elif args.what == "model":
        device = torch.device(args.device)
        result = [model_bench(preset, device, args.repeats, args.batches) for preset in args.presets]
    else:
        result = train_bench(args.device, args.steps, args.compile, args.stage, args.preset)
    text = json.dumps(result, indent=1)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
