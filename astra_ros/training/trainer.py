"""The training loop: data, optimisation, EMA, validation, logging, atomic checkpoints, DDP.

Determinism: the batch indices, the windows' augmentation and every noise draw of step ``n`` come
from generators seeded with ``(seed, n, rank)``, so a run resumed from a checkpoint continues
exactly as if it had never stopped (the checkpoint holds model, EMA, optimizer and the step counter).

Devices: ``device`` auto picks CUDA when available. Model, EMA and optimizer state live there;
batches are collated on the host, pinned and copied asynchronously; the noise generators are
created on the device (so a CUDA run is deterministic on its own, not equal to a CPU run). DDP
uses nccl with CUDA tensors (one device per process: ``LOCAL_RANK``) and gloo on the CPU.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from astra_ros.data.augment import AUGMENTATIONS
from astra_ros.data.bags import Episode
from astra_ros.data.windows import WindowDataset
from astra_ros.model.astra import AstraWorldModel
from astra_ros.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from astra_ros.model.config import AstraConfig
from astra_ros.runtime.torch_backend import resolve_device
from astra_ros.training.config import TrainingError, TrainSettings
from astra_ros.training.objective import training_loss
from astra_ros.training.validate import validate


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX). Without it bf16 autocast is
    emulated and far slower than fp32 (measured: about 16x on a 2-core AVX2 EPYC)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def learning_rate(s: TrainSettings, step: int) -> float:
    """Linear warm-up, then constant or cosine decay reaching ``lr_min`` at the last step."""
    warmup = min(1.0, (step + 1) / s.warmup_steps)
    if s.lr_schedule == "constant" or s.steps is None:
        return s.lr * warmup
    progress = min(1.0, max(0.0, (step + 1 - s.warmup_steps) / max(s.steps - s.warmup_steps, 1)))
    return warmup * (s.lr_min + 0.5 * (s.lr - s.lr_min) * (1.0 + math.cos(math.pi * progress)))


def training_device(name: str) -> torch.device:
    """The device of this process: under torchrun with CUDA, the GPU of its ``LOCAL_RANK``."""
    try:
        device = resolve_device(name)
    except ValueError as err:
        raise TrainingError(str(err)) from err
    if device.type == "cuda" and "LOCAL_RANK" in os.environ and device.index in (None, 0):
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def process_group_backend(device: torch.device) -> str:
    """nccl only for CUDA tensors; gloo for CPU tensors (nccl cannot reduce them)."""
    return "nccl" if device.type == "cuda" else "gloo"


def distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(process_group_backend(device))
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast for ``precision``; auto: on CUDA where supported, on a CPU with native bf16."""
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainingError(f"precision={precision!r}; expected 'auto', 'bf16' or 'fp32'")
    if precision != "auto":
        return precision == "bf16"
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else native_bf16()


def check_memory(cfg: AstraConfig, settings: TrainSettings, device: torch.device) -> None:
    """Refuse a configuration whose attention and activations clearly exceed free (GPU) memory."""
    tokens = 2 * (settings.window - 1) * cfg.tokens_per_frame
    attention = settings.batch_size * cfg.heads * tokens**2 * 4 * cfg.depth * 2
    activations = settings.batch_size * tokens * cfg.width * 4 * cfg.depth * 24
    need = attention + activations
    available = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else _available_memory()
    if available and need > 0.8 * available:
        raise TrainingError(
            f"preset needs about {need / 2**30:.1f} GiB per process for batch_size={settings.batch_size}, "
            f"window={settings.window} ({tokens} tokens); {available / 2**30:.1f} GiB are available. "
            "Use a smaller preset, batch size or window."
        )


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def collate(items: list[dict[str, np.ndarray]], device: torch.device) -> dict[str, torch.Tensor]:
    """Stack windows on the host; for CUDA through pinned memory with an asynchronous copy."""
    batch = {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}
    if device.type != "cuda":
        return batch
    return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}


