"""Augmentation of training windows: one transform per window, frames only, reproducible, off = as before."""

from __future__ import annotations

import numpy as np
import pytest

from astra_ros.data.augment import AUGMENTATIONS, Augmentation, WindowTransform, resample_matrix
from astra_ros.data.bags import Episode, JointStates
from astra_ros.data.windows import WindowDataset
from astra_ros.model.config import AstraConfig

CFG = AstraConfig.preset("tiny", robot_state=True)
SIZE = CFG.image_size
IDENTITY = WindowTransform(zoom=1.0, dy=0.0, dx=0.0, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0)


def smooth_frames(n: int, seed: int) -> np.ndarray:
    """Frames with structure at every scale (a few random blobs), so shifts and zooms show."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, SIZE // 4, SIZE // 4, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.uint8)


def episode(n: int = 12, seed: int = 0) -> Episode:
    frames = smooth_frames(n, seed)
    commands = np.random.default_rng(seed + 1).normal(0, 0.05, (n, 3)).astype(np.float32)
    states = JointStates(np.cumsum(commands, axis=0).astype(np.float64), np.full((n, 3), np.nan))
    stamps = np.arange(n, dtype=np.int64) * 66_666_667
    return Episode(frames, stamps, commands, "joint_position", ("a", "b", "c"), f"ep{seed}", states)


def dataset(augment: str) -> WindowDataset:
    return WindowDataset([episode(seed=0), episode(seed=5)], 5, CFG, augmentation=AUGMENTATIONS[augment])


def test_identity_transform_is_exact_and_the_resample_matrix_is_bilinear():
    frames = smooth_frames(3, 1)
    np.testing.assert_array_equal(IDENTITY(frames), frames)
    weights = resample_matrix(8, 1.0, 0.25)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert weights[2, 2] == pytest.approx(0.75) and weights[2, 3] == pytest.approx(0.25)


def test_shift_moves_the_content_and_zoom_enlarges_it():
    frames = smooth_frames(2, 2)
    moved = WindowTransform(1.0, 4.0, -4.0, 1.0, 1.0, 1.0, 0.0)(frames)
    np.testing.assert_array_equal(moved[:, : SIZE - 4, 4:], frames[:, 4:, : SIZE - 4])
    square = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    square[:, 12:20, 12:20] = 255
    zoomed = WindowTransform(1.25, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0)(square)
    assert (zoomed[0, :, :, 0] > 127).sum() == 100  # 8 px -> 10 px a side about the centre


def test_colour_map_keeps_grey_grey_and_scales_brightness():
    grey = np.full((2, SIZE, SIZE, 3), 100, np.uint8)
    tinted = WindowTransform(1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.05)(grey)  # saturation and hue only
    np.testing.assert_array_equal(tinted, grey)
    brighter = WindowTransform(1.0, 0.0, 0.0, 1.2, 1.0, 1.0, 0.0)(grey)
    assert np.all(brighter == 120)
    rgb = smooth_frames(2, 3)
    assert not np.array_equal(WindowTransform(1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.1)(rgb), rgb)


def test_same_generator_same_windows_and_each_window_its_own_draw():
    ds = dataset("light")
    indices = [0, 0, 3, 9]
    a = ds.windows(indices, np.random.default_rng(7))
    b = ds.windows(indices, np.random.default_rng(7))
    c = ds.windows(indices, np.random.default_rng(8))
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert any(not np.array_equal(x["frames"], z["frames"]) for x, z in zip(a, c, strict=True))
    assert not np.array_equal(a[0]["frames"], a[1]["frames"])  # the same window, two draws
    assert not np.array_equal(a[0]["frames"], ds[0]["frames"])


def test_one_transform_for_every_frame_of_a_window():
    still = np.repeat(smooth_frames(1, 4), 6, axis=0)  # a window whose frames are all the same image
    transform = AUGMENTATIONS["strong"].draw(np.random.default_rng(0))
    out = transform(still)
    assert not np.array_equal(out[0], still[0])
    for frame in out[1:]:
        np.testing.assert_array_equal(frame, out[0])
    # and the draw does not depend on the frames: the same generator state gives the same parameters
    again = AUGMENTATIONS["strong"].draw(np.random.default_rng(0))
    assert again == transform


def test_commands_states_and_masks_are_untouched():
    ds = dataset("strong")
    indices = [1, 4, 8]
    windows = ds.windows(indices, np.random.default_rng(1))
    for item, window in zip((ds[i] for i in indices), windows, strict=True):
        assert set(item) == set(window)
        for key in item:
            if key != "frames":
                np.testing.assert_array_equal(window[key], item[key])
        assert window["frames"].shape == item["frames"].shape and window["frames"].dtype == np.uint8


def test_off_is_bit_identical_and_draws_nothing():
    ds = dataset("none")
    assert ds.augmentation is None and not Augmentation().active
    rng = np.random.default_rng(3)
    windows = ds.windows([2, 5], rng)
    for i, window in zip([2, 5], windows, strict=True):
        for key, value in ds[i].items():
            np.testing.assert_array_equal(window[key], value)
    assert rng.random() == np.random.default_rng(3).random()
