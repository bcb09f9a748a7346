"""``astra-bench`` (``python -m astra_ros.bench``): benchmarks that print tables (not tests).

- ``model``: cached streaming step vs full-context recompute (``AstraWorldModel.forward`` over the
  whole history) at history 4/8/16/32, and the achieved GFLOP/s of one denoising step (torch eager,
  and the same step exported to ONNX on ONNX Runtime) next to the machine's measured fp32 matmul peak.
- ``runtime``: per backend available here (torch eager, onnxruntime CPU; on a GPU machine torch CUDA,
  onnxruntime CUDA, TensorRT): ms per denoising step, ms per predicted frame at 1/4/8 steps,
  predicted frames per second, batch scaling for 1/4/16 candidates, ratios against torch eager.
- ``plan``: one planning step (``predict`` of 1/64/256 candidates x horizon 8) per backend and
  precision (ONNX Runtime fp32 and int8, the int8 graph added to a copy of the model when its sidecar
  has none; OpenVINO fp32 and bf16; torch bf16), p50 seconds, the ratio to today's path (``--baseline``:
  another checkout, run in a subprocess in the same rounds) and the achieved GFLOP/s against the
  machine's measured matmul peak in the row's precision.
- ``node``: the streaming session (the node's engine, no ROS) against the bare backend
  (``astra_ros.ros.bench_node``).
- ``train``: training steps per second of a recipe in fp32, bf16 autocast and with torch.compile
  (``astra_ros.training.throughput``).

Every number in a table comes from the same run. Timings are medians of repeated calls.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1, min_seconds: float = 0.0) -> float:
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def table(header: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# -- model ----------------------------------------------------------------------------------------


def matmul_peak_gflops(
    threads: int,
    size: int = 1024,
    repeats: int = 10,
    precision: str = "fp32",
    shape: tuple[int, int, int] | None = None,
) -> float:
    """GFLOP/s of torch's matmul on ``threads`` threads: ``size``^3, or ``shape`` (m, k, n), in fp32 or
    bf16 (2 FLOPs per multiply-add)."""
    import torch

    torch.set_num_threads(threads)
    m, k, n = shape or (size, size, size)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    ms = median_ms(lambda: a @ b, repeats, warmup=3)
    return 2 * m * k * n / (ms / 1000) / 1e9


def int8_peak_gops(threads: int, shape: tuple[int, int, int], repeats: int = 10) -> float:
    """GOP/s of ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32: the product of its
    dynamically quantized graphs) on ``threads`` threads."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from astra_ros.runtime.onnxruntime_backend import session_options

    m, k, n = shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "matmul_integer",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]),
            helper.make_tensor_value_info("b", TensorProto.INT8, [k, n]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(
        model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.integers(0, 255, (m, k), dtype=np.uint8),
        "b": rng.integers(-127, 127, (k, n), dtype=np.int8),
    }
    onnx.checker.check_model(model)
    ms = median_ms(lambda: session.run(None, feeds), repeats, warmup=3)
    return 2 * m * k * n / (ms / 1000) / 1e9


def step_flops(model: Any, inputs: tuple) -> int:
    """FLOPs of one ``model.step``: matmuls and attention (torch's counter has no formula for the CPU
    attention kernel and would count it as 0, so one is registered)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention(query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    formulas = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention}
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        model.step(*inputs)
    return int(counter.get_total_flops())


def onnxruntime_step_ms(model: Any, batches: list[int], threads: int, repeats: int) -> dict[int, float]:
    """ms of the same step exported to ONNX (ONNX Runtime CPU ``session.run``, cache full) per batch."""
    import onnxruntime as ort

    from astra_ros.export.onnx_export import DEFAULT_OPSET, export_onnx, random_inputs
    from astra_ros.runtime.onnxruntime_backend import session_options

    options = session_options(threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step.onnx"
        export_onnx(model, path, None, DEFAULT_OPSET)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = {}
    for batch in batches:
        feeds = random_inputs(model.cfg, batch)
        feeds["cache_valid"][:] = 1.0
        out[batch] = median_ms(lambda f=feeds: session.run(None, f), repeats, 2)
    return out


def run_model_bench(args: argparse.Namespace) -> str:
    import torch

    from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
    from astra_ros.model.config import AstraConfig
    from astra_ros.model.rope import rope_tables

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = AstraConfig.preset(args.preset, max_history=args.max_history)
    model = AstraWorldModel(cfg).eval()
    s, c, a = cfg.image_size, cfg.channels, cfg.action_dim

    def acts(*lead: int) -> Actions:
        return Actions(torch.randn(*lead, a), torch.ones(*lead, a), torch.zeros(*lead, dtype=torch.long))

    frame, level = torch.randn(1, c, s, s), torch.full((1,), 0.5)

    def full_cache(batch: int, history: int) -> KVCache:
        """Random keys/values with the first ``history`` ring slots valid."""
        empty = model.empty_cache(batch)
        valid = (torch.arange(cfg.max_history) < history).float().repeat(batch, 1)
        return KVCache(torch.randn_like(empty.keys), torch.randn_like(empty.values), valid)

    def rope(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(x) for x in rope_tables(np.full(batch, 1000), cfg.head_dim))

    rows = []
    step_ms_at = {}
    for history in args.histories:
        if history > cfg.max_history:
            rows.append([history, "-", "-", "-", f"> max_history {cfg.max_history}"])
            continue
        cache = full_cache(1, history)
        with torch.inference_mode():
            cached = median_ms(
                lambda cache=cache: model.step(frame, frame, level, acts(1), cache, *rope(1)), args.repeats, 2
            )
            ctx = torch.randn(1, history, c, s, s)
            lv = torch.full((1, history), 0.05)
            tgt = torch.randn(1, history, c, s, s)
            recompute = median_ms(
                lambda ctx=ctx, lv=lv, tgt=tgt, h=history: model(
                    ctx, lv, acts(1, h), tgt, lv + 0.5, acts(1, h)
                ),
                max(3, args.repeats // 3),
                1,
            )
        step_ms_at[history] = cached
        rows.append([history, cached, recompute, recompute / cached, ""])
    out = [
        f"## Model: cached step vs full-context recompute ({args.preset}, "
        f"max_history={cfg.max_history}, {args.threads} thread(s), batch 1)",
        "",
        table(["history", "cached step ms", "recompute ms", "speedup", "note"], rows),
        "",
    ]
    flops = step_flops(model, (frame, frame, level, acts(1), full_cache(1, cfg.max_history), *rope(1)))
    peak = matmul_peak_gflops(args.threads)
    exported = onnxruntime_step_ms(model, args.batches, args.threads, args.repeats)
    rows = []
    for batch in args.batches:
        cache_b, rope_b = full_cache(batch, cfg.max_history), rope(batch)
        fb, lb = frame.repeat(batch, 1, 1, 1), level.repeat(batch)
        with torch.inference_mode():
            ms = median_ms(
                lambda cb=cache_b, fb=fb, lb=lb, b=batch, r=rope_b: model.step(fb, fb, lb, acts(b), cb, *r),
                args.repeats,
                2,
            )
        gflop = flops * batch / 1e9
        for runtime, step_ms in (("torch eager", ms), ("onnxruntime", exported[batch])):
            achieved = gflop / (step_ms / 1000)
            rows.append([batch, runtime, step_ms, gflop, achieved, peak, f"{100 * achieved / peak:.0f}%"])
    out += [
        f"## Model: achieved GFLOP/s of one denoising step (cache full: {cfg.max_history} frames; "
        "FLOPs from torch.utils.flop_counter: matmuls + attention)",
        "",
        table(["batch", "runtime", "step ms", "GFLOP/step", "GFLOP/s", "peak GFLOP/s", "of peak"], rows),
        "",
    ]
    params = sum(p.numel() for p in model.parameters())
    out.append(f"params {params / 1e6:.2f} M; peak = median 1024x1024 fp32 matmul, {args.threads} thread(s)")
    return "\n".join(out)


# -- runtime --------------------------------------------------------------------------------------


def runtime_backends(onnx: Path, checkpoint: Path, threads: int) -> list[tuple[str, Callable[[], Any]]]:
    """(name, factory) for every backend this machine can run."""
    from astra_ros.runtime.availability import tensorrt_available
    from astra_ros.runtime.loader import load_backend

    found: list[tuple[str, Callable[[], Any]]] = [
        ("torch eager cpu", lambda: load_backend(str(checkpoint), "torch", threads=threads)),
        ("onnxruntime cpu", lambda: _ort(onnx, threads, ["CPUExecutionProvider"])),
    ]
    try:
        import torch

        if torch.cuda.is_available():
            found.append(("torch eager cuda", lambda: load_backend(str(checkpoint), "torch", device="cuda")))
    except ImportError:
        pass
    from astra_ros.runtime.onnxruntime_backend import available_providers

    if "CUDAExecutionProvider" in available_providers():
        found.append(
            (
                "onnxruntime cuda",
                lambda: _ort(onnx, threads, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
            )
        )
    if tensorrt_available():
        from astra_ros.runtime.sidecar import load_onnx_model
        from astra_ros.runtime.tensorrt_backend import TensorRTBackend

        for precision in ("fp32", "fp16"):
            found.append(
                (
                    f"tensorrt {precision}",
                    lambda p=precision: TensorRTBackend.from_onnx(
                        load_onnx_model(onnx), onnx.parent / "cache", p, max_batch=16
                    ),
                )
            )
    return found


def _ort(onnx: Path, threads: int, providers: list[str]) -> Any:
    from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend.from_onnx(onnx, threads=threads, providers=providers)


def interleaved_median_ms(
    fns: dict[str, Callable[[], Any]], repeats: int, rounds: int = 5
) -> dict[str, float]:
    """Median ms of each function over ``repeats`` calls, taken in ``rounds`` alternating blocks so that
    a slow or fast spell of the machine lands on every function, not on one side of a ratio. The first
    call of each block is not timed."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()  # untimed: the previous block's thread pool may still be spinning
            for _ in range(-(-repeats // rounds)):
                t = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(v) for name, v in times.items()}


def warm_step(backend: Any) -> Callable[[], Any]:
    """Fill ``backend``'s cache (the newest frame stays pending); -> one batch-1 ``_step`` against it."""
    cfg = backend.config
    rng = np.random.default_rng(0)
    for _ in range(cfg.max_history + 1):
        backend.ingest(
            rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8),
            rng.uniform(-1, 1, 7).astype(np.float32),
            "joint_velocity",
        )
    c, s, a = cfg.channels, cfg.image_size, cfg.action_dim
    x = rng.standard_normal((1, c, s, s)).astype(np.float32)
    args_step = (
        x,
        x,
        np.full(1, 0.5, np.float32),
        np.zeros((1, a), np.float32),
        np.ones((1, a), np.float32),
        np.zeros(1, np.int64),
        backend._alone,
        backend._rope(backend._alone),
        backend._no_state(1),
    )
    return lambda: backend._step(*args_step)


def measure_backend(backend: Any, args: argparse.Namespace) -> dict[str, float]:
    """ms per predicted frame at 1/4/8 denoising steps and per predicted time step for 1/4/16
    candidates (the batch sizes interleaved) of a warm ``backend``."""
    rng = np.random.default_rng(1)
    modality, horizon = "joint_velocity", args.horizon
    result = {}
    for steps in (1, 4, 8):
        plan = rng.uniform(-1, 1, (1, horizon, 7)).astype(np.float32)
        ms = median_ms(lambda p=plan, k=steps: backend.predict(p, modality, steps=k, seed=0), args.repeats, 1)
        result[f"frame@{steps}"] = ms / horizon
    plans = {f"batch{b}": rng.uniform(-1, 1, (b, horizon, 7)).astype(np.float32) for b in (1, 4, 16)}
    calls = {n: lambda p=plan: backend.predict(p, modality, steps=1, seed=0) for n, plan in plans.items()}
    result.update({name: ms / horizon for name, ms in interleaved_median_ms(calls, args.repeats).items()})
    return result


def prepare_models(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    """(onnx, checkpoint): given, or a random-weight model of ``--preset`` exported here."""
    if args.onnx and args.checkpoint:
        return Path(args.onnx), Path(args.checkpoint)
    import torch

    from astra_ros.export.onnx_export import export
    from astra_ros.model.astra import AstraWorldModel
    from astra_ros.model.checkpoint import Checkpoint, save_checkpoint
    from astra_ros.model.config import AstraConfig

    checkpoint = Path(args.checkpoint) if args.checkpoint else workdir / f"{args.preset}.pt"
    if not args.checkpoint:
        torch.manual_seed(0)
        cfg = AstraConfig.preset(args.preset)
        model = AstraWorldModel(cfg)
        with torch.no_grad():  # non-zero everywhere, so no kernel sees all-zero weights
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
        meta = {"modalities": ["joint_velocity"]}
        save_checkpoint(checkpoint, Checkpoint(cfg, model.state_dict(), meta=meta))
    onnx = workdir / "model.onnx"
    export(checkpoint, onnx, threads=args.threads, rollout_frames=4)
    return onnx, checkpoint


def run_runtime_bench(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="astra_bench_") as tmp:
        return _runtime_bench(args, Path(tmp))


def _runtime_bench(args: argparse.Namespace, workdir: Path) -> str:
    onnx, checkpoint = prepare_models(args, workdir)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    backends: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {}
    errors: dict[str, str] = {}
    for name, factory in runtime_backends(onnx, checkpoint, args.threads):
        try:
            backends[name] = factory()
            steps[name] = warm_step(backends[name])
        except Exception as err:  # a backend that fails here is reported, not fatal
            backends.pop(name, None)
            errors[name] = f"{type(err).__name__}: {err}"
    step_ms = interleaved_median_ms(steps, args.repeats * 3)  # backends alternate: the ratio is fair
    results: dict[str, dict[str, float]] = {}
    for name, backend in backends.items():
        try:
            results[name] = {"step": step_ms[name], **measure_backend(backend, args)}
        except Exception as err:  # a backend that fails here is reported, not fatal
            errors[name] = f"{type(err).__name__}: {err}"
        print(f"  measured {name}", file=sys.stderr, flush=True)
    base = results.get("torch eager cpu")
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                r["step"],
                r["frame@1"],
                r["frame@4"],
                r["frame@8"],
                1000 / r["frame@1"],
                r["batch1"],
                r["batch4"],
                r["batch16"],
                r["batch16"] / r["batch1"],
                base["step"] / r["step"] if base else "-",
                base["frame@1"] / r["frame@1"] if base else "-",
            ]
        )
    from astra_ros.model.config import AstraConfig
    from astra_ros.runtime.sidecar import load_onnx_model

    cfg: AstraConfig = load_onnx_model(onnx).config
    lines = [
        f"## Runtime: {args.preset if not args.onnx else onnx.name} (image {cfg.image_size}, "
        f"width {cfg.width}, depth {cfg.depth}, max_history {cfg.max_history}), {args.threads} thread(s), "
        f"cache full, horizon {args.horizon}",
        "",
        table(
            [
                "backend",
                "ms/step",
                "ms/frame 1 step",
                "ms/frame 4 steps",
                "ms/frame 8 steps",
                "frames/s (1 step)",
                "B=1 ms/frame",
                "B=4 ms/frame",
                "B=16 ms/frame",
                "B16/B1",
                "step speedup vs eager",
                "frame speedup vs eager",
            ],
            rows,
        ),
        "",
        "ms/step: one `_step` (batch 1) against a full cache, the backends measured in alternating "
        "blocks; ms/frame: predict() time / horizon for one "
        "candidate (denoising steps + the cache write of the predicted frame); B=N: N candidates in one "
        "predict() call, 1 step, ms per predicted time step (all N frames; the batch sizes alternate).",
    ]
    for name, err in errors.items():
        lines.append(f"- {name}: failed ({err})")
    return "\n".join(lines)


