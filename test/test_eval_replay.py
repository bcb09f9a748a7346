"""Replay harness on synthetic episodes: window selection, pairing, identity-model sanity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from astra_ros.evaluation.replay import VARIANTS, replay, select_windows, shuffle_pairing
from astra_ros.runtime.copy_last import CopyLastBackend


@dataclass
class FakeEpisode:
    frames: np.ndarray
    commands: np.ndarray
    stamps: np.ndarray


def moving_episode(length: int, size: int = 16, seed: int = 0) -> FakeEpisode:
    """A bright square that moves one pixel per frame along x at a command-given speed."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((length, size, size, 3), np.uint8)
    frames[...] = rng.integers(0, 40, (1, size, size, 3), dtype=np.uint8)
    for t in range(length):
        x = (2 + t) % (size - 4)
        frames[t, 4:8, x : x + 4] = 220
    commands = np.full((length, 2), 1.0, np.float32)
    stamps = np.arange(length, dtype=np.int64) * 66_000_000
    return FakeEpisode(frames, commands, stamps)


def test_select_windows_all_and_sampled():
    wins = select_windows([10, 3, 7], context=2, horizon=3)
    assert [(w.episode, w.start) for w in wins] == [(0, s) for s in range(6)] + [(2, s) for s in range(3)]
    sampled = select_windows([100, 3, 40], context=4, horizon=4, max_windows=10)
    assert len(sampled) == 10
    per_ep = {e: [w.start for w in sampled if w.episode == e] for e in (0, 2)}
    assert len(per_ep[0]) == 5 and len(per_ep[2]) == 5  # split evenly over episodes with windows
    assert per_ep[0][0] == 0 and per_ep[0][-1] == 92  # evenly spaced over the whole episode
    small = select_windows([9, 40], context=4, horizon=4, max_windows=6)
    assert sum(w.episode == 0 for w in small) == 2 and len(small) == 6  # short episode gives its share away
    assert select_windows([5], 4, 4) == []
    with pytest.raises(ValueError, match="horizon=0"):
        select_windows([10], 2, 0)


def test_shuffle_pairing_is_a_fixed_seed_derangement():
    for n in (2, 3, 7, 50):
        pairing = shuffle_pairing(n, seed=3)
        assert sorted(pairing) == list(range(n))
        assert np.all(pairing != np.arange(n))
        assert np.array_equal(pairing, shuffle_pairing(n, seed=3))


def test_identity_model_scores_exactly_copy_last():
    episodes = [moving_episode(20, seed=0), moving_episode(14, seed=1)]
    scores = replay(
        CopyLastBackend(image_size=16), episodes, "joint_velocity", context=3, horizon=5, progress=False
    )
    m = scores.metrics()
    assert m["horizons"] == [1, 2, 3, 4, 5]
    assert m["windows"] == (20 - 8 + 1) + (14 - 8 + 1)
    for name in VARIANTS:
        assert len(m[name]["psnr"]) == 5 and len(m[name]["ssim"]) == 5
    for name in ("model", "shuffled_commands", "zero_commands"):
        assert m[name] == m["copy_last"]
    # an identity model teacher-forced copies the previous TRUE frame: h1 equals copy_last h1 and
    # later horizons stay at one-step error instead of growing
    assert m["teacher_forced"]["psnr"][0] == m["copy_last"]["psnr"][0]
    assert m["teacher_forced"]["psnr"][4] > m["copy_last"]["psnr"][4] + 1
    assert m["latency_ms"]["count"] == m["windows"]
    assert len(scores.examples) == 4


def test_copy_last_psnr_matches_numpy():
    ep = moving_episode(18, seed=2)
    scores = replay(
        CopyLastBackend(image_size=16), [ep], "joint_velocity", context=4, horizon=3, progress=False
    )
    errs = np.zeros(3)
    n = 0
    for s in range(18 - 7 + 1):
        last = ep.frames[s + 3].astype(np.float64) / 255
        for h in range(3):
            errs[h] += np.mean((ep.frames[s + 4 + h] / 255 - last) ** 2)
        n += 1
    want = 10 * np.log10(1 / (errs / n))
    assert np.allclose(scores.metrics()["copy_last"]["psnr"], want, atol=1e-3)


def test_episode_size_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"expected \(32, 32, 3\)"):
        replay(CopyLastBackend(image_size=32), [moving_episode(12)], "joint_velocity", 2, 2, progress=False)