class Trainer:
    def __init__(
        self,
        cfg: AstraConfig,
        train: list[Episode],
        val: list[Episode],
        run_dir: Path,
        settings: TrainSettings,
        meta: dict[str, Any],
        resume: bool = False,
        init: Checkpoint | None = None,
    ):
        self.device = training_device(settings.device)
        self.bf16 = use_bf16(settings.precision, self.device)
        self.rank, self.world = distributed(self.device)
        if settings.window == 0:
            settings.window = cfg.max_history + 1
        if settings.steps is None and settings.minutes is None:
            raise TrainingError("give a budget: steps or minutes")
        if not 0.0 <= settings.objective.full_noise_prob <= 1.0:
            raise TrainingError(f"full_noise_prob={settings.objective.full_noise_prob}; expected 0..1")
        if settings.objective.structure_weight < 0:
            raise TrainingError(f"structure_weight={settings.objective.structure_weight}; expected >= 0")
        if settings.lr_schedule not in ("constant", "cosine"):
            raise TrainingError(f"lr_schedule is {settings.lr_schedule!r}; expected 'constant' or 'cosine'")
        if settings.lr_schedule == "cosine" and settings.steps is None:
            raise TrainingError("the cosine learning-rate schedule decays over --steps; give --steps")
        check_memory(cfg, settings, self.device)
        self.cfg, self.settings, self.run_dir, self.val = cfg, settings, run_dir, val
        if settings.augment not in AUGMENTATIONS:
            raise TrainingError(f"augment={settings.augment!r}; expected one of {sorted(AUGMENTATIONS)}")
        self.data = WindowDataset(train, settings.window, cfg, augmentation=AUGMENTATIONS[settings.augment])
        if len(self.data) == 0:
            raise TrainingError(f"no training windows of {settings.window} frames in {len(train)} episodes")
        torch.manual_seed(settings.seed)
        self.model = AstraWorldModel(cfg).to(self.device)
        if init is not None:
            self._initialize(init)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.meta = {**meta, "train_settings": asdict(settings), "world_size": self.world}
        self.step, self.elapsed = 0, 0.0
        self.checkpoint_path = run_dir / "checkpoint.pt"
        if resume and self.checkpoint_path.exists():
            self._restore(load_checkpoint(self.checkpoint_path))
        self.network: torch.nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if settings.compile:
            self.network = torch.compile(self.network)

    # -- checkpoints ----------------------------------------------------------------------------

    def _initialize(self, init: Checkpoint) -> None:
        """Start from ``init``'s weights. The allowed config changes switch on ``action_modulation``,
        ``robot_state`` or ``kinematics`` (their zero-initialised layers start the model unchanged),
        set the training-only ``state_drop_prob`` and switch ``fused_step`` (same weights, one pass)."""
        switchable = {
            "fused_step": self.cfg.fused_step,
            "action_modulation": True,
            "robot_state": True,
            "kinematics": self.cfg.kinematics,
            "state_drop_prob": self.cfg.state_drop_prob,
        }
        if (
            replace(self.cfg, **switchable) != replace(init.config, **switchable)
            or (init.config.robot_state and not self.cfg.robot_state)
            or (init.config.action_modulation and not self.cfg.action_modulation)
            or init.config.kinematics not in (None, self.cfg.kinematics)
        ):
            raise TrainingError("--init has another config than the preset with its --set overrides")
        missing, unexpected = self.model.load_state_dict(init.model, strict=False)
        switched_on = ("state_embed.", "kinematics_embed.")
        new = [key for key in missing if ".action_adaLN." not in key and not key.startswith(switched_on)]
        if new or unexpected:
            raise TrainingError(f"--init weights do not fit: missing {new}, unexpected {unexpected}")

    def _restore(self, checkpoint: Checkpoint) -> None:
        if checkpoint.config != self.cfg:
            raise TrainingError(f"{self.checkpoint_path} was trained with another config; cannot resume")
        trainer = checkpoint.trainer or {}
        self.model.load_state_dict(trainer["weights"])
        self.ema.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.step, self.elapsed = int(trainer["step"]), float(trainer["elapsed"])

    def save(self) -> None:
        if self.rank != 0:
            return
        meta = {**self.meta, "steps": self.step, "train_seconds": round(self.elapsed, 1)}
        trainer_state = {"weights": self.model.state_dict(), "step": self.step, "elapsed": self.elapsed}
        save_checkpoint(
            self.checkpoint_path,
            Checkpoint(self.cfg, self.ema.state_dict(), meta, self.optimizer.state_dict(), trainer_state),
        )

    def export_model(self, path: Path) -> None:
        """The EMA weights with metadata and no optimizer state: the file to ship."""
        meta = {**self.meta, "steps": self.step, "train_seconds": round(self.elapsed, 1)}
        save_checkpoint(path, Checkpoint(self.cfg, self.ema.state_dict(), meta))

    # -- the loop -------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[dict[str, torch.Tensor], torch.Generator]:
        seed = (self.settings.seed * 1_000_003 + step) * 64 + self.rank
        rng = np.random.default_rng(seed)
        indices = rng.integers(0, len(self.data), self.settings.batch_size)
        batch = collate(self.data.windows(indices, rng), self.device)
        return batch, torch.Generator(self.device).manual_seed(seed)

    def _done(self) -> bool:
        s = self.settings
        return (s.steps is not None and self.step >= s.steps) or (
            s.minutes is not None and self.elapsed >= 60 * s.minutes
        )

    def train_step(self) -> dict[str, Any]:
        """One optimisation step (batch, loss, update, EMA); returns its log row."""
        s = self.settings
        start = time.monotonic()
        batch, generator = self._batch(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(s, self.step)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss, stats = training_loss(self.model, batch, s.objective, generator, self.network)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip))
        self.optimizer.step()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1.0 - s.ema_decay)
        self.step += 1
        seconds = time.monotonic() - start
        self.elapsed += seconds
        return {
            "step": self.step,
            "elapsed_s": round(self.elapsed, 2),
            "lr": learning_rate(s, self.step - 1),
            "grad_norm": round(grad_norm, 4),
            "samples_per_s": round(s.batch_size * self.world / seconds, 2),
            **{k: round(v, 6) for k, v in stats.items()},
        }

    def train(self) -> dict[str, float]:
        s = self.settings
        log_path = self.run_dir / "log.csv"
        total = s.steps if s.steps is not None else None
        bar = tqdm(total=total, initial=self.step, desc="train", disable=self.rank != 0, dynamic_ncols=True)
        last_checkpoint, last_val = time.monotonic(), {}
        self.model.train()
        while not self._done():
            row = self.train_step()
            if self.rank == 0 and self.val and self.step % s.val_every == 0:
                last_val = validate(self.ema, self.val, meta=self.meta)
                row.update(last_val)
                self.model.train()
            if self.rank == 0:
                self._log(log_path, row)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{row['loss']:.4f}",
                    sps=row["samples_per_s"],
                    val=f"{last_val.get('val_model_psnr_h8', float('nan')):.2f}",
                )
            if time.monotonic() - last_checkpoint > 60 * s.checkpoint_minutes:
                self.save()
                last_checkpoint = time.monotonic()
        bar.close()
        self.save()
        final = validate(self.ema, self.val, meta=self.meta) if self.rank == 0 and self.val else {}
        if self.rank == 0:
            (self.run_dir / "final_validation.json").write_text(json.dumps(final, indent=2))
        return final

    def _log(self, path: Path, row: dict[str, Any]) -> None:
        fields = [
            "step",
            "elapsed_s",
            "lr",
            "grad_norm",
            "samples_per_s",
            "loss",
            "diffusion",
            "balance",
            "structure",
            "gradient",
            "ranking",
            "rolled",
            "val_windows",
            "val_model_psnr_h1",
            "val_model_psnr_h8",
            "val_teacher_psnr_h1",
            "val_teacher_psnr_h8",
            "val_copy_psnr_h1",
            "val_copy_psnr_h8",
        ]
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