# -- plan -----------------------------------------------------------------------------------------

# (row name, backend, precision), measured in this order; "today" (--baseline) is timed beside them
PLAN_VARIANTS = (
    ("onnxruntime fp32", "onnxruntime", "fp32"),
    ("onnxruntime int8", "onnxruntime", "int8"),
    ("openvino fp32", "openvino", "fp32"),
    ("openvino bf16", "openvino", "bf16"),
    ("torch bf16", "torch", "bf16"),
)
PEAK_SHAPE = (4096, 256, 1024)  # (m, k, n): the widest products of a batch-64 step of a width-256 model

# Today's path, run from another checkout in a subprocess on its own copy of the model (its public
# API only: load_backend, ingest, predict), so that the ratios come from one run.
BASELINE_WORKER = """
import sys, numpy as np
from astra_ros.runtime.loader import load_backend
backend = load_backend(sys.argv[1], "onnxruntime", threads=int(sys.argv[2]))
joints, info = int(sys.argv[3]), backend.info
rng = np.random.default_rng(0)
for _ in range(info.max_history + 1):
    frame = rng.integers(0, 256, (info.image_size, info.image_size, 3), dtype=np.uint8)
    backend.ingest(frame, rng.uniform(-1, 1, joints).astype(np.float32), "joint_velocity")
print("ready", flush=True)
for line in sys.stdin:
    n, horizon, steps = map(int, line.split())
    plan = rng.uniform(-1, 1, (n, horizon, joints)).astype(np.float32)
    backend.predict(plan, "joint_velocity", steps=steps or None, seed=0)
    print("done", flush=True)
"""


