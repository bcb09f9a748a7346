"""Geometry of predicted KUKA frames: per-link masks from colour, link IoU and the end effector.

PSNR rewards blur; a planner needs the arm's links where they are. The links of the recorded arm
have distinct saturated colours (``astra_ros.sim.kuka.LINK_COLOURS``), and KUKA bags recorded by
the project carry the segmentation render (``Episode.segmentation``). A predicted frame has no
segmentation, so masks come from a colour classifier calibrated against the recorded pairs:

- ``LinkClassifier.calibrate``: per link, a Gaussian of its pixels' RGB (mean and covariance: a
  thin ellipsoid along the shading direction, widened by ``COVARIANCE_FLOOR`` so that colour noise
  of about 8 levels per channel still counts), and as acceptance radius the
  ``CALIBRATION_QUANTILE`` of its pixels' squared Mahalanobis distance, at least ``MIN_RADIUS``
  (the 99% quantile of a 3-D Gaussian).
- ``classify``: a pixel is the link of the nearest ellipsoid that accepts it; a pixel no ellipsoid
  accepts (floor, sky, a blend of colours in a blur) is no link (-1).

Truth and prediction go through the same classifier, so a prediction equal to the true frame
scores exactly 1; ``classifier_iou`` (classified true frames against the recorded segmentation)
says how well the classifier sees the arm. Per horizon, over windows:

- ``link_iou``: strict per-link mask IoU, averaged over the links present in either mask.
- ``ee_lost``: fraction of frames whose true end effector is visible (at least ``EE_MIN_PIXELS``
  px) where the prediction has fewer than ``EE_MIN_PIXELS`` px of it.
- ``ee_hit_3px``: fraction of the same frames where the predicted end-effector centroid lies
  within ``HIT_RADIUS_PX`` of the true one (a lost end effector is a miss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astra_ros.sim.kuka import END_EFFECTOR_ID, LINK_COLOURS

__all__ = ["GeometryScores", "LinkClassifier", "calibrate_from_episodes", "frame_geometry", "geometry_scores"]

LINK_IDS = tuple(range(len(LINK_COLOURS)))
CALIBRATION_QUANTILE = 0.995
MIN_CALIBRATION_PIXELS = 20
CALIBRATION_FRAMES = 256  # frames sampled evenly from the episodes for calibration
COVARIANCE_FLOOR = 64.0  # RGB variance added on the diagonal (levels^2): tolerated colour noise
MIN_RADIUS = 11.34  # chi-square, 3 degrees of freedom, 99%
EE_MIN_PIXELS = 3
HIT_RADIUS_PX = 3.0
VARIANTS = ("model", "copy_last", "shuffled_commands")


@dataclass(frozen=True)
class LinkClassifier:
    means: np.ndarray  # (K, 3) float64 RGB
    inverse_covariances: np.ndarray  # (K, 3, 3)
    radii: np.ndarray  # (K,) accepted squared Mahalanobis distance
    ids: tuple[int, ...] = LINK_IDS

    @classmethod
    def calibrate(cls, frames: np.ndarray, segmentation: np.ndarray) -> LinkClassifier:
        """Fit from (N, S, S, 3) uint8 frames and their (N, S, S) link ids (-1 none)."""
        frames, segmentation = np.asarray(frames), np.asarray(segmentation)
        if frames.shape[:-1] != segmentation.shape or frames.shape[-1] != 3:
            raise ValueError(
                f"frames {frames.shape} and segmentation {segmentation.shape}; expected (N, S, S, 3) "
                "frames and (N, S, S) link ids of the same frames"
            )
        pixels = frames.reshape(-1, 3).astype(np.float64)
        labels = segmentation.reshape(-1)
        means, inverses, radii = [], [], []
        for link in LINK_IDS:
            own = pixels[labels == link]
            if len(own) < MIN_CALIBRATION_PIXELS:
                raise ValueError(
                    f"segmentation has {len(own)} pixels of link {link}; expected at least "
                    f"{MIN_CALIBRATION_PIXELS} to calibrate its colour"
                )
            mean = own.mean(axis=0)
            inverse = np.linalg.inv(np.cov(own.T) + COVARIANCE_FLOOR * np.eye(3))
            diff = own - mean
            d2 = np.einsum("pi,ij,pj->p", diff, inverse, diff)
            means.append(mean)
            inverses.append(inverse)
            radii.append(max(float(np.quantile(d2, CALIBRATION_QUANTILE)), MIN_RADIUS))
        return cls(np.stack(means), np.stack(inverses), np.asarray(radii))

    def classify(self, images: np.ndarray) -> np.ndarray:
        """(..., S, S, 3) uint8 -> (..., S, S) int8 link ids, -1 no link."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[-1] != 3:
            raise ValueError(f"images are {images.dtype} {images.shape}; expected (..., S, S, 3) uint8")
        pixels = images.reshape(-1, 3).astype(np.float64)
        colours, inverse_index = np.unique(pixels, axis=0, return_inverse=True)  # few distinct colours
        diff = colours[:, None, :] - self.means[None]  # (U, K, 3)
        d2 = np.einsum("uki,kij,ukj->uk", diff, self.inverse_covariances, diff)
        d2 = np.where(d2 <= self.radii[None], d2, np.inf)
        best = np.argmin(d2, axis=1)
        ids = np.where(np.isfinite(d2[np.arange(len(colours)), best]), np.asarray(self.ids)[best], -1)
        return ids.astype(np.int8)[inverse_index.reshape(-1)].reshape(images.shape[:-1])


