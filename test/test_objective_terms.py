"""The objective's levers: moving-pixel weights, the gradient-difference term and command ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astra_ros.model.actions import modality_id
from astra_ros.model.astra import AstraWorldModel
from astra_ros.model.config import AstraConfig
from astra_ros.training.objective import (
    ObjectiveSettings,
    gradient_difference,
    motion_weights,
    shuffled_commands,
    training_loss,
    weighted_error,
)


def tiny_model(robot_state: bool = False, fused_step: bool = False) -> AstraWorldModel:
    torch.manual_seed(0)
    model = AstraWorldModel(AstraConfig.preset("tiny", robot_state=robot_state, fused_step=fused_step))
    for p in model.final.parameters():  # a zero-initialised head would predict the last frame
        torch.nn.init.normal_(p, std=0.05)
    return model


def moving_batch(cfg: AstraConfig, b: int = 4, t: int = 4) -> dict[str, torch.Tensor]:
    """Frames with a bright square that moves by the command's first value (pixels per frame)."""
    s = cfg.image_size
    rng = np.random.default_rng(1)
    frames = np.full((b, t, s, s, 3), 60, np.uint8)
    actions = np.zeros((b, t, cfg.action_dim), np.float32)
    for i in range(b):
        speed = int(rng.integers(-3, 4)) or 2
        actions[i, :, 0] = speed
        for k in range(t):
            x = 10 + speed * k
            frames[i, k, 8:16, x : x + 6] = 250
    batch = {
        "frames": torch.from_numpy(frames),
        "actions": torch.from_numpy(actions),
        "action_mask": torch.ones(b, t, cfg.action_dim),
        "modality": torch.full((b,), modality_id("joint_velocity")),
    }
    if cfg.robot_state:
        batch.update(
            state=torch.zeros(b, t, cfg.max_joints),
            state_mask=torch.ones(b, t, cfg.max_joints),
            state_delta=torch.from_numpy(actions[..., : cfg.max_joints].copy()),
        )
    return batch


def test_motion_weights_mark_changed_pixels_and_their_neighbours():
    previous = torch.zeros(1, 1, 3, 8, 8)
    target = previous.clone()
    target[0, 0, 1, 4, 4] = 0.5  # one pixel changes in one channel
    settings = ObjectiveSettings(motion_weight=10.0, motion_threshold=0.1, motion_radius=1)
    w = motion_weights(target, previous, settings)[0, 0, 0]
    assert w.shape == (8, 8)
    assert (w[3:6, 3:6] == 10.0).all() and w.sum() == 9 * 10 + 55
    plain = motion_weights(target, previous, ObjectiveSettings())
    assert (plain == 1.0).all()


def test_weighted_error_is_the_plain_mean_with_unit_weights():
    x, y = torch.randn(2, 3, 3, 8, 8), torch.randn(2, 3, 3, 8, 8)
    ones = torch.ones(2, 3, 1, 8, 8)
    assert torch.allclose(weighted_error(x, y, ones), (x - y).square().mean((2, 3, 4)))


def test_gradient_difference_is_zero_for_a_shifted_constant_and_positive_for_a_blur():
    sharp = torch.zeros(1, 1, 3, 8, 8)
    sharp[..., :, 4:] = 1.0
    assert float(gradient_difference(sharp + 0.3, sharp)) == pytest.approx(0.0, abs=1e-6)
    blurred = torch.nn.functional.avg_pool2d(sharp[0], 3, stride=1, padding=1, count_include_pad=False)[None]
    assert float(gradient_difference(blurred, sharp)) > 0.01


def test_shuffled_commands_take_the_next_windows_commands_only():
    cfg = AstraConfig.preset("tiny", robot_state=True)
    batch = moving_batch(cfg)
    other = shuffled_commands(batch)
    assert torch.equal(other["actions"][1], batch["actions"][0])
    assert torch.equal(other["state_delta"][0], batch["state_delta"][-1])
    assert other["frames"] is batch["frames"] and other["state"] is batch["state"]


@pytest.mark.parametrize(("robot_state", "fused_step"), [(False, False), (True, False), (True, True)])
def test_every_term_adds_its_weight_and_trains_the_network(robot_state, fused_step):
    model = tiny_model(robot_state, fused_step)
    batch = moving_batch(model.cfg)
    base = ObjectiveSettings(rollout_prob=0.0, full_noise_prob=1.0)
    plain_loss, plain = training_loss(model, batch, base, torch.Generator().manual_seed(2))
    assert plain["gradient"] == 0.0 and plain["ranking"] == 0.0
    settings = ObjectiveSettings(
        rollout_prob=0.0, full_noise_prob=1.0, gradient_weight=0.5, ranking_weight=2.0, ranking_margin=5.0
    )
    rolled = training_loss(
        model, batch, ObjectiveSettings(rollout_prob=1.0), torch.Generator().manual_seed(2)
    )
    assert rolled[1]["rolled"] == 1.0 and torch.isfinite(rolled[0])
    loss, stats = training_loss(model, batch, settings, torch.Generator().manual_seed(2))
    assert stats["diffusion"] == pytest.approx(plain["diffusion"])
    assert stats["gradient"] > 0 and stats["ranking"] > 0  # a margin of 5 motion energies is never met
    extra = float((loss - plain_loss).detach())
    assert extra == pytest.approx(0.5 * stats["gradient"] + 2.0 * stats["ranking"], rel=1e-4)
    grads = []
    for total in (plain_loss, loss):
        model.zero_grad()
        total.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert not torch.allclose(grads[0], grads[1])  # the terms reach the weights


def test_motion_weight_raises_the_error_share_of_moving_pixels():
    model = tiny_model()
    batch = moving_batch(model.cfg)
    settings = {
        w: ObjectiveSettings(rollout_prob=0.0, full_noise_prob=1.0, motion_weight=w) for w in (1.0, 20.0)
    }
    plain = training_loss(model, batch, settings[1.0], torch.Generator().manual_seed(2))[1]
    weighted = training_loss(model, batch, settings[20.0], torch.Generator().manual_seed(2))[1]
    # the untrained model gets the moving square wrong: weighting it raises the mean error
    assert weighted["diffusion"] > plain["diffusion"]