class Baseline:
    """``BASELINE_WORKER`` in a subprocess: the checkout ``root`` (its code and its ``onnx``)."""

    def __init__(self, root: Path, onnx: Path, threads: int, joints: int):
        import subprocess

        env = {**os.environ, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BASELINE_WORKER, str(onnx), str(threads), str(joints)],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != word:
            raise RuntimeError(
                f"the baseline worker answered {line!r}; expected {word!r} (its stderr is above)"
            )

    def predict(self, candidates: int, horizon: int, steps: int | None) -> None:
        self.proc.stdin.write(f"{candidates} {horizon} {steps or 0}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        self._expect("done")

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=60)


def with_int8(onnx: Path, workdir: Path, threads: int) -> Path:
    """``onnx`` when its sidecar records an int8 graph, else a copy in ``workdir`` with one added the
    way ``astra-export --precisions fp32 int8`` adds it."""
    import json
    import shutil

    from astra_ros.export.onnx_export import int8_graph, sidecar_path, write_json_atomic
    from astra_ros.runtime.sidecar import load_onnx_model

    model = load_onnx_model(onnx)
    if "int8" in model.precisions:
        return onnx
    copy = workdir / onnx.name
    shutil.copy(onnx, copy)
    payload = json.loads(model.sidecar.read_text())
    payload.setdefault("graphs", {})["int8"] = int8_graph(copy, model.config, [1], threads)
    write_json_atomic(sidecar_path(copy), payload)
    return copy


