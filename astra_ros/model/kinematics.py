"""Where the robot's links are in the image: forward kinematics of a serial chain and a pinhole camera,
in torch ops that export to ONNX, and the per-token embedding the world model adds to each frame.

The chain and camera come from a description (``model/robot_description.py``: URDF joint origins and
axes, the base pose, OpenGL view and projection matrices). The chain's points are the base origin and
each joint's child-link origin (the last one is the end effector). The matrix products are written
as broadcast multiply-and-sum, not ``matmul``: autocast leaves them in float32 (bf16 would move the
points by a tenth of a pixel), and they are tiny.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from astra_ros.model.config import AstraConfig
from astra_ros.model.robot_description import movable_joints

MIN_DEPTH = 1e-3
"""Points closer to the camera plane than this (m), or behind it, are not drawn."""


def rpy_matrix(rpy: list[float]) -> torch.Tensor:
    """URDF roll-pitch-yaw (fixed axes x, y, z) -> rotation ``(3, 3)`` float64: Rz(y) Ry(p) Rx(r)."""
    (cr, cp, cy), (sr, sp, sy) = ([f(a) for a in rpy] for f in (math.cos, math.sin))
    return torch.tensor(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ],
        dtype=torch.float64,
    )


def skew(v: torch.Tensor) -> torch.Tensor:
    """``(3,)`` -> the cross-product matrix ``(3, 3)``."""
    x, y, z = v.tolist()
    return torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=v.dtype)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3) @ (..., 3, 3)`` as multiply-and-sum (float32 under autocast)."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def apply(rotation: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3) @ (..., 3)`` as multiply-and-sum."""
    return (rotation * v[..., None, :]).sum(-1)


class ChainProjection(nn.Module):
    """Joint positions ``(..., J)`` -> the chain's ``L = joints + 1`` points in the world ``(..., L, 3)``
    (``world``) or in the ``S x S`` image: pixels ``(..., L, 2)`` as (x right, y down; 0 at the top-left
    corner) and depth ``(..., L)`` along the camera axis, m (``forward``)."""

    def __init__(self, description: dict[str, Any], image_size: int):
        super().__init__()
        self.image_size = image_size
        self.movable = [any(a) for a in description["axis"]]
        self.joints = len(movable_joints(description))
        rest = torch.stack([rpy_matrix(rpy) for rpy in description["origin_rpy"]])  # (n, 3, 3)
        axes = torch.tensor(description["axis"], dtype=torch.float64)
        axes = axes / axes.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        k = torch.stack([skew(a) for a in axes])
        # joint frame in its parent: rest @ R(axis, q) = rest + sin q * rest K + (1 - cos q) * rest K^2
        buffers = {
            "rest": rest,
            "sin_part": rest @ k,
            "cos_part": rest @ k @ k,
            "offset": torch.tensor(description["origin_xyz"], dtype=torch.float64),  # (n, 3)
            "base_rotation": rpy_matrix(description["base_rpy"]),
            "base_offset": torch.tensor(description["base_xyz"], dtype=torch.float64),
            # column-major OpenGL matrices: world -> clip space in one (4, 4)
            "camera": torch.tensor(description["projection"], dtype=torch.float64).reshape(4, 4).T
            @ torch.tensor(description["view"], dtype=torch.float64).reshape(4, 4).T,
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)  # from the config, not the weights

    def world(self, q: torch.Tensor) -> torch.Tensor:
        lead = q.shape[:-1]
        rotation, position = self.base_rotation, self.base_offset.expand(*lead, 3)
        points, i = [position], 0
        for j, movable in enumerate(self.movable):
            position = position + apply(rotation, self.offset[j])
            local = self.rest[j]
            if movable:
                angle = q[..., i, None, None]
                local = local + angle.sin() * self.sin_part[j] + (1 - angle.cos()) * self.cos_part[j]
                i += 1
            rotation = mm(rotation, local)
            points.append(position)
        return torch.stack(points, -2)  # (..., L, 3)

    def forward(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = self.world(q)
        clip = apply(self.camera[:, :3], points) + self.camera[:, 3]  # (..., L, 4)
        depth = clip[..., 3]
        ndc = clip[..., :2] / depth.clamp(min=MIN_DEPTH)[..., None]
        s = self.image_size
        pixels = torch.stack([(ndc[..., 0] + 1) * (s / 2), (1 - ndc[..., 1]) * (s / 2)], -1)
        return pixels, depth


class KinematicsEmbedder(nn.Module):
    """Robot state -> a per-token term ``(..., N, W)``: for each patch, Gaussian bumps (sigma one patch)
    of its centre's distance to each projected point (``L`` channels) and to each link segment between
    consecutive points (``L - 1``), through a zero-initialised linear layer. Frames whose chain joints
    are not all known (mask 0) get zero; points behind the camera draw nothing."""

    def __init__(self, cfg: AstraConfig):
        super().__init__()
        self.chain = ChainProjection(cfg.kinematics, cfg.image_size)
        p, grid = cfg.patch_size, cfg.image_size // cfg.patch_size
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        centres = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * p  # (N, 2) as (x, y), pixels
        self.register_buffer("centres", centres, persistent=False)
        self.inverse_variance = 1.0 / (2.0 * p**2)
        points = len(self.chain.movable) + 1
        self.proj = nn.Linear(2 * points - 1, cfg.width)

    def features(self, q: torch.Tensor) -> torch.Tensor:
        """Joint positions ``(..., J)`` -> bumps ``(..., N, 2L - 1)``."""
        pixels, depth = self.chain(q)  # (..., L, 2), (..., L)
        front = (depth > MIN_DEPTH).to(pixels.dtype)
        d = self.centres[:, None] - pixels[..., None, :, :]  # (..., N, L, 2): from each point to each centre
        points = (-d.square().sum(-1) * self.inverse_variance).exp() * front[..., None, :]
        link = pixels[..., 1:, :] - pixels[..., :-1, :]  # (..., L-1, 2)
        start = d[..., :-1, :]  # (..., N, L-1, 2)
        along = (start * link[..., None, :, :]).sum(-1) / (link.square().sum(-1)[..., None, :] + 1e-6)
        off = start - along.clamp(0, 1)[..., None] * link[..., None, :, :]  # to the segment's nearest point
        both = (front[..., 1:] * front[..., :-1])[..., None, :]  # (..., 1, L-1)
        links = (-off.square().sum(-1) * self.inverse_variance).exp() * both
        return torch.cat([points, links], -1)

    def forward(self, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        j = self.chain.joints
        known = mask[..., :j].amin(-1)[..., None, None]  # (..., 1, 1)
        return self.proj(self.features(state[..., :j])) * known
