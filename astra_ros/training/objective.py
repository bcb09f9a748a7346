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


def drop_actions(actions: Actions, drop: torch.Tensor) -> Actions:
    """Action-free guidance: samples where ``drop`` ``(B,)`` is True lose their target actions."""
    modality = torch.where(drop[:, None], torch.full_like(actions.modality, NO_ACTION), actions.modality)
    return actions._replace(modality=modality)


def add_states(
    context: Actions,
    target: Actions,
    batch: dict[str, torch.Tensor],
    observed: int,
    keep: torch.Tensor,
    ahead: bool = False,
) -> tuple[Actions, Actions]:
    """Give each frame its robot state as the runtime does: measured up to frame ``observed`` (the
    newest observed frame), dead-reckoned after it (``observed``'s state plus the commanded
    displacements since, ``model.actions.state_step``). Samples where ``keep`` ``(B,)`` is False
    lose the state. Context frame ``k`` gets frame ``k``'s state (``ahead``: frame ``k + 1``'s, the
    frame a ``fused_step`` model predicts from it), target ``k`` frame ``k + 1``'s."""
    state, mask, delta = batch["state"], batch["state_mask"], batch["state_delta"]  # (B, T, J)
    t = state.shape[1]
    r = observed
    travelled = torch.cumsum(delta, 1)  # travelled[:, k] = sum of delta[:, :k + 1]
    if r:
        travelled = travelled - travelled[:, r - 1 : r]
    reckoned = state[:, r : r + 1] + torch.cat([torch.zeros_like(travelled[:, :1]), travelled[:, :-1]], 1)
    after = (torch.arange(t, device=state.device) > r)[None, :, None]
    state = torch.where(after, reckoned, state)
    mask = mask * keep[:, None, None].to(mask.dtype)
    own = slice(1, None) if ahead else slice(None, -1)
    return (
        context._replace(state=state[:, own], state_mask=mask[:, own]),
        target._replace(state=state[:, 1:], state_mask=mask[:, 1:]),
    )


def window_actions(
    cfg: AstraConfig, batch: dict[str, torch.Tensor], observed: int, keep: torch.Tensor
) -> tuple[Actions, Actions]:
    """Actions (and, for ``robot_state`` models, states) of a window's context frames and targets."""
    context, target = split_actions(batch["actions"], batch["action_mask"], batch["modality"])
    if cfg.robot_state:
        context, target = add_states(context, target, batch, observed, keep, ahead=cfg.fused_step)
    return context, target


def motion_weights(target: torch.Tensor, previous: torch.Tensor, settings: ObjectiveSettings) -> torch.Tensor:
    """Per-pixel weights ``(B, T, 1, S, S)``: ``motion_weight`` where a pixel changes from the true
    previous frame to the target (dilated by ``motion_radius``), 1 elsewhere."""
    moving = ((target - previous).abs().amax(2, keepdim=True) > settings.motion_threshold).float()
    r = settings.motion_radius
    if r:
        flat = moving.flatten(0, 1)  # (B*T, 1, S, S)
        moving = F.max_pool2d(flat, 2 * r + 1, stride=1, padding=r).view_as(moving)
    return 1.0 + (settings.motion_weight - 1.0) * moving


