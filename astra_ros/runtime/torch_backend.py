"""The PyTorch reference backend (CPU or CUDA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from astra_ros.hashing import file_sha256
from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
from astra_ros.model.checkpoint import load_checkpoint
from astra_ros.runtime.base import ModelInfo, model_info
from astra_ros.runtime.streaming import StreamingBackend


class TorchBackend(StreamingBackend):
    def __init__(self, model: AstraWorldModel, info: ModelInfo, device: str = "cpu", **options: Any):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        super().__init__(info, model.cfg, **options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **options: Any) -> TorchBackend:
        checkpoint = load_checkpoint(path)
        info = model_info("torch", checkpoint.meta, checkpoint.config, file_sha256(path))
        return cls(checkpoint.build_model(), info, device, **options)

    def _empty_cache(self, batch: int) -> KVCache:
        return self.model.empty_cache(batch, self.device)

    def _tile_cache(self, cache: KVCache, batch: int) -> KVCache:
        return KVCache(
            cache.keys.repeat(1, batch, 1, 1, 1),
            cache.values.repeat(1, batch, 1, 1, 1),
            cache.length.repeat(batch),
        )

    @torch.inference_mode()
    def _step(self, frame, previous, level, actions, mask, modality, cache):
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        out, cache = self.model.step(
            tensor(frame),
            tensor(previous),
            tensor(level),
            Actions(tensor(actions), tensor(mask), tensor(modality)),
            cache,
        )
        return out.float().cpu().numpy(), cache
