"""Parameters of the ``astra_world_model`` node: declared once, here, with descriptors.

``PARAMETERS`` is the single source of truth: the node declares exactly these names (plus
rclpy's own ``use_sim_time``, ``BUILTINS``) and reads them into ``Settings``; the shipped YAML, the
launch arguments (``launch=True``) and docs/parameters.md are rendered from it by
``python -m astra_ros.ros.parameter_files --write`` (``test/test_node_parameters.py`` fails when one
is stale). This module does not import rclpy at import time, so tools can read the table without ROS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astra_ros.data.pairing import DEFAULT_POLICY, STALE_COMMAND_POLICIES, STALENESS_S
from astra_ros.ros.process import StartupError

if TYPE_CHECKING:
    from rclpy.qos import QoSProfile

    from astra_ros.runtime.base import WorldModelBackend

BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # what runtime.loader accepts
COMMAND_TYPES = ("joint_state", "float64_multi_array", "joint_trajectory", "twist", "twist_stamped")
JOINT_COMMAND_MODALITIES = ("joint_velocity", "joint_position")
FUTURE_COMMAND_POLICIES = ("hold_last", "planned")
RELIABILITIES = ("best_effort", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")
TOPIC_NAME = re.compile(r"~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")  # ROS 2 topic names
COPY_LAST = "copy_last"  # model_path value that selects the model-free CopyLastBackend (bring-up)


class SettingsError(ValueError):
    """A parameter value is invalid; the message names the parameter, the value and what was expected."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    min: float | None = None  # inclusive numeric range
    max: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = True  # False: may change while the node runs (``ros2 param set``), validated
    launch: bool = False  # an argument of the node's launch file (launch/<node>.launch.py)


