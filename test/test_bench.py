"""The benchmarks' own arithmetic (their timings are printed, never asserted)."""

from __future__ import annotations

import numpy as np
import torch

from astra_ros.bench import step_flops
from astra_ros.model.astra import Actions, AstraWorldModel
from astra_ros.model.config import AstraConfig
from astra_ros.model.rope import rope_tables


def test_step_flops_count_attention_over_the_whole_cache():
    """Each extra cached frame adds its q.k and weights.v products in every layer, nothing else."""

    def flops(max_history: int) -> int:
        torch.manual_seed(0)
        cfg = AstraConfig.preset("tiny", max_history=max_history)
        model = AstraWorldModel(cfg).eval()
        s, a = cfg.image_size, cfg.action_dim
        frame = torch.zeros(1, 3, s, s)
        acts = Actions(torch.zeros(1, a), torch.ones(1, a), torch.zeros(1, dtype=torch.long))
        rope = (torch.from_numpy(x) for x in rope_tables(np.array([3]), cfg.head_dim))
        cache = model.empty_cache(1)
        cache.valid[:] = 1.0
        return step_flops(model, (frame, frame, torch.full((1,), 0.5), acts, cache, *rope)), cfg

    (short, cfg), (long, _) = flops(2), flops(6)
    n = cfg.tokens_per_frame
    per_key = 2 * 2 * n * cfg.width  # q.k and weights.v: 2 FLOPs per multiply-add, per query token
    assert long - short == cfg.depth * per_key * 4 * n


def test_interleaved_timing_alternates_blocks_so_a_slow_spell_hits_every_function():
    from astra_ros.bench import interleaved_median_ms

    calls: list[str] = []
    ms = interleaved_median_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 6, rounds=3)
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())
    assert "".join(calls) == "aaabbb" * 3  # 3 rounds: per function an untimed call, then 2 timed


def test_the_node_baseline_paces_the_bare_backend_like_the_node():
    """Paced: an ingest every 1/ingest_hz s and a prediction after every ingest_hz/predict_hz-th."""
    import time

    from astra_ros.ros.bench_node import _bare_backend_ms
    from astra_ros.ros.settings import COPY_LAST, Settings

    settings = Settings.from_values({"model_path": COPY_LAST, "joint_names": [f"j{i}" for i in range(7)]})
    started = time.monotonic()
    bare = _bare_backend_ms(settings, ingest_hz=40.0, predict_hz=10.0, seconds=0.5)
    assert time.monotonic() - started >= 0.45  # 20 ingests, one every 25 ms
    assert set(bare) == {"ingest_p50", "predict_p50", "paced_p50", "paced_p99"}
    assert 0 < bare["ingest_p50"] <= bare["paced_p50"] <= bare["paced_p99"]


def test_the_imagine_benchmark_measures_the_live_predictions_around_one_imagine():
    from astra_ros.ros.bench_node import _measure_imagine
    from astra_ros.ros.settings import COPY_LAST, Settings

    settings = Settings.from_values(
        {"model_path": COPY_LAST, "joint_names": [f"j{i}" for i in range(7)], "prediction_rate": 0.0}
    )
    row = _measure_imagine(settings, batch=4, horizon=8, chunk=2, rate=50.0, warm_s=0.3)
    assert row["chunk"] == 2 and row["queue_full"] == 0
    assert 0 <= row["max_pause_s"] <= row["imagine_s"]  # pauses tile the Imagine's time
    assert row["p50_before"] > 0  # frames before the Imagine were predicted (min_history 2)


def test_the_plan_benchmark_times_every_backend_against_todays_path_and_leaves_the_model_alone(capsys):
    """One run prints a row per backend and precision this machine runs, with ratios to "today" (a
    checkout run in a subprocess: here this one) and GFLOP/s; the int8 graph it needs goes into a copy,
    not next to the model."""
    import json
    from pathlib import Path

    from runtime_fixtures import tiny_onnx

    from astra_ros.bench import PLAN_VARIANTS, main
    from astra_ros.runtime.cpu import cpu_features

    onnx = tiny_onnx()
    before = sorted(p.name for p in onnx.parent.iterdir())
    sidecar = onnx.with_suffix(".json").read_text()
    root = Path(__file__).resolve().parents[1]
    argv = ["plan", "--onnx", str(onnx), "--candidates", "2", "3", "--horizon", "2", "--threads", "1"]
    argv += ["--repeats", "1", "--baseline", str(root), "--baseline-onnx", str(onnx), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in out.splitlines()
        if line.startswith("| ")
    }
    native = cpu_features().native_bf16
    want = [name for name, _, precision in PLAN_VARIANTS if native or precision != "bf16"]
    assert list(rows)[1:] == [*want, "today"]  # after the header
    assert rows["today"][2] == rows["today"][5] == "1.00"  # the ratios' reference, both batch sizes
    assert all(row[3].endswith("%)") for name, row in rows.items() if name != "backend / precision")
    assert "GFLOP per candidate" in out and "today: " in out
    assert sorted(p.name for p in onnx.parent.iterdir()) == before
    assert onnx.with_suffix(".json").read_text() == sidecar and not json.loads(sidecar)["graphs"]


def test_the_node_benchmark_reports_superseded_and_dropped_frames(capsys):
    from astra_ros.ros.bench_node import print_table, run_benchmark
    from astra_ros.ros.settings import COPY_LAST

    rows = run_benchmark(COPY_LAST, [20.0], 10.0, seconds=1.0)
    assert rows[0]["superseded"] == 0 and rows[0]["queue_full"] == 0 and rows[0]["predictions"] > 0
    print_table(rows, COPY_LAST)
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "8-frame prediction p50" in summary and "0 superseded and 0 dropped frames" in summary
