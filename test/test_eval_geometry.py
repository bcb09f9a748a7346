"""Geometry metrics: the colour classifier against the segmentation render, link IoU, the end effector."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from astra_ros.evaluation.geometry import (
    EE_MIN_PIXELS,
    GeometryScores,
    LinkClassifier,
    calibrate_from_episodes,
    frame_geometry,
    geometry_scores,
)
from astra_ros.sim.kuka import END_EFFECTOR_ID, KukaEnv


@pytest.fixture(scope="module")
def recorded() -> SimpleNamespace:
    """A moving arm (frames + segmentation) and a static pose with a clearly visible end effector."""
    env = KukaEnv(size=64)
    try:
        frames, segs = [], []
        for seed in range(6):
            env.reset(seed)
            for _ in range(8):
                env.step(np.random.default_rng(seed).uniform(-1.5, 1.5, 7), env.frame_period)
                frames.append(env.render())
                segs.append(env.segmentation())
        for seed in range(100):
            env.reset(seed)
            if np.count_nonzero(env.segmentation() == END_EFFECTOR_ID) >= 12:
                break
        static = env.render()
    finally:
        env.close()
    episode = SimpleNamespace(frames=np.stack(frames), segmentation=np.stack(segs))
    return SimpleNamespace(episode=episode, static=static)


def test_classifier_reproduces_the_segmentation_and_tolerates_colour_noise(recorded) -> None:
    classifier, classifier_iou = calibrate_from_episodes([recorded.episode])
    assert classifier_iou > 0.98
    frames, segs = recorded.episode.frames, recorded.episode.segmentation
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 6, frames.shape), 0, 255).astype(np.uint8)
    ious = [frame_geometry(p, t)["link_iou"] for p, t in zip(classifier.classify(noisy), segs, strict=True)]
    assert np.nanmean(ious) > 0.9
    # a uniform blend of every link colour with the floor is no link
    blend = ((frames.astype(np.float64) + np.array([71, 78, 95])) / 2).astype(np.uint8)
    blended = classifier.classify(blend)[segs >= 0]
    assert np.mean(blended == -1) > 0.9


def test_copy_last_of_a_static_arm_scores_one_and_a_blur_loses_the_end_effector(recorded) -> None:
    classifier, _ = calibrate_from_episodes([recorded.episode])
    scores = GeometryScores(classifier, horizon=4)
    static = np.repeat(recorded.static[None], 4, axis=0)
    scores.add("copy_last", static, static)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in static])
    scores.add("model", blurred, static)
    scores.add("zero_commands", blurred, static)  # not a geometry variant: ignored
    metrics = scores.metrics()
    assert metrics["copy_last"] == {"link_iou": [1.0] * 4, "ee_lost": [0.0] * 4, "ee_hit_3px": [1.0] * 4}
    assert metrics["model"]["ee_lost"] == [1.0] * 4 and metrics["model"]["ee_hit_3px"] == [0.0] * 4
    assert max(metrics["model"]["link_iou"]) < 0.5
    assert metrics["ee_visible_windows"] == [1] * 4 and "zero_commands" not in metrics


def test_end_effector_hit_radius_and_visibility() -> None:
    true = np.full((16, 16), -1, np.int8)
    true[4:6, 4:6] = END_EFFECTOR_ID  # 4 px, centroid (4.5, 4.5)
    near = np.roll(true, 3, axis=1)  # 3 px away: a hit, IoU 0
    far = np.roll(true, 4, axis=1)
    assert frame_geometry(near, true) == {"link_iou": 0.0, "ee_visible": 1.0, "ee_lost": 0.0, "ee_hit": 1.0}
    assert frame_geometry(far, true)["ee_hit"] == 0.0
    tiny = np.full((16, 16), -1, np.int8)
    tiny[0, : EE_MIN_PIXELS - 1] = END_EFFECTOR_ID
    assert frame_geometry(tiny, true)["ee_lost"] == 1.0
    assert frame_geometry(true, tiny)["ee_visible"] == 0.0  # not counted when the truth lacks it
    assert np.isnan(frame_geometry(np.full_like(true, -1), np.full_like(true, -1))["link_iou"])


def test_calibration_needs_every_link_and_bags_without_segmentation_have_no_geometry(recorded) -> None:
    frames, segs = recorded.episode.frames, recorded.episode.segmentation.copy()
    segs[segs == 3] = -1
    with pytest.raises(ValueError, match="0 pixels of link 3; expected at least"):
        LinkClassifier.calibrate(frames, segs)
    assert geometry_scores([SimpleNamespace(frames=frames, segmentation=None)], 4) is None