PARAMETERS: tuple[ParamSpec, ...] = (
    # lifecycle
    ParamSpec(
        "autostart",
        True,
        "Configure and activate the (managed) node at start; false: it waits unconfigured for "
        "lifecycle transitions (`ros2 lifecycle set <node> configure`, then `activate`).",
        launch=True,
    ),
    # model and backend
    ParamSpec(
        "model_path",
        "engines/astra_small.onnx",
        "Model file (.onnx with its .json sidecar, .pt checkpoint, or TensorRT engine); relative paths "
        "resolve against the working directory, the package share directory, then the repository. "
        f"'{COPY_LAST}' selects the model-free copy-last backend.",
        launch=True,
    ),
    ParamSpec("backend", "auto", "Inference backend.", choices=BACKENDS, launch=True),
    ParamSpec("engine_cache_dir", "", "Directory for built engines ('' = the backend's default)."),
    ParamSpec(
        "precision",
        "auto",
        "Inference precision ('auto' = the backend's choice; 'bf16' = OpenVINO or torch on a CPU with "
        "native bf16; 'int8' = the .onnx model's int8 graph on ONNX Runtime CPU, when its sidecar "
        "records one).",
        choices=PRECISIONS,
        launch=True,
    ),
    ParamSpec(
        "inference_threads",
        0,
        "CPU threads per inference call (0 = the backend's default: 1 on ONNX Runtime, measured fastest "
        "on 2 shared cores; one per core on OpenVINO; torch's own otherwise).",
        min=0,
        max=256,
        launch=True,
    ),
    ParamSpec("denoising_steps", 1, "Denoising steps per predicted frame.", min=1, max=50, launch=True),
    ParamSpec("context_noise", 0.05, "Noise level the causal cache is written at.", min=0.0, max=1.0),
    ParamSpec("guidance_scale", 1.0, "Action guidance scale (1 = no guidance).", min=0.0, max=20.0),
    ParamSpec(
        "max_history", 0, "Frames held in the causal cache (0 = the model's own limit).", min=0, max=256
    ),
    ParamSpec(
        "seed", 0, "Seed of the sampler noise; each prediction uses seed + rollout_id.", min=0, max=2**31 - 1
    ),
    # prediction
    ParamSpec(
        "horizon", 8, "Predicted frames per prediction (H).", min=1, max=64, read_only=False, launch=True
    ),
    ParamSpec(
        "min_history", 2, "Frames the cache must hold before the node predicts (warm-up).", min=1, max=256
    ),
    ParamSpec(
        "prediction_rate",
        10.0,
        "Predictions per second of image time (0 = try every frame); inference runs in one "
        "worker, the newest frame wins.",
        min=0.0,
        max=1000.0,
        read_only=False,
        launch=True,
    ),
    ParamSpec(
        "predicted_image_horizon",
        1,
        "Horizon (1-based) republished on predicted_image.",
        min=1,
        max=64,
        read_only=False,
    ),
    ParamSpec(
        "confidence_decay",
        0.9,
        "confidence[h-1] = confidence_decay ** h: a fixed prior that the future gets harder to predict "
        "(no uncertainty is computed); Imagine reports the mean over the horizon.",
        min=0.0,
        max=1.0,
        read_only=False,
        launch=True,
    ),
    ParamSpec(
        "future_command_policy",
        "hold_last",
        "Commands the prediction is conditioned on: hold the current command, or the "
        "planned_commands topic (falls back to hold_last when no valid plan covers the step).",
        choices=FUTURE_COMMAND_POLICIES,
        launch=True,
    ),
    # imagine
    ParamSpec(
        "imagine_max_candidates",
        32,
        "Largest num_candidates an ~/imagine request may ask for (more: refused, rejected.imagine_limits).",
        min=1,
        max=4096,
    ),
    ParamSpec(
        "imagine_max_horizon",
        64,
        "Largest horizon an ~/imagine request may ask for (more: refused).",
        min=1,
        max=1024,
    ),
    ParamSpec(
        "imagine_memory_mb",
        512.0,
        "Memory budget of one ~/imagine call, checked before allocating (frames and candidate caches, "
        "estimated; more: refused, rejected.imagine_memory).",
        min=1.0,
        max=1_000_000.0,
    ),
    # commands
    ParamSpec(
        "command_type",
        "joint_state",
        "Command input on 'joint_commands': joint_state (sensor_msgs/JointState, the velocity or "
        "position field by command_modality), float64_multi_array (std_msgs/Float64MultiArray of "
        "ros2_control's forward command controllers, values in joint_names order, layout ignored) or "
        "joint_trajectory (trajectory_msgs/JointTrajectory: the first point's velocities or positions, "
        "in force at header stamp + time_from_start); or twist / twist_stamped on 'cmd_vel'.",
        choices=COMMAND_TYPES,
        launch=True,
    ),
    ParamSpec(
        "command_modality",
        "joint_velocity",
        "What joint commands are: joint_velocity (rad/s) or joint_position (absolute targets in rad; "
        "the model gets them relative to the robot state from state_topic, and the stale command "
        "policy must be hold or skip: a position controller holds its last target). Ignored for twist.",
        choices=JOINT_COMMAND_MODALITIES,
        launch=True,
    ),
    ParamSpec(
        "joint_names",
        [],
        "Joint order: of the values of float64_multi_array commands (required there; the model's "
        "joints by name); of the model when it records none (joint_state: empty = the names of the "
        "first valid message). Must name the model's joints when it records them.",
    ),
    ParamSpec(
        "state_topic",
        "joint_states",
        "sensor_msgs/JointState topic of the measured joint positions (mapped by name to the model's "
        "joint order, extra joints ignored), subscribed when the model takes a robot state or "
        "command_modality is joint_position; '' = none.",
        launch=True,
    ),
    ParamSpec(
        "command_staleness",
        STALENESS_S,
        "Seconds a command stays in force after its stamp (zero-order hold).",
        min=0.0,
        max=60.0,
        read_only=False,
    ),
    ParamSpec(
        "stale_command_policy",
        DEFAULT_POLICY,
        "Action for an image with no command in force: zero, hold the last one, or skip the image.",
        choices=STALE_COMMAND_POLICIES,
        read_only=False,
        launch=True,
    ),
    # time and state
    ParamSpec(
        "frame_period",
        -1.0,
        "Seconds between model frames: images in between are skipped (count.decimated) so the "
        "model sees the time step it was trained on; -1 = the model's own (every image when it "
        "records none), 0 = every image.",
        min=-1.0,
        max=60.0,
    ),
    ParamSpec(
        "max_image_gap",
        1.0,
        "Seconds: a forward image gap or backwards jump larger than this resets the causal state "
        "(so do frames dropped for a missing input for longer); a smaller backwards image step is "
        "rejected as out of order. Commands and robot states up to this far behind the newest are "
        "taken in stamp order, further back only once 3 in a row confirm the jump; a JointTrajectory "
        "point takes effect at most this far ahead of the node clock.",
        min=0.0,
        max=3600.0,
    ),
    ParamSpec(
        "ingest_queue_size",
        32,
        "Frames waiting for ingestion; when the worker falls behind, the oldest are dropped.",
        min=1,
        max=10000,
    ),
    # input and QoS
    ParamSpec(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on 'image'; compressed: sensor_msgs/CompressedImage (JPEG or PNG, "
        "image_transport's format strings) on 'image/compressed', checked against max_image_pixels "
        "from its header before decoding.",
        choices=IMAGE_TRANSPORTS,
        launch=True,
    ),
    # untrusted input (astra_ros/ros/input_limits.py)
    ParamSpec(
        "max_image_pixels",
        2**23,
        "Largest input image (height * width pixels) converted; larger ones are rejected from their "
        "header before any decoding (rejected.image_too_large). 2^23 admits 3840x2160.",
        min=1,
        max=2**28,
        launch=True,
    ),
    ParamSpec(
        "max_command_magnitude",
        10.0,
        "Largest |value| of a command component (rad/s, m/s, rad for position targets) in commands, "
        "plans and Imagine actions, and of a joint position in robot states, checked as the float32 "
        "the model takes; beyond it the message is rejected (rejected.command_magnitude, "
        "rejected.state_magnitude). The shipped model was trained on |joint velocity| <= 3.5 rad/s.",
        min=0.0,
        max=1e6,
    ),
    ParamSpec(
        "future_stamp_tolerance",
        0.5,
        "Seconds an image or command stamp may be ahead of the node clock (rejected.*_stamp_future); "
        "not checked while the clock reads 0 (sim time before the first /clock).",
        min=0.0,
        max=1e6,
    ),
    # QoS
    ParamSpec("image_qos_depth", 1, "Keep-last depth of the image subscription.", min=1, max=1000),
    ParamSpec(
        "image_qos_reliability",
        "best_effort",
        "Reliability of the image subscription (best_effort = sensor-data profile; the log says when "
        "a best-effort stream loses frames).",
        choices=RELIABILITIES,
        launch=True,
    ),
    ParamSpec("command_qos_depth", 50, "Keep-last depth of the command subscriptions.", min=1, max=1000),
    ParamSpec(
        "command_qos_reliability",
        "reliable",
        "Reliability of the command subscriptions (joint_commands / cmd_vel, planned_commands).",
        choices=RELIABILITIES,
        launch=True,
    ),
    ParamSpec(
        "output_qos_depth",
        10,
        "Keep-last depth of the predicted_frames and predicted_image publishers.",
        min=1,
        max=1000,
    ),
    ParamSpec(
        "output_qos_reliability",
        "reliable",
        "Reliability of the predicted_frames and predicted_image publishers.",
        choices=RELIABILITIES,
        launch=True,
    ),
    # diagnostics and logging
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", min=0.05, max=60.0),
    ParamSpec(
        "diagnostics_window",
        10.0,
        "Seconds of recent history the node's level is judged on: WARN while any message was "
        "rejected or lost in it, ERROR while most of an input's were, OK again after a clean window.",
        min=0.1,
        max=3600.0,
        launch=True,
    ),
    ParamSpec(
        "image_min_rate",
        -1.0,
        "Images per second below which the image input is WARN (10 % tolerance); -1 = the model's "
        "frame rate, 0 = no minimum (no images at all is ERROR unless 0).",
        min=-1.0,
        max=1000.0,
        launch=True,
    ),
    ParamSpec(
        "image_max_rate",
        0.0,
        "Images per second above which the image input is WARN (0 = no maximum).",
        min=0.0,
        max=10000.0,
        launch=True,
    ),
    ParamSpec(
        "command_min_rate",
        0.0,
        "Commands per second below which the command input is WARN (0 = no minimum).",
        min=0.0,
        max=10000.0,
        launch=True,
    ),
    ParamSpec(
        "max_stamp_age",
        1.0,
        "Seconds: an input stamp older than this (node clock minus stamp) makes its input ERROR.",
        min=0.0,
        max=1e6,
        launch=True,
    ),
    ParamSpec(
        "min_stamp_age",
        -0.1,
        "Seconds: an input stamp younger than this (negative: in the future) makes its input ERROR.",
        min=-1e6,
        max=0.0,
        launch=True,
    ),
    ParamSpec(
        "log_throttle_period",
        5.0,
        "Seconds between repeated warnings of one kind (rejections, worker errors, frame loss).",
        min=0.0,
        max=3600.0,
        read_only=False,
        launch=True,
    ),
)

BUILTINS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "use_sim_time",
        False,
        "Stamp latency and unstamped commands with /clock (true with `ros2 bag play --clock`).",
        launch=True,
    ),
)
"""Declared by rclpy itself for every node (not by ``declare_settings``); accepted in YAML and launch
files."""

