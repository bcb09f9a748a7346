"""The training objective: flow matching with per-frame noise levels and rollout training.

A window of ``T`` frames becomes ``T - 1`` (context, target) pairs: target ``k`` is frame ``k + 1``
denoised against context frames ``<= k``. Each context frame is written at its own small noise
level (noise-augmented history memory) and each target at its own diffusion level.

Rollout training (after Self-Forcing): with probability ``rollout_prob`` the history is replaced
by the model's own one-step predictions, made without gradients in ``rollout_passes`` parallel
passes (pass ``r`` conditions on pass ``r - 1``'s frames, so the last pass carries up to
``rollout_passes`` steps of compounding error). The model then learns to predict the true next
frame from its own imperfect history, which is what it sees when it rolls out.

Structural term: with ``structure_weight`` > 0, ``structure_weight * (1 - SSIM)`` of the predicted
clean frames is added, with the gaussian-window SSIM the evaluation scores. Mean squared error alone
rewards the blurred mean of the possible futures; SSIM also asks for the local contrast and
structure of the true frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from astra_ros.evaluation.metrics import SSIM_K1, SSIM_K2, gaussian_kernel
from astra_ros.model.astra import Actions, AstraWorldModel
from astra_ros.model.config import NO_ACTION, AstraConfig
from astra_ros.model.flow import noisy, predicted_x0
from astra_ros.training.config import ObjectiveSettings


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM of frames ``(..., C, S, S)`` in [-1, 1], averaged over all frames.

    The same definition as ``evaluation.metrics.ssim`` (gaussian 11x11 window, valid pixels only,
    data range 1) on the frames scaled to [0, 1].
    """
    channels, size = x.shape[-3], x.shape[-2:]
    x = ((x + 1) / 2).reshape(-1, channels, *size)
    y = ((y + 1) / 2).reshape(-1, channels, *size)
    taps = torch.from_numpy(gaussian_kernel()).to(x)
    rows = taps.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = taps.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(z, rows, groups=channels), cols, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).mean()


def context_levels(cfg: AstraConfig, batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Noise level of each history frame ``(B, T)``.

    ``uniform``: each frame draws from [0, context_noise_max]. ``recency``: the bound grows
    linearly with a frame's distance from the newest frame of the window (near-recent small,
    far-past larger).
    """
    u = torch.rand(batch, frames, generator=generator, device=generator.device)
    if cfg.context_noise_schedule == "recency":
        distance = torch.arange(frames - 1, -1, -1, dtype=torch.float32, device=u.device) / max(frames - 1, 1)
        return cfg.context_noise_max * u * distance
    return cfg.context_noise_max * u


def target_levels(
    batch: int, frames: int, full_noise_prob: float, generator: torch.Generator
) -> torch.Tensor:
    u = torch.rand(batch, frames, generator=generator, device=generator.device)
    full = torch.rand(batch, frames, generator=generator, device=generator.device) < full_noise_prob
    return torch.where(full, torch.ones_like(u), u.clamp(min=1e-3))


def frames_to_model(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, T, S, S, 3)`` -> float ``(B, T, 3, S, S)`` in [-1, 1]."""
    return frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def split_actions(
    values: torch.Tensor, mask: torch.Tensor, modality: torch.Tensor
) -> tuple[Actions, Actions]:
    """Window actions ``(B, T, A)`` -> actions of the ``T - 1`` context frames and of the targets.

    Action ``k`` is the command in force at frame ``k``'s stamp: it drives the motion from frame
    ``k`` to frame ``k + 1``. Context frame ``k`` carries it, and so does target ``k`` (frame
    ``k + 1``), which it produced.
    """
    per_frame = modality[:, None].expand(values.shape[:2])
    context = Actions(values[:, :-1], mask[:, :-1], per_frame[:, :-1])
    return context, context


def drop_actions(actions: Actions, prob: float, generator: torch.Generator) -> Actions:
    """Action-free guidance: whole samples lose their target actions with probability ``prob``."""
    drop = torch.rand(actions.modality.shape[0], generator=generator, device=generator.device) < prob
    modality = torch.where(drop[:, None], torch.full_like(actions.modality, NO_ACTION), actions.modality)
    return actions._replace(modality=modality)