def warm_backend(backend: Any, joints: int) -> None:
    """Fill ``backend``'s cache with random frames (the newest stays pending)."""
    cfg = backend.config
    rng = np.random.default_rng(0)
    for _ in range(cfg.max_history + 1):
        frame = rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        backend.ingest(frame, rng.uniform(-1, 1, joints).astype(np.float32), "joint_velocity")


def alternating_ms(
    calls: dict[str, Callable[[], Any]], warm: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, list[float]]:
    """ms of each call in each of ``rounds`` rounds; in each round every call runs once, right after
    its ``warm`` call (cheap, untimed: wakes its thread pool), so a slow spell of the shared machine
    lands on every row rather than on one side of a ratio."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            warm[name]()
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    return times


def predict_flops(config: Any, joints: int, horizon: int, steps: int) -> int:
    """FLOPs (matmuls and attention, torch's counter) of a one-candidate ``predict`` of ``horizon``
    frames from a full history, on the shapes the step graphs run: each frame's context write (the
    write-only graph) and its denoising steps, every candidate's own ring of min(horizon, history)
    slots, the history slots in the window. A planning step of N candidates costs N times this."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from astra_ros.model.astra import AstraWorldModel
    from astra_ros.runtime.base import ModelInfo
    from astra_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    info = ModelInfo("torch", "flops", config.image_size, config.max_history, ("joint_velocity",))
    backend = TorchBackend(AstraWorldModel(config), info, "cpu")
    warm_backend(backend, joints)
    with FlopCounterMode(display=False) as counter:
        backend.predict(np.zeros((1, horizon, joints), np.float32), "joint_velocity", steps=steps, seed=0)
    return int(counter.get_total_flops())


