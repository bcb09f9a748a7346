"""CUDA: a bf16 training step and the torch backend on the GPU (skipped without CUDA).

Imports only what scripts/device_check.sh has on a GPU machine (torch, numpy, the source tree and
the pure-Python packages it carries): no simulator, no ROS. Run there as ``pytest -k cuda``.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from runtime_fixtures import synthetic_episodes, tiny_checkpoint

from astra_ros.model.config import AstraConfig
from astra_ros.runtime.loader import load_backend
from astra_ros.training.config import TrainSettings
from astra_ros.training.trainer import Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
]


def test_cuda_training_steps_keep_every_tensor_on_the_gpu_in_bf16(tmp_path):
    cfg = AstraConfig.preset("tiny")
    episodes = synthetic_episodes(cfg.image_size)
    settings = TrainSettings(batch_size=4, steps=3, device="auto", precision="auto", val_every=3)
    trainer = Trainer(cfg, episodes[:2], episodes[2:], tmp_path, settings, {})
    assert trainer.device.type == "cuda" and trainer.bf16 == torch.cuda.is_bf16_supported()
    batch, generator = trainer._batch(0)
    assert generator.device.type == "cuda" and all(v.is_cuda for v in batch.values())
    assert all(p.is_cuda for p in (*trainer.model.parameters(), *trainer.ema.parameters()))
    final = trainer.train()
    assert all(p.is_cuda for p in trainer.ema.parameters())  # validation did not move it
    assert next(iter(trainer.optimizer.state.values()))["exp_avg"].is_cuda
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 3 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert final["val_windows"] >= 1


def test_cuda_torch_backend_matches_the_cpu():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    commands = rng.normal(size=(5, 7)).astype(np.float32)
    out = {}
    for device in ("cpu", "cuda"):
        backend = load_backend(str(tiny_checkpoint()), "torch", device=device, seed=1, context_noise=0.0)
        assert backend.device.type == device
        for frame, command in zip(frames, commands, strict=True):
            backend.ingest(frame, command, "joint_velocity")
        out[device] = backend.predict(commands[None, :3], "joint_velocity", seed=2).astype(int)
    assert np.abs(out["cpu"] - out["cuda"]).max() <= 2  # TF32 / kernel rounding only
