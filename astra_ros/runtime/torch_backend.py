"""The PyTorch reference backend (CPU or CUDA) and the one device rule training shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from astra_ros.hashing import file_sha256
from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
from astra_ros.model.checkpoint import load_checkpoint
from astra_ros.runtime.base import ModelInfo, model_info
from astra_ros.runtime.streaming import Context, StreamingBackend

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic in hardware (without it bf16 is emulated, slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto``: the current CUDA device when one is available, else the CPU; ``cuda`` (or
    ``cuda:N``) without CUDA is an error rather than a silent CPU run."""
    if isinstance(name, torch.device):
        return name
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device={name!r}; expected one of {list(DEVICES)} (or cuda:N)")
    if kind == "auto":
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but torch.cuda.is_available() is False here; expected auto or cpu")
    return torch.device(name)


class TorchBackend(StreamingBackend):
    def __init__(
        self,
        model: AstraWorldModel,
        info: ModelInfo,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        **options: Any,
    ):
        """``device``: auto / cpu / cuda[:N]; None keeps the model where its weights are.
        ``precision``: ``fp32``, or ``bf16`` (autocast, keys/values stored in bf16) where the device
        computes bf16 natively (CPU: oneDNN's check for AVX512-BF16 or AMX)."""
        self.device = next(model.parameters()).device if device is None else resolve_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
        if precision == "bf16" and not bf16_native(self.device):
            raise ValueError(
                f"precision='bf16' but {self.device} has no native bf16 arithmetic; expected fp32"
            )
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.model = model.to(self.device).eval()
        super().__init__(info, model.cfg, **options)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", precision: str = "fp32", **options: Any
    ) -> TorchBackend:
        checkpoint = load_checkpoint(path)
        info = model_info("torch", checkpoint.meta, checkpoint.config, file_sha256(path), precision=precision)
        return cls(checkpoint.build_model(), info, device, precision, **options)

    def _empty_kv(self, batch: int, slots: int) -> KVCache:
        cache = self.model.empty_cache(batch, self.device, slots)
        return cache._replace(keys=cache.keys.to(self.dtype), values=cache.values.to(self.dtype))

    def _empty_history(self, slots: int) -> KVCache:
        history = self.model.empty_history(slots, self.device)
        return history._replace(keys=history.keys.to(self.dtype), values=history.values.to(self.dtype))

    @torch.inference_mode()
    def _grow_kv(self, kv: KVCache, slots: int) -> KVCache:
        grown = self._empty_kv(kv.keys.shape[2], slots)
        tokens = kv.keys.shape[3]
        grown.keys[:, :, :, :tokens] = kv.keys
        grown.values[:, :, :, :tokens] = kv.values
        return grown

    @torch.inference_mode()
    def _gather_history(self, kv: KVCache, slots: np.ndarray) -> KVCache:
        index = torch.from_numpy(slots).to(self.device)
        return KVCache(kv.keys[:, index], kv.values[:, index], kv.valid[:, index])

    @torch.inference_mode()
    def _step(
        self, frame, previous, level, actions, mask, modality, context: Context, rope, state, with_output=True
    ):
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        window = context.window(self.history_limit)
        history = context.history.kv
        run = window.history
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.dtype == torch.bfloat16):
            out = self.model.step(
                tensor(frame),
                tensor(previous),
                tensor(level),
                Actions(tensor(actions), tensor(mask), tensor(modality), *(tensor(x) for x in state)),
                context.own.kv._replace(valid=tensor(window.own_valid)),
                *(tensor(x) for x in rope),
                with_output=with_output,
                history=KVCache(history.keys[:, run], history.values[:, run], tensor(window.history_valid)),
            )
        output = None if out.output is None else out.output.float().cpu().numpy()
        return output, (out.keys, out.values)

    @torch.inference_mode()
    def _store(self, kv: KVCache, entries: tuple[torch.Tensor, torch.Tensor], slot: int) -> None:
        self.model.write(kv, *entries, slot)

    @torch.inference_mode()
    def _store_history(self, kv: KVCache, entries: tuple[torch.Tensor, torch.Tensor], slot: int) -> None:
        self.model.write_history(kv, *entries, slot)
