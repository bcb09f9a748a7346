"""A cache shorter than the model's (max_history below the model's): the backend attends to the
newest frames only, so a live stream sees the context an offline window gives it."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_fixtures import tiny_checkpoint, tiny_onnx

from astra_ros.runtime.loader import ModelLoadError, load_backend


def stream(path: str, limit: int | None, frames: np.ndarray, commands: np.ndarray):
    """A fresh backend (same seed) ingests ``frames``; -> the backend and its prediction."""
    backend = load_backend(path, max_history=limit, seed=1, threads=1)
    for frame, command in zip(frames, commands, strict=True):
        backend.ingest(frame, command, "joint_velocity")
    return backend, backend.predict(commands[None, :3], "joint_velocity", seed=7)


@pytest.mark.parametrize("model", ["pt", "onnx"])
def test_predictions_attend_to_the_newest_frames_only(model):
    path = str(tiny_checkpoint() if model == "pt" else tiny_onnx())  # max_history 4
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    commands = rng.normal(size=(7, 7)).astype(np.float32)
    limited, short = stream(path, 2, frames, commands)
    full, long = stream(path, None, frames, commands)
    assert (limited.history_length, full.history_length) == (2, 4)
    # 6 frames written (the 7th is pending) into 4 ring slots: frames 4 and 5 sit in slots 0 and 1
    next_frame = 6
    assert limited._cache.held(next_frame - 2).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert full._cache.held(next_frame - 4).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert short.shape == long.shape == (1, 3, 32, 32, 3) and not np.array_equal(short, long)
    limited.reset()  # and a fresh stream fills up to the limit again
    limited.ingest(frames[0], commands[0], "joint_velocity")
    assert limited.history_length == 1


def test_a_limit_above_the_model_history_is_refused():
    path = str(tiny_checkpoint())
    with pytest.raises(ModelLoadError, match=r"max_history=5 but .* expected 1\.\.4"):
        load_backend(path, max_history=5)
    backend = load_backend(path, max_history=3)
    with pytest.raises(ValueError, match=r"max_history=0; expected 1\.\.4"):
        backend.limit_history(0)