def tiled_predict_flops(config: Any, horizon: int, steps: int) -> int:
    """The same for the version-3 step graph (today's path): every frame's write and denoising steps
    attend to a per-candidate ring of max_history full slots, nothing shared."""
    import torch

    from astra_ros.model.astra import Actions, AstraWorldModel
    from astra_ros.model.rope import rope_tables

    model = AstraWorldModel(config).eval()
    s, a = config.image_size, config.action_dim
    frame = torch.zeros(1, config.channels, s, s)
    acts = Actions(torch.zeros(1, a), torch.ones(1, a), torch.zeros(1, dtype=torch.long))
    cache = model.empty_cache(1)
    cache.valid[:] = 1.0
    rope = tuple(torch.from_numpy(x) for x in rope_tables(np.array([config.max_history]), config.head_dim))
    level = torch.full((1,), 0.5)
    write = step_flops(model, (frame, frame, level, acts, cache, *rope, False))
    denoise = step_flops(model, (frame, frame, level, acts, cache, *rope))
    return horizon * (write + steps * denoise)


def plan_backends(
    args: argparse.Namespace, onnx: Path, workdir: Path, threads: int
) -> tuple[dict[str, Any], list[str]]:
    """The backends of ``PLAN_VARIANTS`` this machine runs (warm), and a note for each it does not."""
    from astra_ros.runtime.loader import load_backend
    from astra_ros.runtime.sidecar import load_onnx_model

    model = load_onnx_model(onnx)
    joints = len(model.meta.get("joint_names") or ()) or 7
    checkpoint = onnx.parent / str((model.payload.get("checkpoint") or {}).get("file", ""))
    backends, notes = {}, []
    for name, backend, precision in PLAN_VARIANTS:
        if args.variants and name not in args.variants:
            continue
        try:
            if backend == "torch":
                path = str(checkpoint)
            elif precision == "int8":
                path = str(with_int8(onnx, workdir, threads))
            else:
                path = str(onnx)
            loaded = load_backend(path, backend, precision=precision, threads=threads, steps=args.steps)
        except Exception as err:  # a row this machine cannot run is reported, not fatal
            notes.append(f"- {name}: not run ({type(err).__name__}: {err})")
            continue
        warm_backend(loaded, joints)
        backends[name] = loaded
    return backends, notes


