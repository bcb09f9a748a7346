"""The pixel-vs-latent measurement tool: autoencoder shapes, baselines and argument errors."""

from __future__ import annotations

import numpy as np
import torch

from astra_ros.evaluation.latent_study import (
    ConvAutoencoder,
    copy_last_scores,
    main,
    to_model,
    train_autoencoder,
)


def test_autoencoder_maps_frames_to_the_pixel_models_token_grid_and_learns():
    model = ConvAutoencoder(latent_channels=4, width=8)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert model.encoder(x).shape == (2, 4, 8, 8)  # the 8x8 grid of 8x8 patches
    assert model(x).shape == x.shape and model(x).abs().max() <= 1.0
    colours = np.random.default_rng(0).integers(0, 255, (4, 1, 1, 3), dtype=np.uint8)
    frames = colours.repeat(16, 1).repeat(16, 2)  # four flat-colour 16x16 frames
    target = to_model(frames)
    torch.manual_seed(0)
    before = torch.nn.functional.mse_loss(ConvAutoencoder(4)(target), target).item()
    trained, steps = train_autoencoder(frames, 4, seconds=600.0, batch=4, max_steps=30)  # same seed, init
    after = torch.nn.functional.mse_loss(trained(target), target).item()
    assert steps == 30 and after < 0.5 * before


def test_copy_last_scores_pairs_each_frame_with_the_one_before():
    episode = np.zeros((3, 16, 16, 3), np.uint8)
    episode[1:] = 255  # frame 1 differs from frame 0, frame 2 equals frame 1
    psnr, ssim_value = copy_last_scores([episode])
    assert abs(psnr - 3.0103) < 1e-3  # MSE 0.5 on the unit scale
    assert 0.0 < ssim_value < 1.0


def test_bad_arguments_exit_2_with_a_message(capsys, tmp_path):
    assert main(["--data", "a", "--heldout", "b", "--size", "60"]) == 2
    assert "--size=60" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "missing"), "--heldout", "b"]) == 2
    assert "missing" in capsys.readouterr().err
