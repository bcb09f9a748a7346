"""WindowDataset and split_episodes."""

from __future__ import annotations

import numpy as np
import pytest

from astra_ros.data.bags import Episode
from astra_ros.data.windows import WindowDataset, split_episodes
from astra_ros.model.actions import modality_id
from astra_ros.model.config import AstraConfig

CFG = AstraConfig.preset("tiny")


def episode(n: int, modality: str = "joint_velocity", width: int = 7, tag: int = 0) -> Episode:
    frames = np.zeros((n, CFG.image_size, CFG.image_size, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    commands = np.arange(n * width, dtype=np.float32).reshape(n, width) + 1000 * tag
    names = tuple(f"j{i}" for i in range(width)) if modality == "joint_velocity" else ()
    return Episode(frames, np.arange(n, dtype=np.int64) * 10**8, commands, modality, names, f"bag{tag}")


def test_windows_shapes_and_packing() -> None:
    eps = [episode(10), episode(5, "twist", 6, tag=1), episode(3, tag=2)]
    ds = WindowDataset(eps, window=4, cfg=CFG, stride=2)
    assert len(ds) == 4 + 1 + 0  # starts 0,2,4,6 | 0 | none
    item = ds[3]
    assert item["frames"].shape == (4, CFG.image_size, CFG.image_size, 3) and item["frames"].dtype == np.uint8
    assert item["actions"].shape == (4, CFG.action_dim) and item["actions"].dtype == np.float32
    assert item["action_mask"].dtype == np.float32
    assert int(item["episode"]) == 0 and int(item["start"]) == 6
    np.testing.assert_array_equal(item["frames"][:, 0, 0, 0], [6, 7, 8, 9])
    np.testing.assert_array_equal(item["actions"][:, :7], eps[0].commands[6:10])
    assert np.all(item["actions"][:, 7:] == 0)
    np.testing.assert_array_equal(item["action_mask"][0], [1] * 7 + [0] * (CFG.action_dim - 7))
    assert item["modality"].dtype == np.int64 and int(item["modality"]) == modality_id("joint_velocity")
    tw = ds[-1]
    assert int(tw["modality"]) == modality_id("twist") and int(tw["episode"]) == 1
    np.testing.assert_array_equal(tw["action_mask"][0, :7], [1] * 6 + [0])
    with pytest.raises(IndexError):
        ds[5]


def test_windows_reject_wrong_resolution() -> None:
    bad = Episode(
        np.zeros((4, 16, 16, 3), np.uint8),
        np.arange(4),
        np.zeros((4, 7), np.float32),
        "joint_velocity",
        (),
        "x",
    )
    with pytest.raises(ValueError, match=r"expected \(T, 32, 32, 3\)"):
        WindowDataset([bad], window=2, cfg=CFG)


def test_split_episodes_holds_out_whole_episodes() -> None:
    eps = [episode(4, tag=i) for i in range(10)]
    train, val = split_episodes(eps, 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2
    assert {e.source for e in train}.isdisjoint({e.source for e in val})
    assert split_episodes(eps, 0.2, seed=0)[1][0].source == val[0].source  # deterministic
    train, val = split_episodes(eps[:2], 0.01, seed=1)
    assert len(train) == 1 and len(val) == 1
    train, val = split_episodes(eps[:3], 0.99, seed=1)
    assert len(train) == 1 and len(val) == 2
    assert split_episodes(eps[:1], 0.5, seed=0) == (eps[:1], [])
