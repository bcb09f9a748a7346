"""Training windows over episodes. Torch-free (a sequence-style dataset a DataLoader can wrap)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from astra_ros.data.augment import Augmentation
from astra_ros.data.bags import Episode
from astra_ros.model.actions import modality_id, pack_actions, state_step
from astra_ros.model.config import AstraConfig

__all__ = ["WindowDataset", "split_episodes"]


class WindowDataset:
    """All windows of ``window`` consecutive frames (every ``stride`` frames) of every episode.

    Item: dict of numpy arrays ``frames`` (T, S, S, 3) uint8, ``actions`` and ``action_mask``
    (T, cfg.action_dim) float32 (``pack_actions`` of ``Episode.commands``), ``modality`` int64
    scalar (``modality_id``), ``episode`` and ``start`` int64 scalars. Action ``t`` drives frame
    t -> t+1: the mean command over that interval (the rule of ``astra_ros.data.pairing``).

    Models with ``robot_state`` also get ``state`` and ``state_mask`` (T, cfg.max_joints): the joint
    positions recorded at each frame (mask 0 where the episode has none), and ``state_delta``
    (T, cfg.max_joints): the displacement that frame t's command asks for over its interval
    (``state_delta``), which the objective integrates to dead-reckon states as the runtime does.

    ``augmentation`` (``data/augment.py``) transforms the frames of the windows that ``windows``
    returns, one draw per window; item access (``dataset[i]``) is never augmented.
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        window: int,
        cfg: AstraConfig,
        stride: int = 1,
        augmentation: Augmentation | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window={window}; expected >= 1")
        if stride < 1:
            raise ValueError(f"stride={stride}; expected >= 1")
        self.window, self.stride, self.cfg = window, stride, cfg
        self.augmentation = augmentation if augmentation is not None and augmentation.active else None
        self.episodes = list(episodes)
        self._packed: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._states: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
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
            if cfg.robot_state:
                self._states.append(episode_states(ep, cfg))
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
        item = {
            "frames": self.episodes[e].frames[sl],
            "actions": actions[sl],
            "action_mask": mask[sl],
            "modality": np.int64(mod),
            "episode": np.int64(e),
            "start": np.int64(s),
        }
        if self._states:
            state, state_mask, delta = self._states[e]
            item.update(state=state[sl], state_mask=state_mask[sl], state_delta=delta[sl])
        return item

    def windows(self, indices: Sequence[int], rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
        """The windows at ``indices`` (a training batch); with an augmentation, window ``k``'s frames
        are transformed by the ``k``-th draw from ``rng`` (nothing is drawn without one)."""
        items = [self[int(i)] for i in indices]
        if self.augmentation is None:
            return items
        return [{**item, "frames": self.augmentation.draw(rng)(item["frames"])} for item in items]


def episode_states(ep: Episode, cfg: AstraConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded joint positions, their mask and the commanded displacements ``(T, max_joints)``."""
    t = len(ep)
    state = np.zeros((t, cfg.max_joints), np.float32)
    mask = np.zeros_like(state)
    delta = np.zeros_like(state)
    if ep.states is None or ep.modality not in ("joint_velocity", "joint_position"):
        return state, mask, delta
    positions = ep.states.positions
    joints = positions.shape[1]
    if joints > cfg.max_joints:
        raise ValueError(
            f"{ep.source}: {joints} joint states; expected at most {cfg.max_joints} (max_joints)"
        )
    known = np.isfinite(positions)
    state[:, :joints] = np.where(known, positions, 0.0)
    mask[:, :joints] = known
    periods = np.diff(ep.stamps).astype(np.float64) / 1e9
    periods = np.append(periods, np.median(periods) if len(periods) else 0.0)
    delta[:, :joints] = state_step(ep.commands, ep.modality, periods[:, None])
    return state, mask, delta


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
