"""Metrics: gaussian SSIM against scikit-image, PSNR from the window-mean MSE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astra_ros.evaluation.metrics import PSNR_CAP_DB, HorizonAccumulator, mse, psnr_from_mse, ssim


def _pair(seed: int, size: int = 32, noise: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_ssim_matches_scikit_image():
    from skimage import metrics

    for seed, size, noise in [(0, 64, 40), (1, 32, 5), (2, 17, 120)]:
        a, b = _pair(seed, size, noise)
        ref = metrics.structural_similarity(
            a / 255.0,
            b / 255.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_ssim_known_values_and_batching():
    a, b = _pair(3)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 255 - a) < 0.0  # anti-correlated
    batch = ssim(np.stack([a, a, b]), np.stack([a, b, b]))
    assert batch.shape == (3,)
    assert batch[0] == pytest.approx(1.0) and batch[2] == pytest.approx(1.0)
    assert batch[1] == pytest.approx(ssim(a, b))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:8, :8], b[:8, :8])
    with pytest.raises(ValueError, match="shape"):
        ssim(a, b[:16])


def test_psnr_from_mean_mse_not_mean_psnr():
    a, b = _pair(4)
    acc = HorizonAccumulator(horizon=1)
    acc.add(a[None], a[None])  # a paused window: perfect copy
    acc.add(b[None], a[None])
    want = 10 * math.log10(1.0 / ((0.0 + mse(b, a)) / 2))
    assert acc.result()["psnr"][0] == pytest.approx(want, abs=1e-3)
    mean_of_psnr = (PSNR_CAP_DB + psnr_from_mse(mse(b, a))) / 2
    assert acc.result()["psnr"][0] < mean_of_psnr - 10
    assert psnr_from_mse(0.0) == PSNR_CAP_DB


def test_accumulator_rejects_wrong_horizon():
    a, _ = _pair(5)
    acc = HorizonAccumulator(horizon=2)
    with pytest.raises(ValueError, match="horizon=2"):
        acc.add(a[None], a[None])
    with pytest.raises(ValueError, match="no windows"):
        acc.result()
