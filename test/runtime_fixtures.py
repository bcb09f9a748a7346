"""Shared by test_export_* and test_runtime_*: a tiny checkpoint (random, non-zero weights) and its
ONNX export, made once per pytest process."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_CACHE: dict[str, Path] = {}


def tiny_checkpoint(modalities=("joint_velocity",)) -> Path:
    """A tiny model whose zero-initialised layers are perturbed, so outputs depend on every input."""
    if "pt" not in _CACHE:
        import torch

        from astra_ros.model.astra import AstraWorldModel
        from astra_ros.model.checkpoint import Checkpoint, save_checkpoint
        from astra_ros.model.config import AstraConfig

        torch.manual_seed(0)
        cfg = AstraConfig.preset("tiny")
        model = AstraWorldModel(cfg)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        folder = Path(tempfile.mkdtemp(prefix="astra_tiny_"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "tiny.pt"
        joints = [f"j{i}" for i in range(7)]
        meta = {"modalities": list(modalities), "joint_names": joints, "frame_period": 0.1}
        save_checkpoint(path, Checkpoint(cfg, model.state_dict(), meta=meta))
        _CACHE["pt"] = path
    return _CACHE["pt"]


def tiny_onnx() -> Path:
    """``tiny.onnx`` + ``tiny.json`` exported by astra-export (do not modify: copy first)."""
    if "onnx" not in _CACHE:
        from astra_ros.export.onnx_export import export

        pt = tiny_checkpoint()
        out = pt.parent / "tiny.onnx"
        export(pt, out, threads=1)
        _CACHE["onnx"] = out
    return _CACHE["onnx"]


def copy_model(dest: Path) -> Path:
    """A private copy of the tiny ONNX model and its sidecar in ``dest``."""
    src = tiny_onnx()
    shutil.copy(src, dest / src.name)
    shutil.copy(src.with_suffix(".json"), dest / src.with_suffix(".json").name)
    return dest / src.name


def synthetic_episodes(image_size: int, episodes: int = 3, length: int = 40, seed: int = 0) -> list:
    """KUKA-shaped joint-velocity episodes of moving random blobs, without a simulator or a bag
    reader (for the CUDA tests and scripts/device_bench.py, which run where neither is installed)."""
    import numpy as np

    from astra_ros.data.bags import Episode

    rng = np.random.default_rng(seed)
    out = []
    for e in range(episodes):
        base = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        frames = np.stack([np.roll(base, (t, 2 * t), axis=(0, 1)) for t in range(length)])
        commands = rng.normal(size=(length, 7)).astype(np.float32)
        stamps = (np.arange(length) * 66_666_667).astype(np.int64)
        joints = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
        out.append(Episode(frames, stamps, commands, "joint_velocity", joints, f"synthetic/{e}"))
    return out