BUILTIN_NAMES: tuple[str, ...] = tuple(p.name for p in BUILTINS)
DECLARED_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS) + BUILTIN_NAMES
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


@dataclass(frozen=True)
class Settings:
    autostart: bool
    model_path: str
    backend: str
    engine_cache_dir: str
    precision: str
    inference_threads: int
    denoising_steps: int
    context_noise: float
    guidance_scale: float
    max_history: int
    seed: int
    horizon: int
    min_history: int
    prediction_rate: float
    predicted_image_horizon: int
    confidence_decay: float
    future_command_policy: str
    imagine_max_candidates: int
    imagine_max_horizon: int
    imagine_memory_mb: float
    command_type: str
    command_modality: str
    joint_names: tuple[str, ...]
    state_topic: str
    command_staleness: float
    stale_command_policy: str
    frame_period: float
    max_image_gap: float
    ingest_queue_size: int
    image_transport: str
    max_image_pixels: int
    max_command_magnitude: float
    future_stamp_tolerance: float
    image_qos_depth: int
    image_qos_reliability: str
    command_qos_depth: int
    command_qos_reliability: str
    output_qos_depth: int
    output_qos_reliability: str
    diagnostics_period: float
    diagnostics_window: float
    image_min_rate: float
    image_max_rate: float
    command_min_rate: float
    max_stamp_age: float
    min_stamp_age: float
    log_throttle_period: float

    @property
    def modality(self) -> str:
        return "twist" if self.command_type.startswith("twist") else self.command_modality

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Settings:
        """Typed settings from raw values (missing names take their defaults); validates everything."""
        unknown = sorted(set(values) - set(SPECS))
        if unknown:
            raise SettingsError(f"unknown parameters {unknown}; expected names from {sorted(SPECS)}")
        typed: dict[str, Any] = {}
        for spec in PARAMETERS:
            typed[spec.name] = _coerce(spec, values.get(spec.name, spec.default))
        settings = cls(**typed)
        settings.validate()
        return settings

    def updated(self, changes: dict[str, Any]) -> Settings:
        """These settings with the live parameter ``changes`` applied, validated; raises SettingsError
        naming the parameters that are read at start (all but the live ones) or the bad value."""
        fixed = [name for name in changes if name not in SPECS or SPECS[name].read_only]
        if fixed:
            raise SettingsError(f"{fixed} are read at start; restart to change")
        return Settings.from_values({**{name: getattr(self, name) for name in SPECS}, **changes})

    def backend_options(self) -> dict[str, Any]:
        """Keyword options of ``runtime.loader.load_backend`` (unset ones left to the backend)."""
        options: dict[str, Any] = dict(
            context_noise=self.context_noise,
            guidance_scale=self.guidance_scale,
            steps=self.denoising_steps,
            precision=self.precision,
        )
        optional = dict(
            engine_cache_dir=self.engine_cache_dir,
            threads=self.inference_threads,
            max_history=self.max_history,
        )
        return options | {name: value for name, value in optional.items() if value}

    def validate(self) -> None:
        for spec in PARAMETERS:
            value = getattr(self, spec.name)
            if spec.choices and value not in spec.choices:
                raise SettingsError(f"parameter {spec.name}={value!r}; expected one of {list(spec.choices)}")
            if spec.min is not None and not spec.min <= value <= spec.max:
                raise SettingsError(
                    f"parameter {spec.name}={value}; expected a value in [{spec.min}, {spec.max}]"
                )
        if not self.model_path:
            raise SettingsError("parameter model_path=''; expected a model file or 'copy_last'")
        if self.predicted_image_horizon > self.horizon:
            raise SettingsError(
                f"parameter predicted_image_horizon={self.predicted_image_horizon}; "
                f"expected at most horizon={self.horizon}"
            )
        if self.max_history and self.min_history > self.max_history:
            raise SettingsError(
                f"parameter min_history={self.min_history}; expected at most max_history={self.max_history}"
            )
        if len(set(self.joint_names)) != len(self.joint_names) or any(not n for n in self.joint_names):
            raise SettingsError(
                f"parameter joint_names={list(self.joint_names)}; expected distinct non-empty names"
            )
        if self.state_topic and not TOPIC_NAME.fullmatch(self.state_topic):
            raise SettingsError(
                f"parameter state_topic={self.state_topic!r}; expected a ROS topic name (letters, digits, "
                "'_' and '/', no part starting with a digit) or '' for none"
            )
        if self.command_type == "float64_multi_array" and not self.joint_names:
            raise SettingsError(
                "parameter joint_names=[] with command_type='float64_multi_array'; expected the "
                "controller's joints in the order of the command values"
            )
        if self.modality == "joint_position" and not self.state_topic:
            raise SettingsError(
                "parameter state_topic='' with command_modality='joint_position'; expected the joint "
                "states topic: the model takes position targets relative to the measured positions"
            )
        if self.modality == "joint_position" and self.stale_command_policy == "zero":
            raise SettingsError(
                "parameter stale_command_policy='zero' with command_modality='joint_position'; expected "
                "'hold' or 'skip' (a zero position target is not 'no command': the controller holds its last)"
            )