def weighted_error(x0: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared error per sample and target ``(B, T)``."""
    return ((x0 - truth).square() * weights).mean((2, 3, 4)) / weights.mean((2, 3, 4))


def gradient_difference(x0: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean L1 difference of horizontal and vertical image gradients (edges where the truth has them)."""
    dx = (x0.diff(dim=-1) - truth.diff(dim=-1)).abs().mean()
    dy = (x0.diff(dim=-2) - truth.diff(dim=-2)).abs().mean()
    return dx + dy


def shuffled_commands(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with every window's commands (and commanded displacements) taken from the next window."""
    keys = ("actions", "action_mask", "modality", "state_delta")
    return {**batch, **{k: batch[k].roll(1, 0) for k in keys if k in batch}}


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
        if cfg.fused_step:
            out, _ = model(context, level, context_actions)
            x0 = (history + out.float()).clamp(-1, 1)
        else:
            start = torch.randn(history.shape, generator=generator, device=device)
            ones = torch.ones(b, t - 1, device=device)
            out, _ = model(context, level, context_actions, start, ones, target_actions)
            x0 = predicted_x0(out.float(), start, 1.0, history, cfg.parameterization, cfg.predict_delta)
            x0 = x0.clamp(-1, 1)
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
    (the DDP wrapper in distributed runs); ``model`` the plain model for no-grad passes.

    Squared error weighted toward moving pixels (``motion_weight``), plus the optional structural,
    gradient-difference and command-ranking terms. A ``fused_step`` model predicts each frame from
    the context frame before it (no target stream). Ranking: the same noisy inputs are run again
    with every window's commands taken from another window; on the targets after the newest
    observed frame (where the state is dead-reckoned from the commands) the true commands' error
    must be lower than the other commands' by ``ranking_margin`` times the window's motion energy.
    """
    cfg = model.cfg
    network = model if network is None else network
    frames = frames_to_model(batch["frames"])  # (B, T, C, S, S)
    b, t = frames.shape[:2]
    device = generator.device
    observed = int(torch.randint(0, t - 1, (1,), generator=generator, device=device))
    keep_state = torch.rand(b, generator=generator, device=device) >= cfg.state_drop_prob
    context_actions, target_actions = window_actions(cfg, batch, observed, keep_state)
    rolled = bool(torch.rand(1, generator=generator, device=device) < settings.rollout_prob)
    if rolled:
        history = rollout_history(model, frames, context_actions, target_actions, settings, generator)
    else:
        history = frames[:, :-1]
    target_clean = frames[:, 1:]
    c_level = context_levels(cfg, b, t - 1, generator)
    c_noise = torch.randn(history.shape, generator=generator, device=device)
    context = noisy(history, c_noise, c_level[..., None, None, None])
    drop = torch.rand(b, generator=generator, device=device) < cfg.action_drop_prob
    if not cfg.fused_step:
        t_level = target_levels(b, t - 1, settings.full_noise_prob, generator)
        noise = torch.randn(target_clean.shape, generator=generator, device=device)
        s = t_level[..., None, None, None]
        target = noisy(target_clean, noise, s)

    def predict(actions: tuple[Actions, Actions]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network output, the balance loss and the clean frames predicted with these commands."""
        context_actions, target_actions = actions
        if cfg.fused_step:  # context k's own tokens predict frame k + 1
            out, balance = network(context, c_level, drop_actions(context_actions, drop))
            return out.float(), balance, history + out.float()
        out, balance = network(
            context, c_level, context_actions, target, t_level, drop_actions(target_actions, drop)
        )
        x0 = predicted_x0(out.float(), target, s, history, cfg.parameterization, cfg.predict_delta)
        return out.float(), balance, x0

    out, balance, x0 = predict((context_actions, target_actions))
    weights = motion_weights(target_clean, frames[:, :-1], settings)
    zero = torch.zeros((), device=device)
    if cfg.parameterization == "velocity":
        diffusion = F.mse_loss(out, noise - target_clean)
    else:
        diffusion = weighted_error(x0, target_clean, weights).mean()
    structure = 1 - ssim(x0, target_clean) if settings.structure_weight > 0 else zero
    gradient = gradient_difference(x0, target_clean) if settings.gradient_weight > 0 else zero
    ranking = zero
    if settings.ranking_weight > 0:
        other_x0 = predict(window_actions(cfg, shuffled_commands(batch), observed, keep_state))[2]
        after = slice(observed, None)  # targets after the newest observed frame
        own_error = weighted_error(x0[:, after], target_clean[:, after], weights[:, after]).mean(1)
        other_error = weighted_error(other_x0[:, after], target_clean[:, after], weights[:, after]).mean(1)
        energy = (target_clean[:, after] - frames[:, :-1][:, after]).square().mean((1, 2, 3, 4))
        hinge = F.relu(own_error - other_error + settings.ranking_margin * energy)
        ranking = (hinge * (~drop).float()).mean()
    loss = (
        diffusion
        + settings.balance_weight * balance.float()
        + settings.structure_weight * structure
        + settings.gradient_weight * gradient
        + settings.ranking_weight * ranking
    )
    stats = {
        "loss": loss.item(),
        "diffusion": diffusion.item(),
        "balance": balance.item(),
        "structure": structure.item(),
        "gradient": gradient.item(),
        "ranking": ranking.item(),
        "rolled": float(rolled),
    }
    return loss, stats
