"""Flow-matching arithmetic shared by training (torch) and the runtime sampler (numpy).

Torch-free: every function works on numpy arrays and torch tensors alike.
Convention: ``x_s = (1 - s) * x0 + s * noise`` with noise level ``s`` in [0, 1] (1 = pure noise).
Frames live in model space: RGB scaled to [-1, 1].
"""

from __future__ import annotations

from typing import Any

Array = Any  # numpy.ndarray or torch.Tensor


def to_model_space(frames_uint8: Array) -> Array:
    """uint8 [0, 255] -> float [-1, 1] (callers cast to float first for torch)."""
    return frames_uint8 / 127.5 - 1.0


def noisy(x0: Array, noise: Array, s: Array) -> Array:
    return (1.0 - s) * x0 + s * noise


def predicted_x0(
    output: Array, x_s: Array, s: Array, base: Array, parameterization: str, predict_delta: bool
) -> Array:
    """Turn the network output into a clean-frame estimate.

    ``x0``: the output is the frame itself, or its change from ``base`` (the previous frame)
    when ``predict_delta``. ``velocity``: the output is ``noise - x0``.
    """
    if parameterization == "velocity":
        return x_s - s * output
    return base + output if predict_delta else output


def euler_step(x_s: Array, x0: Array, s: float, s_next: float) -> Array:
    """Move from level ``s`` to ``s_next`` along the straight path through the estimate ``x0``."""
    noise = (x_s - (1.0 - s) * x0) / s
    return (1.0 - s_next) * x0 + s_next * noise


def sampling_levels(steps: int) -> list[float]:
    """Noise levels 1 -> 0 visited by an Euler sampler with ``steps`` steps (steps + 1 values)."""
    if not 1 <= steps <= 50:
        raise ValueError(f"sampling steps={steps}; expected 1..50")
    return [1.0 - i / steps for i in range(steps + 1)]


def sample_next_frame(
    network: Any, noise: Array, base: Array, steps: int, parameterization: str, predict_delta: bool
) -> Array:
    """Few-step Euler sampler for the next frame.

    ``network(x_s, s) -> output`` evaluates the model at noise level ``s`` (a float) against the
    causal state; ``noise`` is the starting point at level 1; ``base`` the previous frame.
    Returns the clean-frame estimate.
    """
    levels = sampling_levels(steps)
    x = noise
    for s, s_next in zip(levels[:-1], levels[1:], strict=True):
        x0 = predicted_x0(network(x, s), x, s, base, parameterization, predict_delta)
        x = euler_step(x, x0, s, s_next) if s_next > 0 else x0
    return x
