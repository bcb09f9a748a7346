"""Reset / ingest / predict for every model backend, built on one primitive: a cached step.

Torch-free: the sampler loop runs on numpy arrays around whatever executes the step
(PyTorch, ONNX Runtime or TensorRT).

Timing (``base.WorldModelBackend``): a cache entry is a frame written together with the command
over the interval after it, as in training. The newest observed frame therefore stays pending until
its command is known: the next ``ingest`` writes it with that call's action, and ``predict`` writes
it per candidate with the candidate's first command.

Robot state (models with ``robot_state``): each frame is written with the joint positions measured
at it (``ingest``'s ``state``); a prediction dead-reckons them, every predicted frame getting the
previous frame's state plus the displacement its command asks for (``model.actions.state_step``:
velocity times the model's frame period, or the relative position target). Unknown states are
masked, as in training's state dropout. A ``fused_step`` model predicts the next frame from the
write, so a frame is written with the state of the frame it leads to: at ``ingest`` the state just
measured at the new frame, in a rollout the dead-reckoned state of the frame predicted from it.

Context: a step attends to a shared history (one row that every stream reads: entered once and
never copied per candidate) and to each stream's own ring, which holds the frames that stream wrote
since: a rollout's candidates each write the pending frame with their own first command and then
their predicted frames (all but the last, which nothing reads). The live stream writes into the
live history itself (its own ring is one empty slot); a rollout starts from a copy of the frames in
the live window, oldest first, so the window of the newest ``history_limit`` frames always covers
one run of consecutive history slots and a step reads only those. Each ring slot records the index
of the frame it holds; the window is a mask over both rings.

Noise: every draw comes from a generator seeded by ``(seed, stream, position)``: the context noise
of the frame written at cache position ``p`` from ``(backend seed, 0, p)``, a prediction's noise
from ``(seed, 1, p)`` (``seed`` = predict's argument, else the backend's). The same window with the
same seed therefore gives the same frames whatever was called before.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from astra_ros.model.actions import JOINT_MODALITIES, modality_id, pack_actions, state_step
from astra_ros.model.config import NO_ACTION, AstraConfig
from astra_ros.model.flow import noisy, sample_next_frame, to_model_space
from astra_ros.model.rope import rope_tables
from astra_ros.runtime.base import ModelInfo, Rollout, WorldModelBackend

KV = Any  # backend-specific key/value ring buffers
Entries = Any  # backend-specific keys/values of one frame, as returned by a step
State = tuple[np.ndarray, np.ndarray]  # robot state and mask, each (B, max_joints) float32


@dataclass
class Cache:
    """A ring of ``slots`` frames for ``batch`` streams: the backend's buffers and the index of the
    frame each slot holds."""

    kv: KV
    batch: int
    positions: np.ndarray  # (slots,) int64: the index of the frame in each slot, -1 while empty
    written: int = 0  # frames written into it so far (a history: its frames' count since reset)

    @property
    def slot(self) -> int:
        """The ring slot the next written frame goes to (the oldest once the ring is full)."""
        return self.written % self.positions.shape[0]

    def held(self, first: int) -> np.ndarray:
        """``(slots,)`` float32: 1 where a slot holds a frame of index ``first`` or later."""
        return (self.positions >= max(first, 0)).astype(np.float32)


@dataclass(frozen=True)
class Window:
    """What a step reads: the masks of the own rings ``(B, slots)``, the run of history slots in its
    window (one slot, masked, when there is none) and their mask ``(1, run length)``."""

    own_valid: np.ndarray
    history: slice
    history_valid: np.ndarray


@dataclass
class Context:
    """What a step attends to: ``history`` (one row, shared by every stream) and ``own`` (each
    stream's frames written since the history's newest)."""

    history: Cache
    own: Cache

    @property
    def index(self) -> int:
        """The index of the frame a step runs (the next one written)."""
        return self.history.written + self.own.written

    def window(self, limit: int) -> Window:
        """The newest ``limit`` frames before the stepped one."""
        first = self.index - limit
        held = self.history.held(first)
        slots = np.flatnonzero(held)
        run = slice(int(slots[0]), int(slots[-1]) + 1) if slots.size else slice(0, 1)
        own = np.repeat(self.own.held(first)[None], self.own.batch, 0)
        return Window(own, run, held[None, run])


class StreamingBackend(WorldModelBackend):
    """A world model driven through ``_step``; subclasses own the cache representation.

    ``steps``: Euler denoising steps per frame; ``context_noise``: level at which observed and
    predicted frames are written into the cache; ``guidance_scale``: action guidance
    (1 = conditional only; otherwise ``uncond + g * (cond - uncond)`` with the target frame's
    action removed, the cached history unchanged).
    """

    def __init__(
        self,
        info: ModelInfo,
        config: AstraConfig,
        steps: int | None = None,
        context_noise: float | None = None,
        guidance_scale: float = 1.0,
        seed: int = 0,
    ):
        self.info = info
        self.config = config
        self.steps = steps or config.sampling_steps
        self.context_noise = config.context_noise if context_noise is None else context_noise
        self.guidance_scale = guidance_scale
        if not 1 <= self.steps <= 50:
            raise ValueError(f"steps={self.steps}; expected 1..50")
        if not 0.0 <= self.context_noise < 1.0:
            raise ValueError(f"context_noise={self.context_noise}; expected [0, 1)")
        if config.fused_step and (self.steps != 1 or guidance_scale != 1.0):
            raise ValueError(
                f"steps={self.steps}, guidance_scale={guidance_scale}: a fused_step model predicts in "
                "one pass per frame; expected steps=1 and guidance_scale=1"
            )
        self.seed = int(seed)
        self.history_limit = config.max_history
        self.reset()

    def limit_history(self, frames: int) -> None:
        """Attend to the newest ``frames`` cached frames only (1 .. the model's max_history): older
        ring slots are masked out through ``valid``, so a stream sees what a fresh cache holding just
        those frames would (RoPE depends on relative positions only)."""
        if not 1 <= frames <= self.config.max_history:
            raise ValueError(f"max_history={frames}; expected 1..{self.config.max_history} (the model's)")
        self.history_limit = frames

    # -- primitives implemented by each backend -------------------------------------------------

    @abstractmethod
    def _empty_kv(self, batch: int, slots: int) -> KV:
        """Zeroed own rings of ``slots`` frames for ``batch`` streams."""

    @abstractmethod
    def _empty_history(self, slots: int) -> KV:
        """A zeroed shared history of ``slots`` frames."""

    @abstractmethod
    def _gather_history(self, kv: KV, slots: np.ndarray) -> KV:
        """A new shared history holding the frames in ``slots`` of the history ``kv``, in that order."""

    @abstractmethod
    def _grow_kv(self, kv: KV, slots: int) -> KV:
        """New own rings of ``slots`` frames holding ``kv``'s frames in the same slots."""

    @abstractmethod
    def _step(
        self,
        frame: np.ndarray,
        previous: np.ndarray,
        level: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        modality: np.ndarray,
        context: Context,
        rope: tuple[np.ndarray, np.ndarray],
        state: State,
        with_output: bool = True,
    ) -> tuple[np.ndarray | None, Entries]:
        """One model step: frame ``(B, C, S, S)`` float32 at ``level`` ``(B,)``, the previous frame as
        written ``(B, C, S, S)``, actions and mask ``(B, A)``, modality ``(B,)`` int64, rope cos/sin
        ``(B, head_dim / 2)``, robot state and mask ``(B, max_joints)`` (ignored by models without
        ``robot_state``), attending to ``context`` (what it reads: ``context.window(self.history_limit)``)
        -> output ``(B, C, S, S)`` and the frame's keys/values (valid until the next step).
        ``with_output=False`` (a context write): only the keys/values are needed, the output may be
        None (a backend may skip the work that only the output needs). Must not modify ``context``."""

    @abstractmethod
    def _store(self, kv: KV, entries: Entries, slot: int) -> None:
        """Write a step's keys/values into slot ``slot`` of the own rings ``kv``, in place."""

    @abstractmethod
    def _store_history(self, kv: KV, entries: Entries, slot: int) -> None:
        """Write a batch-1 step's keys/values into slot ``slot`` of the shared history ``kv``, in place."""

    # -- the WorldModelBackend interface ---------------------------------------------------------

    def _empty_cache(self, batch: int, slots: int) -> Cache:
        return Cache(self._empty_kv(batch, slots), batch, np.full(slots, -1, np.int64))

    def _grown(self, cache: Cache, slots: int) -> Cache:
        """``cache`` (own rings) with room for ``slots`` frames, its frames in the same slots."""
        positions = np.full(slots, -1, np.int64)
        positions[: cache.positions.shape[0]] = cache.positions
        return Cache(self._grow_kv(cache.kv, slots), cache.batch, positions, cache.written)

    def _history_snapshot(self) -> Cache:
        """A copy of the frames in the live window, oldest first (what a rollout reads as its history)."""
        live = self._cache
        held = np.flatnonzero(live.held(live.written - self.history_limit))
        if held.size == 0:
            return Cache(self._empty_history(1), 1, np.full(1, -1, np.int64), live.written)
        order = held[np.argsort(live.positions[held])]
        return Cache(self._gather_history(live.kv, order), 1, live.positions[order], live.written)

    def reset(self) -> None:
        """Clear the causal state; noise restarts from ``self.seed`` (draws depend on it and the
        frame index only)."""
        slots = self.config.max_history
        self._cache = Cache(self._empty_history(slots), 1, np.full(slots, -1, np.int64))  # the live history
        self._alone = Context(self._cache, self._empty_cache(1, 1))  # the live stream: no own frames
        self._pending: np.ndarray | None = None  # newest observed frame, not yet written (1, C, S, S)
        self._pending_state: State = self._no_state(1)  # its measured robot state
        self._written = np.zeros(  # the newest written frame as written: the pending one's previous
            (1, self.config.channels, self.config.image_size, self.config.image_size), np.float32
        )

    @property
    def history_length(self) -> int:
        return min(self._cache.written + (self._pending is not None), self.history_limit)

    def ingest(
        self, frame: np.ndarray, action: np.ndarray, modality: str, state: np.ndarray | None = None
    ) -> None:
        size = self.config.image_size
        if frame.shape != (size, size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({size}, {size}, 3) uint8; got {frame.shape} {frame.dtype}")
        actions, mask = pack_actions(np.asarray(action)[None], modality, self.config)
        measured = self._measured_state(state)
        if self._pending is not None:
            rng = np.random.default_rng((self.seed, 0, self._cache.written))
            noise = rng.standard_normal(self._pending.shape, dtype=np.float32)
            modality_ids = np.array([modality_id(modality)])
            self._written, _ = self._write(
                self._pending,
                self._written,
                actions,
                mask,
                modality_ids,
                self._alone,
                self._cache,
                noise,
                measured if self.config.fused_step else self._pending_state,
            )
        self._pending = to_model_space(frame.astype(np.float32)).transpose(2, 0, 1)[None]
        self._pending_state = measured

    def predict(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> np.ndarray:
        rollout = self.start_rollout(actions, modality, steps, seed, share_noise)
        try:
            rollout.advance(rollout.horizon)
            return rollout.result()
        finally:
            rollout.close()

    def start_rollout(
        self,
        actions: np.ndarray,
        modality: str,
        steps: int | None = None,
        seed: int | None = None,
        share_noise: bool = False,
    ) -> CachedRollout:
        return CachedRollout(self, actions, modality, steps or self.steps, seed, share_noise)

    def _rollout_closed(self, batch: int) -> None:
        """Called when a rollout of ``batch`` candidates has released its cache."""

    def _rings_released(self) -> None:
        """Called when a rollout has replaced its own rings by larger ones."""

    # -- helpers ---------------------------------------------------------------------------------

    def _no_state(self, batch: int) -> State:
        zeros = np.zeros((batch, self.config.max_joints), np.float32)
        return zeros, zeros.copy()

    def _measured_state(self, state: np.ndarray | None) -> State:
        """``ingest``'s ``state`` checked and padded (unknown: masked)."""
        if state is None or not self.config.robot_state:
            return self._no_state(1)
        state = np.asarray(state, np.float32).reshape(-1)
        want = self.info.state_dim
        if state.shape[0] != want:
            raise ValueError(
                f"state has {state.shape[0]} joint positions; expected {want} ({list(self.info.joint_names)})"
            )
        if not np.all(np.isfinite(state)):
            raise ValueError("state contains NaN or inf")
        values, mask = self._no_state(1)
        values[0, :want], mask[0, :want] = state, 1.0
        return values, mask

    def _reckoned_states(self, actions: np.ndarray, modality: str) -> list[State]:
        """Robot states of the pending frame and of each predicted frame, ``horizon + 1`` entries of
        ``(B, max_joints)``: the measured state plus the displacements the commands ask for; masked
        when the state or the displacement is unknown."""
        batch, horizon, width = actions.shape
        values, mask = (np.repeat(x, batch, axis=0) for x in self._pending_state)
        reckonable = (
            modality in JOINT_MODALITIES
            and width == self.info.state_dim
            and (modality != "joint_velocity" or self.info.frame_period > 0)
        )
        out = [(values, mask)]
        for h in range(horizon):
            if reckonable:
                values = values.copy()
                values[:, :width] += state_step(actions[:, h], modality, self.info.frame_period)
            else:
                mask = np.zeros_like(mask)
            out.append((values, mask))
        return out

    def _sample(
        self,
        context: Context,
        previous: np.ndarray,
        base: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        modality: np.ndarray,
        noise: np.ndarray,
        steps: int,
        state: State,
    ) -> np.ndarray:
        """Denoise the frames that follow ``base`` (as written: ``previous``) against ``context``,
        which is not modified, from ``noise`` (broadcast over the batch); -> clean frames
        ``(B, C, S, S)``."""
        level = np.ones(base.shape[0], np.float32)

        def network(x: np.ndarray, s: float) -> np.ndarray:
            return self._guided(x, previous, s * level, actions, mask, modality, context, state)

        noise = np.broadcast_to(noise, base.shape).copy()
        cfg = self.config
        x0 = sample_next_frame(network, noise, base, steps, cfg.parameterization, cfg.predict_delta)
        return x0.clip(-1.0, 1.0)

    def _write(
        self,
        x0: np.ndarray,
        previous: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        modality: np.ndarray,
        context: Context,
        ring: Cache,
        noise: np.ndarray,
        state: State,
        with_output: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Write clean frames with the command over the interval after them into ``ring`` (in place;
        ``context.own`` for a rollout, ``context.history`` for the live stream) at the context noise
        level, ``noise`` broadcast over the batch; returns the frames as written (the next step's
        ``previous``) and, ``with_output``, the step's output (a ``fused_step`` model's change to the
        next frame)."""
        level = np.full(x0.shape[0], self.context_noise, np.float32)
        x = noisy(x0, noise, self.context_noise).astype(np.float32)
        rope = self._rope(context)
        output, entries = self._step(
            x, previous, level, actions, mask, modality, context, rope, state, with_output
        )
        store = self._store_history if ring is context.history else self._store
        store(ring.kv, entries, ring.slot)
        ring.positions[ring.slot] = context.index
        ring.written += 1
        return x, output

    def _rope(self, context: Context) -> tuple[np.ndarray, np.ndarray]:
        """cos/sin of the stepped frame's index for every stream of ``context``."""
        return rope_tables(np.full(context.own.batch, context.index), self.config.head_dim)

    def _guided(
        self,
        x: np.ndarray,
        previous: np.ndarray,
        level: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        modality: np.ndarray,
        context: Context,
        state: State,
    ) -> np.ndarray:
        rope = self._rope(context)
        cond = self._step(x, previous, level, actions, mask, modality, context, rope, state)[0]
        if self.guidance_scale == 1.0:
            return cond
        free = np.full_like(modality, NO_ACTION)
        uncond = self._step(x, previous, level, actions, mask, free, context, rope, state)[0]
        return uncond + self.guidance_scale * (cond - uncond)


def own_slots(horizon: int, history: int) -> int:
    """Frames a rollout of ``horizon`` frames keeps per candidate: all it writes (the pending frame and
    every predicted frame but the last), at most the ``history`` frames a step attends to."""
    return max(1, min(horizon, history))


def growth(capacity: int) -> list[int]:
    """The sizes an own ring takes as it fills: 1, 2, 4, ... up to ``capacity``."""
    sizes = [1]
    while sizes[-1] < capacity:
        sizes.append(min(2 * sizes[-1], capacity))
    return sizes


class CachedRollout(Rollout):
    """``predict``'s rollout, resumable: it holds the live history as it was when it started (one copy,
    shared by the candidates), each candidate's own ring of the frames it wrote since, their newest
    frames and its noise generator, so each ``advance`` continues where the previous one stopped
    whatever the live stream did in between.

    Candidate b writes the pending frame with ``actions[b, 0]``, which then drives predicted frame
    0; each predicted frame h is written with ``actions[b, h + 1]`` before frame h + 1 (the last one
    is never written: nothing reads it). The own rings grow as they fill (1, 2, 4, ... frames, up to
    ``own_slots``), so a step attends to few empty slots.
    """

    def __init__(
        self,
        backend: StreamingBackend,
        actions: np.ndarray,
        modality: str,
        steps: int,
        seed: int | None,
        share_noise: bool,
    ):
        if backend._pending is None:
            raise ValueError("predict() needs at least one ingested frame")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 3:
            raise ValueError(f"actions must be (B, H, D); got shape {actions.shape}")
        batch, self.horizon = actions.shape[:2]
        self._backend, self._steps = backend, steps
        self._packed, self._mask = pack_actions(actions, modality, backend.config)  # (B, H, A)
        self._modality = np.full(batch, modality_id(modality), np.int64)
        seed = backend.seed if seed is None else int(seed)
        self._rng = np.random.default_rng((seed, 1, backend._cache.written))
        self._noise_shape = (1 if share_noise else batch,) + backend._pending.shape[1:]
        size = backend.config.image_size
        self._video = np.empty((batch, self.horizon, size, size, 3), np.uint8)
        self._states = backend._reckoned_states(actions, modality)  # each frame's, the pending one's first
        self._capacity = own_slots(self.horizon, backend.history_limit)
        self._context: Context | None = Context(backend._history_snapshot(), backend._empty_cache(batch, 1))
        self._written = np.repeat(backend._written, batch, axis=0)
        self._frame = np.repeat(backend._pending, batch, axis=0)
        self.frames_done = 0

    def advance(self, frames: int) -> None:
        if self.done:
            return
        if self._context is None:
            raise RuntimeError("advance() on a closed rollout")
        for h in range(self.frames_done, min(self.horizon, self.frames_done + frames)):
            self._roll(h)
            self.frames_done = h + 1
        if self.done:
            self.close()

    def _roll(self, h: int) -> None:
        """Predicted frame ``h`` of every candidate: write the newest frame with command ``h``, then
        denoise the frame it leads to (a ``fused_step`` model reads it off the write's output)."""
        b, context, modality = self._backend, self._context, self._modality
        a, m = self._packed[:, h], self._mask[:, h]
        state, following = self._states[h], self._states[h + 1]
        noise = self._rng.standard_normal(self._noise_shape, dtype=np.float32)
        own = context.own
        if own.written == own.positions.shape[0] < self._capacity:  # full: double it, up to capacity
            context.own = b._grown(own, min(2 * own.written, self._capacity))
            del own
            b._rings_released()
        fused = b.config.fused_step
        written, change = b._write(
            self._frame,
            self._written,
            a,
            m,
            modality,
            context,
            context.own,
            noise,
            following if fused else state,  # a fused model's write predicts the following frame
            fused,
        )
        self._written = written
        if fused:
            self._frame = (self._frame + change).clip(-1.0, 1.0)
        else:
            start = self._rng.standard_normal(self._noise_shape, dtype=np.float32)
            steps = self._steps
            self._frame = b._sample(context, written, self._frame, a, m, modality, start, steps, following)
        self._video[:, h] = np.round((self._frame.transpose(0, 2, 3, 1) + 1.0) * 127.5).astype(np.uint8)

    def result(self) -> np.ndarray:
        if not self.done:
            raise RuntimeError(f"result() after {self.frames_done} of {self.horizon} frames")
        return self._video

    def close(self) -> None:
        if self._context is not None:
            self._context = None
            self._backend._rollout_closed(self._video.shape[0])