def add_states(
    context: Actions,
    target: Actions,
    batch: dict[str, torch.Tensor],
    drop_prob: float,
    generator: torch.Generator,
) -> tuple[Actions, Actions]:
    """Give each frame its robot state as the runtime does: measured up to a frame ``r`` drawn per
    batch (the newest observed frame), dead-reckoned after it (``r``'s state plus the commanded
    displacements since, ``model.actions.state_step``). Whole samples lose the state with
    probability ``drop_prob``. Context frame ``k`` gets frame ``k``'s state, target ``k`` frame
    ``k + 1``'s."""
    state, mask, delta = batch["state"], batch["state_mask"], batch["state_delta"]  # (B, T, J)
    b, t = state.shape[:2]
    device = generator.device
    r = int(torch.randint(0, t - 1, (1,), generator=generator, device=device))
    travelled = torch.cumsum(delta, 1)  # travelled[:, k] = sum of delta[:, :k + 1]
    if r:
        travelled = travelled - travelled[:, r - 1 : r]
    reckoned = state[:, r : r + 1] + torch.cat([torch.zeros_like(travelled[:, :1]), travelled[:, :-1]], 1)
    after = (torch.arange(t, device=state.device) > r)[None, :, None]
    state = torch.where(after, reckoned, state)
    keep = torch.rand(b, generator=generator, device=device) >= drop_prob
    mask = mask * keep[:, None, None].to(mask.dtype)
    return (
        context._replace(state=state[:, :-1], state_mask=mask[:, :-1]),
        target._replace(state=state[:, 1:], state_mask=mask[:, 1:]),
    )


@torch.no_grad()
def rollout_history(
    model: AstraWorldModel,
    frames: torch.Tensor,
    context_actions: Actions,
    target_actions: Actions,
    settings: ObjectiveSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """Replace history frames after the first few by the model's own one-step predictions."""
    cfg = model.cfg
    b, t = frames.shape[:2]
    history = frames[:, :-1].clone()  # (B, T-1, C, S, S)
    device = generator.device
    keep = int(torch.randint(settings.min_true_context, t - 1, (1,), generator=generator, device=device))
    for _ in range(settings.rollout_passes):
        level = context_levels(cfg, b, t - 1, generator)
        noise = torch.randn(history.shape, generator=generator, device=device)
        context = noisy(history, noise, level[..., None, None, None])
        start = torch.randn(history.shape, generator=generator, device=device)
        ones = torch.ones(b, t - 1, device=device)
        out, _ = model(context, level, context_actions, start, ones, target_actions)
        x0 = predicted_x0(out.float(), start, 1.0, history, cfg.parameterization, cfg.predict_delta).clamp(
            -1, 1
        )
        history[:, keep:] = x0[:, keep - 1 : -1]
    return history


def training_loss(
    model: AstraWorldModel,
    batch: dict[str, torch.Tensor],
    settings: ObjectiveSettings,
    generator: torch.Generator,
    network: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss for one batch of windows. ``network`` is the module to differentiate through
    (the DDP wrapper in distributed runs); ``model`` the plain model for no-grad passes."""
    cfg = model.cfg
    network = network or model
    frames = frames_to_model(batch["frames"])  # (B, T, C, S, S)
    b, t = frames.shape[:2]
    context_actions, target_actions = split_actions(batch["actions"], batch["action_mask"], batch["modality"])
    if cfg.robot_state:
        context_actions, target_actions = add_states(
            context_actions, target_actions, batch, cfg.state_drop_prob, generator
        )
    device = generator.device
    rolled = bool(torch.rand(1, generator=generator, device=device) < settings.rollout_prob)
    if rolled:
        history = rollout_history(model, frames, context_actions, target_actions, settings, generator)
    else:
        history = frames[:, :-1]
    target_clean = frames[:, 1:]
    c_level = context_levels(cfg, b, t - 1, generator)
    t_level = target_levels(b, t - 1, settings.full_noise_prob, generator)
    c_noise = torch.randn(history.shape, generator=generator, device=device)
    context = noisy(history, c_noise, c_level[..., None, None, None])
    noise = torch.randn(target_clean.shape, generator=generator, device=device)
    s = t_level[..., None, None, None]
    target = noisy(target_clean, noise, s)
    target_actions = drop_actions(target_actions, cfg.action_drop_prob, generator)
    out, balance = network(context, c_level, context_actions, target, t_level, target_actions)
    out = out.float()
    x0 = predicted_x0(out, target, s, history, cfg.parameterization, cfg.predict_delta)
    if cfg.parameterization == "velocity":
        diffusion = F.mse_loss(out, noise - target_clean)
    else:
        diffusion = F.mse_loss(x0, target_clean)
    structure = (
        1 - ssim(x0, target_clean) if settings.structure_weight > 0 else torch.zeros((), device=device)
    )
    loss = diffusion + settings.balance_weight * balance.float() + settings.structure_weight * structure
    stats = {
        "loss": loss.item(),
        "diffusion": diffusion.item(),
        "balance": balance.item(),
        "structure": structure.item(),
        "rolled": float(rolled),
    }
    return loss, stats
