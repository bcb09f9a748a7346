"""The Astra world model: a diffusion transformer with temporal causal attention and a KV cache.

Every frame is a grid of ``N`` patch tokens; each token also sees the same patch of the frame
before it (as written into the history), so local motion is learnable without attention. A
sequence holds two streams:

- context frames (the history memory, each written at its own small noise level), and
- target frames (being denoised; target ``k`` is the frame that follows context frame ``k``).

Attention is block-causal over frames and full inside a frame: context frame ``k`` sees context
frames ``k - max_history .. k``; target ``k`` sees context frames ``k - max_history + 1 .. k`` and
itself. Time is encoded with rotary embeddings over the frame index, so attention depends on
frame distance only.

Streaming keeps a ring buffer of the last ``max_history`` context frames per layer. Keys enter it
rotated at their absolute frame index (cos/sin computed on the host in float64, ``rope.py``), so a
step never touches cached keys again: it attends the valid slots plus its own frame, and its cost
does not grow with the history length. ``step`` returns the new frame's keys and values;
``write`` stores them in the next slot, overwriting the oldest frame once the buffer is full (no
attention sink: an old sink frame would sit at a frame distance never seen in training).

A ``fused_step`` model has no target stream: a context frame's own tokens also predict the frame
after it, so a rollout runs one step per predicted frame (write the frame, read the next one off the
same pass) instead of a write plus a denoising step, and training attends over half the tokens.

Conditioning per frame: the noise level enters adaLN-Zero modulation (DiT); the action enters
through the action-aware adapter (added to the modulated input of self-attention, plus an
identity-initialised projector after it), produced by a mixture of action experts. With
``action_modulation`` the action also adds a zero-initialised term to every block's modulation,
so it can scale and gate features, not only shift the attention input. With ``robot_state`` the
frame's measured (or, in a rollout, dead-reckoned) joint positions add a zero-initialised embedding
to the action's, so the model knows the arm's configuration instead of reading it from pixels. With
``kinematics`` (the robot's chain and camera) the same joint positions also place the arm in the
image: each frame's tokens get a zero-initialised term from their distance to the projected links
(``kinematics.py``), so the model need not learn forward kinematics and the camera from pixels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from astra_ros.model.config import MODALITY_IDS, NO_ACTION, AstraConfig
from astra_ros.model.kinematics import KinematicsEmbedder
from astra_ros.model.rope import rope_frequencies


class Actions(NamedTuple):
    """Per-frame conditioning: the command as padded values and mask ``(..., A)`` with modality
    ids ``(...)``, and (models with ``robot_state``) the frame's joint positions in radians padded
    to ``(..., max_joints)`` with their mask (all zero: state unknown)."""

    values: torch.Tensor
    mask: torch.Tensor
    modality: torch.Tensor
    state: torch.Tensor | None = None
    state_mask: torch.Tensor | None = None


class KVCache(NamedTuple):
    """Ring buffers of context frames per layer (slot order does not matter), in one of two layouts.

    A stream's own frames (``cache``): ``keys`` (rotated at their frame index) / ``values`` ``(depth,
    heads, B, slots * N, head_dim)``, heads first so that one product covers every stream's queries
    over the shared history too; ``valid`` ``(B, slots)``. Frames that every stream shares
    (``history``): ``(depth, slots, heads, N, head_dim)``, slot first, so that any run of
    consecutive slots is one contiguous block (a step reads only the slots in its window); ``valid``
    ``(1, slots)``. The exported graph takes one tensor per layer (so it never slices a stacked
    cache); ``valid`` is 1 where a slot holds a frame.
    """

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor


class StepOutput(NamedTuple):
    """The network output ``(B, C, H, W)`` (None for a write-only step) and the frame's keys/values
    ``(depth, heads, B, N, head_dim)``."""

    output: torch.Tensor | None
    keys: torch.Tensor
    values: torch.Tensor


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on pairs (first half, second half) of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def rope_angles(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``(..., head_dim / 2)`` for frame positions ``(...)``."""
    freqs = torch.from_numpy(rope_frequencies(head_dim)).float().to(positions.device)
    angles = positions.float()[..., None] * freqs
    return angles.cos(), angles.sin()


