"""Pixel patches or a latent autoencoder? The measurement behind the model's frame tokens.

Astra diffuses in a VAE latent; this package patchifies pixels. A latent world model predicts a
latent and decodes it, so every predicted frame carries the decoder's reconstruction error: the
autoencoder's held-out reconstruction PSNR is an upper bound on what the latent route can reach
(errors of prediction and decoding add). This trains small convolutional autoencoders onto the
same 8x8 token grid the pixel model uses (64x64 frames, stride 8) for a fixed CPU budget each and
prints their held-out reconstruction quality next to copy-last and, with ``--pixel-metrics``, the
pixel model's own one-step prediction from ``astra-eval``'s metrics.json.

    python -m astra_ros.evaluation.latent_study --data data/bags/kuka_train \\
        --heldout data/bags/kuka_heldout --pixel-metrics eval_out/heldout/metrics.json

``--data`` (and the other data options of ``astra_ros.data.sources``) names the training frames;
``--heldout`` names another source, and ``--heldout-episodes`` selects its LeRobot episodes
(default: ``--heldout`` is ``--data`` itself when only ``--heldout-episodes`` is given).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from astra_ros.data.sources import add_data_arguments, open_episodes
from astra_ros.evaluation.metrics import mse, psnr_from_mse, ssim


class ConvAutoencoder(nn.Module):
    """``(B, 3, S, S)`` in [-1, 1] -> latent ``(B, C, S/8, S/8)`` -> reconstruction."""

    def __init__(self, latent_channels: int, width: int = 32):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.SiLU(),  # S/2
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),  # S/4
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.SiLU(),  # S/8
            nn.Conv2d(2 * w, latent_channels, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * w, 3, 1, 1), nn.SiLU(),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1), nn.SiLU(),  # S/4
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),  # S/2
            nn.ConvTranspose2d(w, 3, 4, 2, 1),  # S
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).clamp(-1.0, 1.0)


def to_model(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` -> float ``(N, 3, S, S)`` in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def frames_of(args: argparse.Namespace, data: list[str], episodes: str | None, size: int) -> list[np.ndarray]:
    """The frames of each episode of ``data`` (with ``episodes`` selected), read like ``--data``."""
    found, _ = open_episodes(argparse.Namespace(**{**vars(args), "data": data, "episodes": episodes}), size)
    if not found:
        raise ValueError(f"{data}: no episodes; expected camera frames with commands")
    return [ep.frames for ep in found]


def train_autoencoder(
    frames: np.ndarray,
    latent_channels: int,
    seconds: float,
    batch: int = 16,
    seed: int = 0,
    progress: bool = False,
    max_steps: int | None = None,
) -> tuple[ConvAutoencoder, int]:
    """Adam on the MSE of random frames for a wall-clock budget (or ``max_steps``, whichever comes
    first); -> (model, steps)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ConvAutoencoder(latent_channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps, start = 0, time.monotonic()
    bar = tqdm(total=round(seconds), unit="s", desc=f"autoencoder C={latent_channels}", disable=not progress)
    with bar:
        while (elapsed := time.monotonic() - start) < seconds and steps != max_steps:
            x = to_model(frames[rng.integers(0, len(frames), batch)])
            loss = F.mse_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            bar.update(round(elapsed) - bar.n)
            bar.set_postfix(loss=f"{loss.item():.4f}", steps=steps, refresh=False)
    return model.eval(), steps


@torch.no_grad()
def reconstruction_scores(model: ConvAutoencoder, frames: np.ndarray) -> tuple[float, float]:
    """Held-out (PSNR of the mean MSE, mean SSIM) of decode(encode(frame))."""
    recon = np.concatenate([to_uint8(model(to_model(chunk))) for chunk in np.array_split(frames, 32)])
    return psnr_from_mse(mse(recon, frames)), float(np.mean(ssim(recon, frames)))


def copy_last_scores(episodes: list[np.ndarray]) -> tuple[float, float]:
    """(PSNR, SSIM) of predicting each frame by the one before it."""
    pred = np.concatenate([ep[:-1] for ep in episodes])
    true = np.concatenate([ep[1:] for ep in episodes])
    return psnr_from_mse(mse(pred, true)), float(np.mean(ssim(pred, true)))


def pixel_model_h1(path: Path, key: str) -> tuple[float, float]:
    """Horizon-1 (PSNR, SSIM) of one variant (``model``, ``copy_last``) in astra-eval's metrics.json."""
    scores = json.loads(path.read_text())[key]
    return float(scores["psnr"][0]), float(scores["ssim"][0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="latent_study", description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--heldout", nargs="+", default=None, help="source to score on (never trained on)")
    p.add_argument("--heldout-episodes", default=None, help="LeRobot episodes of --heldout to score on")
    p.add_argument("--latent-channels", type=int, nargs="+", default=[4, 16])
    p.add_argument("--minutes", type=float, default=4.0, help="training budget per autoencoder")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pixel-metrics", type=Path, default=None, help="pixel model's astra-eval metrics")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.size % 8:
        print(f"latent_study: error: --size={args.size}; expected a multiple of 8", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.heldout is None and args.heldout_episodes is None:
        print("latent_study: error: give --heldout PATH or --heldout-episodes", file=sys.stderr)
        return 2
    heldout_data = args.heldout or args.paths
    try:
        train = np.concatenate(frames_of(args, args.paths, args.episodes, args.size))
        heldout_episodes = frames_of(args, heldout_data, args.heldout_episodes, args.size)
    except (OSError, ValueError) as err:
        print(f"latent_study: error: {err}", file=sys.stderr)
        return 2
    heldout = np.concatenate(heldout_episodes)
    grid = args.size // 8
    rows = []
    copy_psnr, copy_ssim = copy_last_scores(heldout_episodes)
    rows.append(("copy-last one-step prediction, every held-out frame", "-", copy_psnr, copy_ssim, "-"))
    if args.pixel_metrics:
        for key, name in (("copy_last", "copy-last"), ("model", "pixel model")):
            psnr, ssim_value = pixel_model_h1(args.pixel_metrics, key)
            tokens = f"{grid}x{grid}x192" if key == "model" else "-"
            rows.append((f"{name} one-step prediction, astra-eval h1", tokens, psnr, ssim_value, "-"))
    for channels in args.latent_channels:
        model, steps = train_autoencoder(train, channels, 60 * args.minutes, progress=True)
        psnr, ssim_value = reconstruction_scores(model, heldout)
        name = f"autoencoder reconstruction, {channels} latent channels"
        rows.append((name, f"{grid}x{grid}x{channels}", psnr, ssim_value, steps))
    print(f"held-out: {len(heldout)} frames of {heldout_data}; training: {len(train)} frames of {args.paths}")
    print(f"autoencoders: {args.minutes:g} min each on {args.threads} CPU thread(s)\n")
    print("| frames from | token grid | PSNR dB | SSIM | training steps |")
    print("|---|---|---|---|---|")
    for name, tokens, psnr, ssim_value, steps in rows:
        print(f"| {name} | {tokens} | {psnr:.2f} | {ssim_value:.3f} | {steps} |")
    if args.out:
        keys = ("what", "tokens", "psnr", "ssim", "steps")
        args.out.write_text(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