def peaks(threads: int) -> dict[str, float]:
    """Measured matmul peaks (GFLOP/s, GOP/s for int8) per precision, ``PEAK_SHAPE``."""
    out = {p: matmul_peak_gflops(threads, precision=p, shape=PEAK_SHAPE) for p in ("fp32", "bf16")}
    out["int8"] = int8_peak_gops(threads, PEAK_SHAPE)
    return out


def run_plan_bench(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="astra_bench_plan_") as tmp:
        return _plan_bench(args, Path(tmp))


def _plan_bench(args: argparse.Namespace, workdir: Path) -> str:
    from astra_ros.runtime.sidecar import load_onnx_model

    onnx = Path(args.onnx)
    model = load_onnx_model(onnx)
    cfg = model.config
    joints = len(model.meta.get("joint_names") or ()) or 7
    steps = args.steps or cfg.sampling_steps
    threads = args.threads
    os.environ["OMP_NUM_THREADS"] = str(threads)
    backends, notes = plan_backends(args, onnx, workdir, threads)
    precisions = {name: backend.info.precision for name, backend in backends.items()}
    baseline = None
    if args.baseline:
        root = Path(args.baseline).resolve()
        baseline = Baseline(root, root / (args.baseline_onnx or args.onnx), threads, joints)
        precisions["today"] = "fp32"
    rng = np.random.default_rng(1)
    one = rng.uniform(-1, 1, (1, 1, joints)).astype(np.float32)

    def predict(backend: Any, plan: np.ndarray) -> Callable[[], Any]:
        return lambda: backend.predict(plan, "joint_velocity", steps=steps, seed=0)

    warm = {name: predict(b, one) for name, b in backends.items()}
    if baseline is not None:
        warm["today"] = lambda: baseline.predict(1, 1, steps)
    times: dict[int, dict[str, list[float]]] = {}
    try:
        for n in tqdm(args.candidates, desc="plan: candidates", disable=args.no_progress):
            plan = rng.uniform(-1, 1, (n, args.horizon, joints)).astype(np.float32)
            calls = {name: predict(b, plan) for name, b in backends.items()}
            if baseline is not None:
                calls["today"] = lambda n=n: baseline.predict(n, args.horizon, steps)
            times[n] = alternating_ms(calls, warm, args.repeats)
    finally:
        if baseline is not None:
            baseline.close()
    shared = predict_flops(cfg, joints, args.horizon, steps)
    flops = {name: shared for name in precisions}
    if baseline is not None:
        flops["today"] = tiled_predict_flops(cfg, args.horizon, steps)
    peak = peaks(threads)
    reference = "today" if baseline is not None else next(iter(backends), None)
    header = ["backend / precision"]
    for n in args.candidates:
        header += [f"{n} cand. p50 s", f"{n}: x {reference}", f"{n}: GFLOP/s (of peak)"]
    rows = []
    for name in times[args.candidates[0]]:
        row: list[Any] = [name]
        for n in args.candidates:
            p50 = statistics.median(times[n][name]) / 1000
            ratio = statistics.median(times[n][reference]) / 1000 / p50
            achieved = n * flops[name] / p50 / 1e9
            row += [
                f"{p50:.3f}",
                f"{ratio:.2f}",
                f"{achieved:.0f} ({100 * achieved / peak[precisions[name]]:.0f}%)",
            ]
        rows.append(row)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"## Plan: one planning step = predict() of N candidates x horizon {args.horizon}, {steps} denoising "
        f"step(s), {onnx.name} (width {cfg.width}, depth {cfg.depth}, max_history {cfg.max_history}), "
        f"{threads} thread(s), history full; p50 of {args.repeats} alternating rounds; load average "
        f"{load:.2f} when it ended",
        "",
        table(header, rows),
        "",
        f"x {reference}: its p50 / the row's (above 1: faster). GFLOP/s: FLOPs of the graphs as run "
        f"(torch's count of matmul and attention FLOPs: {shared / 1e9:.3f} GFLOP per candidate"
        + (f", today's tiled graph {flops['today'] / 1e9:.3f}" if baseline is not None else "")
        + ") / p50, against the "
        f"measured matmul peak in the row's precision ({PEAK_SHAPE[0]}x{PEAK_SHAPE[1]} @ "
        f"{PEAK_SHAPE[1]}x{PEAK_SHAPE[2]}, {threads} thread(s)): fp32 {peak['fp32']:.0f}, bf16 "
        f"{peak['bf16']:.0f} GFLOP/s (torch), int8 {peak['int8']:.0f} GOP/s (ONNX Runtime MatMulInteger).",
    ]
    if baseline is not None:
        lines.append(f"today: {args.baseline} (onnxruntime fp32, its own export), in a subprocess.")
    return "\n".join(lines + notes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astra-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("model", help="cached step vs recompute; GFLOP/s vs matmul peak")
    m.add_argument("--preset", default="small")
    m.add_argument("--max-history", type=int, default=32)
    m.add_argument("--histories", type=int, nargs="+", default=[4, 8, 16, 32])
    m.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    m.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    m.add_argument("--repeats", type=int, default=15)
    r = sub.add_parser("runtime", help="per-backend step / frame / batch timings")
    r.add_argument("--preset", default="small", help="random-weight model exported when --onnx is not given")
    r.add_argument("--onnx", default=None, help="exported model (needs --checkpoint for the torch rows)")
    r.add_argument("--checkpoint", default=None)
    r.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    r.add_argument("--horizon", type=int, default=4)
    r.add_argument("--repeats", type=int, default=5)
    pl = sub.add_parser("plan", help="planning-step time per backend and precision, vs today's path")
    pl.add_argument(
        "--onnx", default="engines/astra_small.onnx", help="exported model (int8 added to a copy)"
    )
    pl.add_argument("--candidates", type=int, nargs="+", default=[1, 64, 256])
    pl.add_argument("--horizon", type=int, default=8)
    pl.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    pl.add_argument("--threads", type=int, default=2, help="inference threads of every row")
    pl.add_argument("--repeats", type=int, default=3, help="alternating rounds per measurement")
    pl.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help=f"rows to run (default all): {[v[0] for v in PLAN_VARIANTS]}",
    )
    pl.add_argument(
        "--baseline",
        default=None,
        help="a checkout of today's code (e.g. `git worktree add /tmp/today main`)",
    )
    pl.add_argument("--baseline-onnx", default=None, help="its model, relative to it (default: --onnx)")
    pl.add_argument("--no-progress", action="store_true")
    sub.add_parser("node", help="streaming session latency (astra_ros.ros.bench_node)", add_help=False)
    sub.add_parser("train", help="training steps/s per precision (training.throughput)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["node"]:
        from astra_ros.ros.bench_node import main as node_main

        return node_main(argv[1:])
    if argv[:1] == ["train"]:
        from astra_ros.training.throughput import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(np.atleast_1d(args.threads))))
    command = f"astra-bench {' '.join(argv)}"
    run = {"model": run_model_bench, "runtime": run_runtime_bench, "plan": run_plan_bench}[args.command]
    text = run(args)
    print(f"`{command}`\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
