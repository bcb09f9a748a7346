"""Frame metrics for world-model evaluation: PSNR from the window-averaged MSE, gaussian SSIM.

Torch-free. Images are ``(..., S, S, 3)`` uint8 RGB, scored on values scaled to [0, 1].

PSNR per horizon is computed from the MSE averaged over all windows, not by averaging
per-window PSNR: a paused window (nothing moves) gives copy-last an MSE of ~0 and a PSNR near
the cap, which would dominate a per-window average.
"""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP_DB = 100.0
"""PSNR for an MSE of (almost) zero: ``10 * log10(1 / 1e-10)``; keeps metrics.json finite."""

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # kernel radius int(3.5 * 1.5 + 0.5) = 5: an 11x11 window, as in Wang et al. 2004
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float64 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8; got dtype {images.dtype}")
    return images.astype(np.float64) / 255.0


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared error of two uint8 images (or stacks) on the [0, 1] scale."""
    _check_pair(pred, true)
    return float(np.mean((to_unit(pred) - to_unit(true)) ** 2))


def psnr_from_mse(value: float) -> float:
    """PSNR in dB for images in [0, 1], capped at ``PSNR_CAP_DB``."""
    return min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / max(float(value), 1e-10)))


def gaussian_kernel(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The normalised 1D SSIM window (11 taps at the defaults)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering over the two image axes of ``(N, S, S, C)``."""
    k = len(kernel)
    rows = x.shape[1] - k + 1
    cols = x.shape[2] - k + 1
    out = np.zeros((x.shape[0], rows, x.shape[2], x.shape[3]))
    for i, w in enumerate(kernel):
        out += w * x[:, i : i + rows]
    result = np.zeros((x.shape[0], rows, cols, x.shape[3]))
    for i, w in enumerate(kernel):
        result += w * out[:, :, i : i + cols]
    return result


def ssim(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Gaussian-window SSIM (Wang et al. 2004) per image, averaged over channels.

    ``(..., S, S, 3)`` uint8 -> ``(...)`` float64. Sigma 1.5 (11x11 window), K1 0.01, K2 0.03,
    data range 1, population covariance, mean over the pixels whose window lies inside the
    image. Equals ``skimage.metrics.structural_similarity(..., channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``.
    """
    _check_pair(pred, true)
    lead = pred.shape[:-3]
    size = pred.shape[-3:]
    kernel = gaussian_kernel()
    if min(size[0], size[1]) < len(kernel):
        raise ValueError(f"SSIM needs images of at least {len(kernel)}x{len(kernel)}; got {size[:2]}")
    x = to_unit(pred).reshape((-1,) + size)
    y = to_unit(true).reshape((-1,) + size)
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    mu_x = _filter_valid(x, kernel)
    mu_y = _filter_valid(y, kernel)
    var_x = _filter_valid(x * x, kernel) - mu_x * mu_x
    var_y = _filter_valid(y * y, kernel) - mu_y * mu_y
    cov = _filter_valid(x * y, kernel) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    per_image = (num / den).mean(axis=(1, 2, 3))  # mean over pixels, then channels
    return per_image.reshape(lead)


def _check_pair(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"predicted frames have shape {pred.shape}; expected the true frames' {true.shape}")
    if pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"frames must be (..., S, S, 3); got shape {pred.shape}")


class HorizonAccumulator:
    """Sums squared error and SSIM per horizon step over windows; PSNR from the mean MSE."""

    def __init__(self, horizon: int, with_ssim: bool = True):
        if horizon < 1:
            raise ValueError(f"horizon={horizon}; expected >= 1")
        self.horizon = horizon
        self.with_ssim = with_ssim
        self.windows = 0
        self._sq_err = np.zeros(horizon)
        self._ssim = np.zeros(horizon)

    def add(self, pred: np.ndarray, true: np.ndarray) -> None:
        """One window: ``pred`` and ``true`` are ``(H, S, S, 3)`` uint8, H = ``horizon``."""
        if pred.shape[0] != self.horizon:
            raise ValueError(f"prediction has {pred.shape[0]} frames; expected horizon={self.horizon}")
        _check_pair(pred, true)
        diff = to_unit(pred) - to_unit(true)
        self._sq_err += (diff**2).mean(axis=(1, 2, 3))
        if self.with_ssim:
            self._ssim += ssim(pred, true)
        self.windows += 1

    def mse(self) -> list[float]:
        if not self.windows:
            raise ValueError("no windows were added")
        return (self._sq_err / self.windows).tolist()

    def result(self) -> dict[str, list[float]]:
        """``{"psnr": [...], "mse": [...]}`` plus ``"ssim"``, one value per horizon step."""
        mses = self.mse()
        out = {"psnr": [round(psnr_from_mse(m), 4) for m in mses], "mse": [float(m) for m in mses]}
        if self.with_ssim:
            out["ssim"] = [round(float(s), 6) for s in self._ssim / self.windows]
        return out
