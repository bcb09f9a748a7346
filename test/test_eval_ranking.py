"""Command ranking (astra_ros.evaluation.ranking): copy-last scores chance exactly, a perfect
predictor 1.0, the tie rule, and the metrics.json entry of astra-eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_world import ToyOracle, episode

from astra_ros.evaluation.ranking import ranking, true_rank
from astra_ros.runtime.copy_last import CopyLastBackend


def test_ties_take_the_mean_rank_and_share_the_top():
    assert true_rank(np.array([0.1, 0.2, 0.3])) == (1.0, 1.0)
    assert true_rank(np.array([0.3, 0.2, 0.1])) == (3.0, 0.0)
    assert true_rank(np.array([0.1, 0.1, 0.1, 0.1])) == (2.5, 0.25)
    assert true_rank(np.array([0.1, 0.1, 0.2])) == (1.5, 0.5)
    assert true_rank(np.array([0.2, 0.1, 0.2])) == (2.5, 0.0)


def test_copy_last_ranks_at_chance_exactly_and_a_perfect_predictor_always_first():
    episodes = [episode(seed) for seed in range(3)]
    copy = ranking(
        CopyLastBackend(image_size=32), episodes, "twist", context=3, k=5, horizon=4, progress=False
    )
    chance = pytest.approx(1 / 5, rel=1e-12)  # every candidate ties: exactly 1/k up to float sums
    assert (
        copy["top1"] == chance and copy["top1_moving"] == chance and copy["mean_rank"] == pytest.approx(3.0)
    )
    assert copy["k"] == 5 and copy["horizon"] == 4 and copy["windows"] == 3 * (20 - 3 - 4 + 1)
    oracle = ToyOracle()
    for ep in episodes:
        for frame, position in zip(ep.frames, ep.positions, strict=True):
            oracle.know(frame, position)
    perfect = ranking(oracle, episodes, "twist", context=3, k=5, horizon=4, progress=False)
    few = ranking(oracle, episodes, "twist", context=3, k=5, horizon=4, max_windows=2, progress=False)
    assert few["windows"] == 2 and few["top1"] == 1.0  # distractors still come from every window
    assert perfect["top1"] == perfect["top1_moving"] == 1.0 and perfect["mean_rank"] == 1.0
    assert 0 < perfect["moving_windows"] <= perfect["windows"]


def test_too_few_distinct_sequences_is_an_error_naming_k():
    with pytest.raises(ValueError, match="k - 1 = 7"):
        ranking(
            CopyLastBackend(image_size=32),
            [episode(0, length=9)],
            "twist",
            context=2,
            k=8,
            horizon=4,
            progress=False,
        )


def test_astra_eval_writes_the_ranking(tmp_path):
    from astra_ros.data.record_sim import record
    from astra_ros.evaluation.evaluate import main

    bag = tmp_path / "kuka"
    record("kuka", episodes=2, steps=24, seed=3, out=bag, progress=False)
    out = tmp_path / "eval"
    common = [
        "--model",
        "copy_last",
        "--bag",
        str(bag),
        "--out",
        str(out),
        "--context",
        "3",
        "--horizon",
        "4",
    ]
    assert main([*common, "--ranking-k", "4", "--ranking-horizon", "6", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rank = metrics["ranking"]
    assert rank["k"] == 4 and rank["horizon"] == 6 and rank["top1"] == pytest.approx(0.25)
    assert rank["mean_rank"] == pytest.approx(2.5)
    assert rank["windows"] == 2 * (24 - 3 - 6 + 1) and set(rank) >= {"top1_moving", "moving_windows"}
    assert "Command ranking" in (out / "report.html").read_text()