def _coerce(spec: ParamSpec, value: Any) -> Any:
    kind = type(spec.default)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"parameter {spec.name}={value!r}; expected a list of strings")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"parameter {spec.name}={value!r}; expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"parameter {spec.name}={value!r}; expected an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"parameter {spec.name}={value!r}; expected a number")
        return float(value)
    if not isinstance(value, str):
        raise SettingsError(f"parameter {spec.name}={value!r}; expected a string")
    return value


def descriptor(spec: ParamSpec):  # -> rcl_interfaces.msg.ParameterDescriptor
    """The ROS parameter descriptor of one spec (type, range, choices, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    kind = type(spec.default)
    types = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
        list: ParameterType.PARAMETER_STRING_ARRAY,
    }
    desc = ParameterDescriptor(
        name=spec.name, type=types[kind], description=spec.description, read_only=spec.read_only
    )
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.min is not None and kind is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    elif spec.min is not None and kind is float:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max))]
    return desc


def declare_settings(node) -> Settings:
    """Declare every parameter on ``node`` and read them into validated ``Settings``.

    Raises SettingsError naming the parameter for a wrong type, an out-of-range or unknown value.
    """
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
        ParameterUninitializedException,
    )
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        # An empty list default would be typed BYTE_ARRAY by rclpy: declare string arrays by type.
        default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
        try:
            node.declare_parameter(spec.name, default, descriptor(spec))
        except InvalidParameterTypeException as err:
            raise SettingsError(
                f"parameter {spec.name} has the wrong type ({err}); expected {type(spec.default).__name__}"
            ) from err
        except InvalidParameterValueException as err:
            raise SettingsError(f"parameter {spec.name}: {err}") from err
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = spec.default
    return Settings.from_values(values)


def package_roots() -> list[Path]:
    """Where relative model paths are looked up after the working directory."""
    roots: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory("astra_ros")))
    except Exception:  # noqa: BLE001 - ament index absent or package not installed there
        pass
    roots.append(Path(__file__).resolve().parents[2])  # the repository (or site-packages parent)
    return roots


def resolve_model_path(model_path: str) -> str:
    """Absolute path of the model file; unchanged for 'copy_last' or when nothing matches
    (the loader then reports the missing file)."""
    if model_path == COPY_LAST:
        return model_path
    path = Path(os.path.expanduser(model_path))
    if path.is_absolute():
        return str(path)
    for root in [Path.cwd(), *package_roots()]:
        if (root / path).exists():
            return str((root / path).resolve())
    return str(path)


def load_world_model(settings: Settings) -> WorldModelBackend:
    """The backend named by the settings (``runtime.loader``; 'copy_last' needs no model file);
    raises StartupError naming the file and the backend."""
    from astra_ros.runtime.loader import load_backend

    path = resolve_model_path(settings.model_path)
    try:
        return load_backend(path, settings.backend, **settings.backend_options())
    except (ValueError, OSError) as err:  # ModelLoadError is a ValueError
        raise StartupError(f"model_path={path!r} backend={settings.backend!r}: {err}") from err


def joint_order(settings: Settings, model_joints: Sequence[str]) -> tuple[str, ...] | None:
    """The commands' joint order: () for Twist; the model's joints (``joint_names``, when set, must
    name the same joints), else ``joint_names``; None: to be learnt from the first JointState (the
    other joint command types cannot learn it: StartupError)."""
    if settings.modality not in JOINT_COMMAND_MODALITIES:
        return ()
    names = settings.joint_names
    if names and model_joints and set(names) != set(model_joints):
        raise StartupError(f"joint_names={list(names)}; expected the model's joints {list(model_joints)}")
    order = tuple(model_joints or names) or None
    if order is None and settings.command_type != "joint_state":
        raise StartupError(
            f"command_type={settings.command_type!r}: the model records no joint names; expected the "
            "joint order in the joint_names parameter"
        )
    return order


def qos(depth: int, reliability: str) -> QoSProfile:
    """The QoS of a ``*_qos_depth`` / ``*_qos_reliability`` parameter pair (keep last ``depth``,
    volatile as the sensor-data profile)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    reliabilities = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliabilities[reliability],
        durability=qos_profile_sensor_data.durability,
    )


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Settings))