def sincos_2d(grid: int, width: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding ``(grid * grid, width)`` (as in DiT)."""
    quarter = width // 4
    freqs = 1.0 / (10000.0 ** (torch.arange(quarter).float() / quarter))
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    ay, ax = ys.reshape(-1, 1) * freqs, xs.reshape(-1, 1) * freqs
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)


def timestep_embedding(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of noise levels ``(...)`` in [0, 1] -> ``(..., dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device).float() / half)
    args = 1000.0 * s.float()[..., None] * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


class NoiseLevelEmbedder(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.width = width

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(s, self.width))


class ActionExperts(nn.Module):
    """Mixture of action experts: per-modality projectors, a learned top-k router, shared experts.

    The router sees the projected action and an embedding of its modality, so one model can
    serve several robots. ``NO_ACTION`` frames get a learned null embedding (action-free path).
    """

    def __init__(self, cfg: AstraConfig):
        super().__init__()
        w, a = cfg.width, cfg.action_dim
        self.top_k = cfg.top_k
        self.modality_ids = [MODALITY_IDS[m] for m in cfg.modalities]  # projector i serves id modality_ids[i]
        self.projectors = nn.ModuleList(nn.Linear(2 * a, w) for _ in self.modality_ids)
        self.modality_embed = nn.Embedding(cfg.modality_rows, w)
        self.router = nn.Linear(2 * w, cfg.num_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(w, 2 * w), nn.SiLU(), nn.Linear(2 * w, w)) for _ in range(cfg.num_experts)
        )
        self.null = nn.Parameter(torch.zeros(w))

    def forward(self, actions: Actions) -> tuple[torch.Tensor, torch.Tensor]:
        """-> action embeddings ``(..., W)`` and the load-balancing loss (a scalar)."""
        x = torch.cat([actions.values * actions.mask, actions.mask], dim=-1)  # (..., 2A)
        onehot = F.one_hot(actions.modality, self.modality_embed.num_embeddings).to(x.dtype)  # (..., rows)
        h = sum(
            onehot[..., m, None] * proj(x) for m, proj in zip(self.modality_ids, self.projectors, strict=True)
        )
        logits = self.router(torch.cat([h, self.modality_embed(actions.modality)], dim=-1))  # (..., E)
        probs = logits.softmax(dim=-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, top_i, top_p / top_p.sum(-1, keepdim=True))
        out = sum(gates[..., e, None] * expert(h) for e, expert in enumerate(self.experts))
        acting = (actions.modality != NO_ACTION).to(x.dtype)[..., None]
        out = acting * out + (1 - acting) * self.null
        # Switch-style balance: fraction routed to each expert times its mean probability.
        weight = acting.reshape(-1, 1)
        count = weight.sum().clamp(min=1.0)
        routed = ((gates > 0).to(x.dtype).reshape(-1, probs.shape[-1]) * weight).sum(0) / count
        mean_p = (probs.reshape(-1, probs.shape[-1]) * weight).sum(0) / count
        balance = probs.shape[-1] * (routed * mean_p).sum() / self.top_k
        return out, balance


class StateEmbedder(nn.Module):
    """Robot state -> ``(..., W)``: an MLP over (sin, cos) of each joint angle and its mask.

    Zero output at initialisation, so switching it on leaves a trained model unchanged."""

    def __init__(self, cfg: AstraConfig):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(3 * cfg.max_joints, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width)
        )

    def forward(self, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([state.sin() * mask, state.cos() * mask, mask], dim=-1))


class Attention(nn.Module):
    def __init__(self, cfg: AstraConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def split(
        self, x: torch.Tensor, heads_first: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, n, W)`` -> q, k, v, each ``(B, heads, n, head_dim)`` (``heads_first``: ``(heads, B, n,
        head_dim)``)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 3, 0, 1, 4) if heads_first else qkv.permute(2, 0, 3, 1, 4)
        return q, k, v

    def merge(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.project(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def merge_cached(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        history: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attention of one frame over [shared history; its own cached frames; itself].

        ``q``, ``k``, ``v``: ``(heads, B, N, head_dim)``; ``cache``: each stream's own keys and
        values ``(heads, B, R*N, head_dim)`` and an additive mask ``(1, B, 1, R*N)`` (-inf on empty
        slots); ``history``: the frames all ``B`` streams share, keys and values ``(M, heads, N,
        head_dim)`` and a mask ``(1, 1, M*N)``. One softmax written in parts, so nothing is
        concatenated and the shared history is never copied per stream: its scores are one product
        of every stream's queries ``(heads, B*N, head_dim)`` with its keys. Only q is scaled, so the
        key transposes fold into the products.
        """
        heads, b, n, dim = q.shape
        q = q * dim**-0.5
        own = q @ cache[0].transpose(-2, -1) + cache[2]  # (heads, B, N, R*N)
        itself = q @ k.transpose(-2, -1)  # (heads, B, N, N): finite, so the max below is too
        top = torch.maximum(own.amax(-1, keepdim=True), itself.amax(-1, keepdim=True))  # (heads, B, N, 1)
        if history is not None:
            keys, values = (
                x.transpose(0, 1).reshape(heads, -1, dim) for x in history[:2]
            )  # (heads, M*N, hd)
            past = q.reshape(heads, b * n, dim) @ keys.transpose(-2, -1) + history[2]  # (heads, B*N, M*N)
            top = torch.maximum(top, past.amax(-1, keepdim=True).reshape(heads, b, n, 1))
            past = (past - top.reshape(heads, b * n, 1)).exp()
        own, itself = (own - top).exp(), (itself - top).exp()
        total = own.sum(-1, keepdim=True) + itself.sum(-1, keepdim=True)
        out = own @ cache[1] + itself @ v
        if history is not None:
            total = total + past.sum(-1, keepdim=True).reshape(heads, b, n, 1)
            out = out + (past @ values).reshape(heads, b, n, dim)
        return self.proj((out / total).permute(1, 2, 0, 3).reshape(b, n, -1))

    def project(self, out: torch.Tensor) -> torch.Tensor:
        """``(B, heads, n, head_dim)`` -> ``(B, n, W)`` through the output projection."""
        b, _, n, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """adaLN-Zero transformer block with Astra's action-aware adapter.

    Tokens come as ``(B, F, N, W)``; conditioning ``c`` and actions ``a`` per frame ``(B, F, 1, W)``.
    """

    def __init__(self, cfg: AstraConfig):
        super().__init__()
        w = cfg.width
        self.norm1 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(cfg)
        self.action_in = nn.Linear(w, w)  # adds the action to the modulated attention input
        self.action_out = nn.Linear(w, w)  # identity-initialised projector after self-attention
        self.norm2 = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        hidden = int(w * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, w))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))
        # zero-initialised: switching it on leaves a trained model's output unchanged
        self.action_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w)) if cfg.action_modulation else None

    def modulation(self, c: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mod = self.adaLN(c)
        if self.action_adaLN is not None:
            mod = mod + self.action_adaLN(a)
        return mod.chunk(6, dim=-1)

    def attention_input(
        self, x: torch.Tensor, mod: tuple[torch.Tensor, ...], a: torch.Tensor
    ) -> torch.Tensor:
        shift, scale = mod[:2]
        h = modulate(self.norm1(x), shift, scale) + self.action_in(a)  # (B, F, N, W)
        return h.flatten(1, 2)  # (B, F*N, W)

    def finish(self, x: torch.Tensor, attn_out: torch.Tensor, mod: tuple[torch.Tensor, ...]) -> torch.Tensor:
        _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        x = x + gate_msa * self.action_out(attn_out.reshape(x.shape))
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


HEAD_CHANNELS = {"delta": 0, "warp": 3}
"""Output channels per pixel beyond the frame's own: the warp head's flow (2) and occlusion mask (1)."""

FLOW_SCALE = 4.0
"""Pixels of flow per unit of the warp head's output."""


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[p] = frames[p + flow[p]]`` (bilinear, borders repeated).

    ``frames`` ``(..., C, H, W)``, ``flow`` ``(..., 2, H, W)`` in pixels (x, then y)."""
    *lead, c, h, w = frames.shape
    ys = (2 * torch.arange(h, device=frames.device, dtype=flow.dtype) + 1) / h - 1
    xs = (2 * torch.arange(w, device=frames.device, dtype=flow.dtype) + 1) / w - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2) as (x, y)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=frames.device, dtype=flow.dtype)
    grid = base + flow.reshape(-1, 2, h, w).movedim(1, -1) * scale  # (B', H, W, 2)
    out = F.grid_sample(
        frames.reshape(-1, c, h, w), grid.to(frames.dtype), mode="bilinear", padding_mode="border",
        align_corners=False,
    )
    return out.reshape(*lead, c, h, w)


class FinalLayer(nn.Module):
    def __init__(self, cfg: AstraConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        out_channels = cfg.channels + HEAD_CHANNELS[cfg.output_head]
        self.linear = nn.Linear(cfg.width, cfg.patch_size**2 * out_channels)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class AstraWorldModel(nn.Module):
    def __init__(self, cfg: AstraConfig):
        super().__init__()
        self.cfg = cfg
        p, w = cfg.patch_size, cfg.width
        self.patch_embed = nn.Linear(2 * p * p * cfg.channels, w)  # (frame, previous frame) patches
        self.register_buffer("pos_embed", sincos_2d(cfg.image_size // p, w), persistent=False)
        self.noise_embed = NoiseLevelEmbedder(w)
        self.action_embed = ActionExperts(cfg)
        self.state_embed = StateEmbedder(cfg) if cfg.robot_state else None
        self.kinematics_embed = KinematicsEmbedder(cfg) if cfg.kinematics is not None else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def basic(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        for layer in (self.noise_embed.mlp[0], self.noise_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN[-1].weight)
            nn.init.zeros_(block.adaLN[-1].bias)
            if block.action_adaLN is not None:
                nn.init.zeros_(block.action_adaLN[-1].weight)
                nn.init.zeros_(block.action_adaLN[-1].bias)
            nn.init.zeros_(block.action_in.weight)
            nn.init.zeros_(block.action_in.bias)
            nn.init.eye_(block.action_out.weight)
            nn.init.zeros_(block.action_out.bias)
        if self.state_embed is not None:
            nn.init.zeros_(self.state_embed.mlp[-1].weight)
            nn.init.zeros_(self.state_embed.mlp[-1].bias)
        if self.kinematics_embed is not None:
            nn.init.zeros_(self.kinematics_embed.proj.weight)
            nn.init.zeros_(self.kinematics_embed.proj.bias)
        nn.init.zeros_(self.final.adaLN[-1].weight)
        nn.init.zeros_(self.final.adaLN[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    # -- tokens ---------------------------------------------------------------------------------

    def patchify(self, frames: torch.Tensor) -> torch.Tensor:
        """``(..., C, H, W)`` -> ``(..., N, p*p*C)``."""
        p, c = self.cfg.patch_size, self.cfg.channels
        *lead, _, h, w = frames.shape
        x = frames.reshape(*lead, c, h // p, p, w // p, p)
        x = x.movedim(-5, -1)  # (..., h/p, p, w/p, p, C)
        x = x.transpose(-4, -3)  # (..., h/p, w/p, p, p, C)
        return x.reshape(*lead, (h // p) * (w // p), p * p * c)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(..., N, p*p*C')`` -> ``(..., C', H, W)`` (``C'`` from the token width)."""
        p, size = self.cfg.patch_size, self.cfg.image_size
        g = size // p
        *lead, _, width = tokens.shape
        c = width // (p * p)
        x = tokens.reshape(*lead, g, g, p, p, c).transpose(-4, -3)  # (..., g, p, g, p, C')
        return x.movedim(-1, -5).reshape(*lead, c, size, size)

    def head(self, tokens: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Final-layer tokens ``(..., N, p*p*C')`` -> the network output ``(..., C, H, W)``.

        ``delta``: the tokens are the output. ``warp`` (the change from ``previous``, the frame
        before as written into the history): ``sigmoid(mask) * (warp(previous, flow) - previous) +
        residual``; all zero at initialisation (flow 0), so the untrained model is copy-last too."""
        out = self.unpatchify(tokens)
        if self.cfg.output_head == "delta":
            return out
        flow, mask, residual = out[..., :2, :, :], out[..., 2:3, :, :], out[..., 3:, :, :]
        return torch.sigmoid(mask) * (warp(previous, flow * FLOW_SCALE) - previous) + residual

    def embed(self, frames: torch.Tensor, previous: torch.Tensor, actions: Actions) -> torch.Tensor:
        """Tokens of frames, each patch next to the same patch of the frame before it (and, with
        ``kinematics``, told where the frame's joint positions put the links)."""
        patches = torch.cat([self.patchify(frames), self.patchify(previous)], dim=-1)
        x = self.patch_embed(patches) + self.pos_embed  # (..., N, W)
        if self.kinematics_embed is not None and actions.state is not None:
            x = x + self.kinematics_embed(actions.state, actions.state_mask)
        return x

    def conditioning(
        self, s: torch.Tensor, actions: Actions
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, balance = self.action_embed(actions)
        if self.state_embed is not None and actions.state is not None:
            a = a + self.state_embed(actions.state, actions.state_mask)
        return self.noise_embed(s), a, balance

    # -- full sequence (training) ---------------------------------------------------------------

    def attention_mask(self, frames: int, device: torch.device) -> torch.Tensor:
        """Boolean ``(2TN, 2TN)`` mask over [context frames; target frames] tokens (``(TN, TN)`` over
        the context frames alone for a ``fused_step`` model)."""
        m, n = self.cfg.max_history, self.cfg.tokens_per_frame
        i = torch.arange(frames, device=device)
        dist = i[:, None] - i[None, :]  # query frame - key frame
        ctx_ctx = (dist >= 0) & (dist <= m)
        if self.cfg.fused_step:
            return ctx_ctx.repeat_interleave(n, 0).repeat_interleave(n, 1)
        tgt_ctx = (dist >= 0) & (dist < m)
        tgt_tgt = dist == 0
        none = torch.zeros_like(tgt_tgt)
        mask = torch.cat([torch.cat([ctx_ctx, none], 1), torch.cat([tgt_ctx, tgt_tgt], 1)], 0)
        return mask.repeat_interleave(n, 0).repeat_interleave(n, 1)

    def forward(
        self,
        context: torch.Tensor,
        context_level: torch.Tensor,
        context_actions: Actions,
        target: torch.Tensor | None = None,
        target_level: torch.Tensor | None = None,
        target_actions: Actions | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict every frame that follows a context frame, in one pass.

        context, target: ``(B, T, C, H, W)`` (noisy) frames; ``*_level``: ``(B, T)`` noise levels;
        actions ``(B, T, A)``. Target ``k`` follows context ``k`` and is denoised against it; a
        ``fused_step`` model has no target stream (pass None): context ``k``'s own tokens predict
        frame ``k + 1``. Returns the network output for each following frame ``(B, T, C, H, W)``
        (its change from context ``k``) and the router's load-balancing loss.
        """
        b, t = context.shape[:2]
        n, hd = self.cfg.tokens_per_frame, self.cfg.head_dim
        c, a, balance = self.conditioning(context_level, context_actions)  # (B, T, W)
        context_previous = torch.cat([torch.zeros_like(context[:, :1]), context[:, :-1]], 1)
        x = self.embed(context, context_previous, context_actions)  # (B, T, N, W)
        positions = torch.arange(t)
        if not self.cfg.fused_step:
            if target is None or target_level is None or target_actions is None:
                raise ValueError("target, target_level and target_actions are required without fused_step")
            c_tgt, a_tgt, bal_tgt = self.conditioning(target_level, target_actions)
            x = torch.cat([x, self.embed(target, context, target_actions)], 1)  # (B, 2T, N, W)
            c, a = torch.cat([c, c_tgt], 1), torch.cat([a, a_tgt], 1)
            positions = torch.cat([positions, torch.arange(1, t + 1)])
            balance = (balance + bal_tgt) / 2
        c, a = c[:, :, None], a[:, :, None]  # (B, F, 1, W)
        cos, sin = rope_angles(positions.repeat_interleave(n).to(x.device), hd)
        mask = self.attention_mask(t, x.device)
        for block in self.blocks:
            mod = block.modulation(c, a)
            q, k, v = block.attn.split(block.attention_input(x, mod, a))
            x = block.finish(x, block.attn.merge(rotate(q, cos, sin), rotate(k, cos, sin), v, mask), mod)
        out = self.final(x[:, -t:], c[:, -t:])  # (B, T, N, p*p*C')
        return self.head(out, context), balance

    # -- streaming (inference, export) ----------------------------------------------------------

    def empty_cache(
        self, batch: int, device: torch.device | None = None, slots: int | None = None
    ) -> KVCache:
        """Zeroed own rings of ``slots`` frames (default ``max_history``) for ``batch`` streams."""
        cfg = self.cfg
        slots = cfg.max_history if slots is None else slots
        shape = (cfg.depth, cfg.heads, batch, slots * cfg.tokens_per_frame, cfg.head_dim)
        zeros = torch.zeros(shape, device=device)
        return KVCache(zeros, zeros.clone(), torch.zeros(batch, slots, device=device))

    def empty_history(self, slots: int | None = None, device: torch.device | None = None) -> KVCache:
        """A zeroed shared history of ``slots`` frames (default ``max_history``)."""
        cfg = self.cfg
        slots = cfg.max_history if slots is None else slots
        shape = (cfg.depth, slots, cfg.heads, cfg.tokens_per_frame, cfg.head_dim)
        zeros = torch.zeros(shape, device=device)
        return KVCache(zeros, zeros.clone(), torch.zeros(1, slots, device=device))

    def step(
        self,
        frame: torch.Tensor,
        previous: torch.Tensor,
        level: torch.Tensor,
        actions: Actions,
        cache: KVCache,
        rope_cos: torch.Tensor,
        rope_sin: torch.Tensor,
        with_output: bool = True,
        history: KVCache | None = None,
    ) -> StepOutput:
        """Run one frame against the cached frames (which it does not modify).

        frame ``(B, C, H, W)`` at noise ``level`` ``(B,)``, ``previous`` the frame before it as it was
        written (zeros when nothing was), actions ``(B, A)``, ``rope_cos`` / ``rope_sin`` ``(B,
        head_dim / 2)`` of the frame's index (``rope.rope_tables``). The frame attends to ``cache``,
        each stream's own ring of frames, and to ``history`` (optional), frames that every stream
        shares (the live history under a rollout's candidates), entered once and never copied per
        stream (``KVCache`` has the layouts). Denoising steps use the output; writing a context frame
        (at the small context noise level) passes the returned keys and values to ``write`` or
        ``write_history``; it needs no output (``with_output=False``: the last block stops at its
        keys/values, the final layer is skipped). A ``fused_step`` model's write also predicts: its
        output is the change from ``frame`` to the frame after it.
        """
        cfg = self.cfg
        n = cfg.tokens_per_frame
        c, a, _ = self.conditioning(level, actions)  # (B, W)
        c, a = c[:, None, None], a[:, None, None]  # (B, 1, 1, W)
        x = self.embed(frame, previous, actions)[:, None]  # (B, 1, N, W)
        cos, sin = rope_cos[None, :, None], rope_sin[None, :, None]  # (1, B, 1, head_dim / 2)

        def additive(valid: torch.Tensor) -> torch.Tensor:
            """``(rows, slots)`` valid flags -> additive ``(rows, slots * N)``: -inf on empty slots."""
            empty = torch.where(valid > 0.5, 0.0, -math.inf)[:, :, None]
            return empty.expand(-1, -1, n).reshape(valid.shape[0], -1)

        own_mask = additive(cache.valid)[None, :, None]  # (1, B, 1, R*N)
        shared_mask = None if history is None else additive(history.valid)[None]  # (1, 1, M*N)
        new_keys, new_values = [], []
        for layer, block in enumerate(self.blocks):
            mod = block.modulation(c, a)
            q, k, v = block.attn.split(
                block.attention_input(x, mod, a), heads_first=True
            )  # (heads, B, N, hd)
            k = rotate(k, cos, sin)
            new_keys.append(k)
            new_values.append(v)
            if not with_output and layer == cfg.depth - 1:
                break
            q = rotate(q, cos, sin)
            own = (cache.keys[layer], cache.values[layer], own_mask)
            shared = None if history is None else (history.keys[layer], history.values[layer], shared_mask)
            x = block.finish(x, block.attn.merge_cached(q, k, v, own, shared), mod)
        base = frame if cfg.fused_step else previous  # the frame the output is a change from
        out = self.head(self.final(x, c), base[:, None])[:, 0] if with_output else None
        return StepOutput(out, torch.stack(new_keys), torch.stack(new_values))

    def write(self, cache: KVCache, keys: torch.Tensor, values: torch.Tensor, slot: int) -> None:
        """Store a frame's keys/values from ``step`` in slot ``slot`` of streams' own rings (in place)."""
        n = self.cfg.tokens_per_frame
        cache.keys[:, :, :, slot * n : (slot + 1) * n] = keys
        cache.values[:, :, :, slot * n : (slot + 1) * n] = values
        cache.valid[:, slot] = 1.0

    def write_history(self, history: KVCache, keys: torch.Tensor, values: torch.Tensor, slot: int) -> None:
        """Store one stream's frame (keys/values from a batch-1 ``step``) in slot ``slot`` of a shared
        history (in place)."""
        history.keys[:, slot] = keys[:, :, 0]
        history.values[:, slot] = values[:, :, 0]
        history.valid[:, slot] = 1.0