def calibrate_from_episodes(episodes: Sequence[Any]) -> tuple[LinkClassifier, float]:
    """Calibrate on up to ``CALIBRATION_FRAMES`` recorded (frame, segmentation) pairs spread over
    ``episodes``; also returns the classifier's mean link IoU against the segmentation on them."""
    pairs = [(i, t) for i, ep in enumerate(episodes) for t in range(len(ep.frames))]
    pick = np.unique(
        np.round(np.linspace(0, len(pairs) - 1, min(CALIBRATION_FRAMES, len(pairs)))).astype(int)
    )
    frames = np.stack([episodes[pairs[k][0]].frames[pairs[k][1]] for k in pick])
    segmentation = np.stack([episodes[pairs[k][0]].segmentation[pairs[k][1]] for k in pick])
    classifier = LinkClassifier.calibrate(frames, segmentation)
    classified = classifier.classify(frames)
    ious = [frame_geometry(c, s)["link_iou"] for c, s in zip(classified, segmentation, strict=True)]
    return classifier, float(np.nanmean(ious))


def _centroid(ids: np.ndarray, link: int) -> np.ndarray | None:
    rows, cols = np.nonzero(ids == link)
    return np.array([rows.mean(), cols.mean()]) if rows.size else None


def frame_geometry(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Link IoU (NaN when no link is in either), and for the end effector: visible in the truth
    (1/0), lost in the prediction (1/0) and hit within ``HIT_RADIUS_PX`` (1/0), from two (S, S)
    link-id maps."""
    ious = []
    for link in LINK_IDS:
        p, t = predicted == link, true == link
        union = np.count_nonzero(p | t)
        if union:
            ious.append(np.count_nonzero(p & t) / union)
    visible = np.count_nonzero(true == END_EFFECTOR_ID) >= EE_MIN_PIXELS
    lost = np.count_nonzero(predicted == END_EFFECTOR_ID) < EE_MIN_PIXELS
    hit = False
    if visible and not lost:
        a, b = _centroid(predicted, END_EFFECTOR_ID), _centroid(true, END_EFFECTOR_ID)
        hit = bool(np.linalg.norm(a - b) <= HIT_RADIUS_PX)
    return {
        "link_iou": float(np.mean(ious)) if ious else float("nan"),
        "ee_visible": float(visible),
        "ee_lost": float(visible and lost),
        "ee_hit": float(hit),
    }


@dataclass
class _Horizons:
    horizon: int
    iou_sum: np.ndarray = field(init=False)
    iou_count: np.ndarray = field(init=False)
    visible: np.ndarray = field(init=False)
    lost: np.ndarray = field(init=False)
    hit: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        for name in ("iou_sum", "iou_count", "visible", "lost", "hit"):
            setattr(self, name, np.zeros(self.horizon))

    def add(self, h: int, g: dict[str, float]) -> None:
        if not np.isnan(g["link_iou"]):
            self.iou_sum[h] += g["link_iou"]
            self.iou_count[h] += 1
        self.visible[h] += g["ee_visible"]
        self.lost[h] += g["ee_lost"]
        self.hit[h] += g["ee_hit"]

    def result(self) -> dict[str, list[float]]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "link_iou": np.round(self.iou_sum / self.iou_count, 4).tolist(),
                "ee_lost": np.round(self.lost / self.visible, 4).tolist(),
                "ee_hit_3px": np.round(self.hit / self.visible, 4).tolist(),
            }


class GeometryScores:
    """Per-horizon geometry of the predictions of ``VARIANTS``, fed one window at a time."""

    def __init__(self, classifier: LinkClassifier, horizon: int, classifier_iou: float = float("nan")):
        self.classifier, self.horizon, self.classifier_iou = classifier, horizon, classifier_iou
        self.variants = {name: _Horizons(horizon) for name in VARIANTS}

    def add(self, name: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        """``predicted`` and ``truth``: (H, S, S, 3) uint8 of one window; other variants are ignored."""
        if name not in self.variants:
            return
        pred_ids, true_ids = self.classifier.classify(predicted), self.classifier.classify(truth)
        for h, (p, t) in enumerate(zip(pred_ids, true_ids, strict=True)):
            self.variants[name].add(h, frame_geometry(p, t))

    def metrics(self) -> dict[str, Any]:
        first = next(iter(self.variants.values()))
        return {
            "classifier_iou": round(self.classifier_iou, 4),
            "ee_min_pixels": EE_MIN_PIXELS,
            "hit_radius_px": HIT_RADIUS_PX,
            "ee_visible_windows": first.visible.astype(int).tolist(),
            **{name: acc.result() for name, acc in self.variants.items()},
        }


def geometry_scores(episodes: Sequence[Any], horizon: int) -> GeometryScores | None:
    """Scores calibrated on ``episodes``' recorded segmentation; None when one has none."""
    if not episodes or any(getattr(ep, "segmentation", None) is None for ep in episodes):
        return None
    classifier, classifier_iou = calibrate_from_episodes(episodes)
    return GeometryScores(classifier, horizon, classifier_iou)
