"""Training windows over episodes. Torch-free (a sequence-style dataset a DataLoader can wrap)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from astra_ros.data.bags import Episode
from astra_ros.model.actions import modality_id, pack_actions
from astra_ros.model.config import AstraConfig

__all__ = ["WindowDataset", "split_episodes"]


class WindowDataset:
    """All windows of ``window`` consecutive frames (every ``stride`` frames) of every episode.

    Item: dict of numpy arrays ``frames`` (T, S, S, 3) uint8, ``actions`` and ``action_mask``
    (T, cfg.action_dim) float32 (``pack_actions`` of ``Episode.commands``), ``modality`` int64
    scalar (``modality_id``), ``episode`` and ``start`` int64 scalars. Action ``t`` drives frame
    t -> t+1: the mean command over that interval (the rule of ``astra_ros.data.pairing``).
    """

    def __init__(self, episodes: Sequence[Episode], window: int, cfg: AstraConfig, stride: int = 1) -> None:
        if window < 1:
            raise ValueError(f"window={window}; expected >= 1")
        if stride < 1:
            raise ValueError(f"stride={stride}; expected >= 1")
        self.window, self.stride, self.cfg = window, stride, cfg
        self.episodes = list(episodes)
        self._packed: list[tuple[np.ndarray, np.ndarray, int]] = []
        index: list[tuple[int, int]] = []
        for e, ep in enumerate(self.episodes):
            shape = tuple(ep.frames.shape)
            want = (cfg.image_size, cfg.image_size, cfg.channels)
            if ep.frames.ndim != 4 or shape[1:] != want or ep.frames.dtype != np.uint8:
                raise ValueError(
                    f"episode {e} ({ep.source}) frames have shape {shape} {ep.frames.dtype}; "
                    f"expected (T, {want[0]}, {want[1]}, {want[2]}) uint8 (cfg.image_size={cfg.image_size})"
                )
            if ep.commands.shape[0] != shape[0]:
                raise ValueError(
                    f"episode {e} ({ep.source}) has {ep.commands.shape[0]} commands for {shape[0]} frames; "
                    "expected one per frame"
                )
            actions, mask = pack_actions(ep.commands, ep.modality, cfg)
            self._packed.append((actions, mask, modality_id(ep.modality)))
            index.extend((e, s) for s in range(0, shape[0] - window + 1, stride))
        self._index = np.asarray(index, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return int(self._index.shape[0])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window index {i} out of range for {n} windows")
        e, s = (int(v) for v in self._index[i])
        actions, mask, mod = self._packed[e]
        sl = slice(s, s + self.window)
        return {
            "frames": self.episodes[e].frames[sl],
            "actions": actions[sl],
            "action_mask": mask[sl],
            "modality": np.int64(mod),
            "episode": np.int64(e),
            "start": np.int64(s),
        }


def split_episodes(
    episodes: Sequence[Episode], val_fraction: float, seed: int
) -> tuple[list[Episode], list[Episode]]:
    """Hold out whole episodes: ``round(n * val_fraction)`` of them, at least one in each part when
    ``n >= 2`` and ``val_fraction > 0``. Order within each part follows the input order."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}; expected a value in [0, 1)")
    n = len(episodes)
    if n == 0 or val_fraction == 0.0:
        return list(episodes), []
    if n == 1:
        return list(episodes), []
    n_val = min(max(int(round(n * val_fraction)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_ids = set(int(i) for i in perm[:n_val])
    train = [ep for i, ep in enumerate(episodes) if i not in val_ids]
    val = [ep for i, ep in enumerate(episodes) if i in val_ids]
    return train, val
