"""Model configuration: one dataclass with named presets. Torch-free (used by the runtime)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from astra_ros.model import robot_description

MODALITIES: tuple[str, ...] = ("joint_velocity", "twist", "pose_delta", "discrete", "joint_position")
"""Action modalities the mixture of action experts understands, in the order they were added."""

NO_ACTION = 4
"""Modality id of "no action" (action-free guidance). It was ``len(MODALITIES)`` while there were
four modalities and stays 4, so models saved then keep their tables; later modalities take 5, 6..."""

MODALITY_IDS: dict[str, int] = {m: i if i < NO_ACTION else i + 1 for i, m in enumerate(MODALITIES)}

OUTPUT_HEADS: tuple[str, ...] = ("delta", "warp")

SAVED_WITHOUT_MODALITY_COUNT = 4  # configs saved before `num_modalities` existed cover the first four


@dataclass
class AstraConfig:
    # frames
    image_size: int = 64
    channels: int = 3
    patch_size: int = 8
    # transformer
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    max_history: int = 8  # frames held in the KV cache; older frames are evicted
    # actions: one padded vector of `action_dim` values per frame, plus a mask
    max_joints: int = 16
    num_discrete: int = 8
    num_experts: int = 4
    top_k: int = 2
    action_drop_prob: float = 0.1  # action-free guidance: drop actions in training
    action_modulation: bool = False  # the action also shifts/scales/gates every block (adaLN)
    num_modalities: int = len(MODALITIES)  # the first N of MODALITIES have action tables
    robot_state: bool = False  # per-frame joint positions (up to max_joints) condition every frame
    state_drop_prob: float = 0.2  # training: whole windows lose their state (the model runs without)
    # The robot's chain and camera as numbers (model/robot_description.py): each frame's tokens also
    # see where its joint positions put the links in the image
    kinematics: dict[str, Any] | None = None
    # flow matching: x_s = (1 - s) * x0 + s * noise, s in [0, 1]
    parameterization: str = "x0"  # "x0" or "velocity"
    predict_delta: bool = True  # x0 = previous frame + output (untrained model = copy-last)
    # "delta": the output is the change itself; "warp": the previous frame warped by a predicted flow,
    # blended in by an occlusion mask, plus a residual (rigid links move instead of re-appearing)
    output_head: str = "delta"
    # noise-augmented history memory
    context_noise: float = 0.05  # level the cache is written at during inference
    context_noise_schedule: str = "uniform"  # "uniform" or "recency" (far past noisier)
    context_noise_max: float = 0.3  # training: history levels drawn from [0, max]
    sampling_steps: int = 1
    # One pass per frame: a history frame's tokens also predict the next frame (its output is the
    # change to the next frame), so writing a frame and predicting the one after it are one step;
    # no separate denoising stream, half the tokens in training (sampling_steps must be 1)
    fused_step: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if self.width % self.heads or (self.width // self.heads) % 4:
            raise ValueError(f"width={self.width} must split into heads={self.heads} of a multiple of 4")
        if self.parameterization not in ("x0", "velocity"):
            raise ValueError(f"parameterization={self.parameterization!r}; expected 'x0' or 'velocity'")
        if self.context_noise_schedule not in ("uniform", "recency"):
            raise ValueError(
                f"context_noise_schedule={self.context_noise_schedule!r}; expected 'uniform' or 'recency'"
            )
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]")
        if not NO_ACTION <= self.num_modalities <= len(MODALITIES):
            raise ValueError(
                f"num_modalities={self.num_modalities}; expected {NO_ACTION}..{len(MODALITIES)} "
                f"(the first N of {list(MODALITIES)})"
            )
        if self.output_head not in OUTPUT_HEADS:
            raise ValueError(f"output_head={self.output_head!r}; expected one of {OUTPUT_HEADS}")
        if self.output_head == "warp" and (self.parameterization != "x0" or not self.predict_delta):
            raise ValueError("output_head='warp' needs parameterization='x0' and predict_delta=True")
        if not 1 <= self.sampling_steps <= 50:
            raise ValueError(f"sampling_steps={self.sampling_steps} must be in [1, 50]")
        if self.kinematics is not None:
            if not self.robot_state:
                raise ValueError("kinematics is set but robot_state=False; expected robot_state=True")
            robot_description.check(self.kinematics, self.max_joints)
        one_pass = self.sampling_steps == 1 and self.parameterization == "x0" and self.predict_delta
        if self.fused_step and not one_pass:
            raise ValueError(
                "fused_step=True needs sampling_steps=1, parameterization='x0' and predict_delta=True "
                f"(got {self.sampling_steps}, {self.parameterization!r}, {self.predict_delta})"
            )

    @property
    def tokens_per_frame(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this model has action tables for."""
        return MODALITIES[: self.num_modalities]

    @property
    def modality_rows(self) -> int:
        """Rows of the modality embedding: every id of ``modalities`` and ``NO_ACTION``."""
        return max(NO_ACTION, *(MODALITY_IDS[m] for m in self.modalities)) + 1

    @property
    def action_dim(self) -> int:
        """Length of the padded per-frame action vector shared by all modalities."""
        return max(self.max_joints, 6, 7, self.num_discrete)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AstraConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {"num_modalities": SAVED_WITHOUT_MODALITY_COUNT, **values}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown AstraConfig fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AstraConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    # CI: a forward pass in a few milliseconds on 2 CPU cores.
    "tiny": dict(image_size=32, patch_size=8, width=64, depth=2, heads=2, max_history=4, num_experts=2),
    # The shipped default model: trains on a 2-core CPU in about an hour.
    "small": dict(image_size=64, patch_size=8, width=256, depth=4, heads=4, max_history=8),
    # The shipped G1 model: 26 joints (7 per arm, 6 per Inspire hand), a 4-frame context, and
    # pt + onnx within 40 MB together.
    "g1": dict(image_size=64, patch_size=8, width=128, depth=4, heads=4, max_history=4, max_joints=26),
    # For GPUs.
    "base": dict(image_size=256, patch_size=16, width=768, depth=12, heads=12, max_history=16),
}
