"""The ``astra_planner`` node's parameters: ``PARAMETERS`` (names, defaults, ranges, descriptions)
is the one source. ``declare`` declares them on the node and reads them into ``PlannerSettings``;
config/astra_planner.yaml, the launch arguments of launch/astra_planner.launch.py (``launch=True``)
and the planner's table in docs/parameters.md are rendered from it by
``python -m astra_ros.ros.parameter_files --write``. No rclpy at import time (as ``ros/settings.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from astra_ros.planning.costs import COSTS
from astra_ros.planning.planner import METHODS
from astra_ros.ros.settings import BACKENDS, COPY_LAST, ParamSpec, descriptor

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "engines/astra_small.onnx", f"World model file, or '{COPY_LAST}'.", launch=True),
    ParamSpec("backend", "auto", "Inference backend.", choices=BACKENDS),
    ParamSpec("denoising_steps", 1, "Denoising steps per predicted frame.", min=1, max=50),
    ParamSpec("method", "mppi", "Planner.", choices=METHODS, launch=True),
    ParamSpec(
        "cost",
        "mse",
        "Cost of the predicted frames against the goal.",
        choices=tuple(sorted(COSTS)),
        launch=True,
    ),
    ParamSpec("candidates", 64, "Command sequences per planning iteration.", min=1, max=4096, launch=True),
    ParamSpec("horizon", 8, "Planned frames (one command each).", min=1, max=64, launch=True),
    ParamSpec("iterations", 1, "Sampling iterations per plan.", min=1, max=100),
    ParamSpec("sampling_std", 0.5, "Sampling std as a fraction of max_velocity.", min=0.001, max=10.0),
    ParamSpec("smoothness", 0.0, "Weight of the command-change penalty.", min=0.0, max=1e6),
    ParamSpec(
        "max_velocity",
        2.0,
        "Command bound: |command| <= this, per component (rad/s for joint_velocity models; "
        "m/s and rad/s for twist models).",
        min=1e-6,
        max=1e6,
        launch=True,
    ),
    ParamSpec(
        "control_rate",
        0.0,
        "Command publish rate in Hz (0 = the model's frame rate).",
        min=0.0,
        max=1000.0,
        launch=True,
    ),
    ParamSpec("min_history", 2, "Frames the model needs before the first plan.", min=1, max=256),
    ParamSpec("joint_names", [], "Joint names of the commands (empty = the model's)."),
    ParamSpec("seed", 0, "Planner seed.", min=0, max=2**31 - 1),
)
BUILTINS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "use_sim_time",
        False,
        "Run the control timer on /clock and stamp commands with it (true with `ros2 bag play --clock`).",
        launch=True,
    ),
)
"""Declared by rclpy itself (as for the world-model node, ``settings.BUILTINS``), described for this node."""


@dataclass(frozen=True)
class PlannerSettings:
    model_path: str
    backend: str
    denoising_steps: int
    method: str
    cost: str
    candidates: int
    horizon: int
    iterations: int
    sampling_std: float
    smoothness: float
    max_velocity: float
    control_rate: float
    min_history: int
    joint_names: tuple[str, ...]
    seed: int


def declare(node: Any) -> PlannerSettings:
    """Declare ``PARAMETERS`` on ``node`` and read them (ranges and choices checked by rclpy)."""
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
        node.declare_parameter(spec.name, default, descriptor(spec))
        value = node.get_parameter(spec.name).value
        values[spec.name] = tuple(value or ()) if spec.default == [] else value
    return PlannerSettings(**values)
