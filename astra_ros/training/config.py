"""A training run's configuration: dataclasses, YAML files and the astra-train flags from one source.

``TrainConfig`` holds the run (output, model preset and overrides, where it starts from), its
``data`` and its ``train`` settings (with the ``objective`` inside). YAML files hold the same
nesting (``config/train/*.yaml``); ``astra-train --config A.yaml B.yaml`` merges them in order,
later files winning key by key, and every flag given on the command line wins over both. Each flag
is generated from a dataclass field declared with ``setting(default, help)``, so a new setting is
written once: here or in the dataclass of its section.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from astra_ros.data.augment import AUGMENTATIONS
from astra_ros.data.lerobot import DEFAULT_CACHE_DIR, FROZEN_POLICIES
from astra_ros.data.sources import FORMATS
from astra_ros.model.config import PRESETS, AstraConfig
from astra_ros.sim import kuka


class TrainingError(ValueError):
    """Bad training input (no data, a preset that does not fit, a bad setting, ...)."""


KINEMATICS: dict[str, Callable[[], dict[str, Any]]] = {"kuka_iiwa": kuka.kinematics_description}
"""Robot descriptions a config's ``model.kinematics`` may name (``AstraConfig.kinematics``)."""


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with its command-line help; ``extra``: ``flag`` (other than ``--name``),
    ``choices``, ``metavar``."""
    metadata = {"help": help, **extra}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ObjectiveSettings:
    full_noise_prob: float = setting(
        0.5, "share of targets trained at noise level 1, what a 1-step sampler sees (the rest: uniform)"
    )
    rollout_prob: float = setting(0.5, "share of batches whose history is the model's own rollout")
    rollout_passes: int = setting(2, "rollout passes (pass r conditions on pass r - 1's frames)")
    min_true_context: int = setting(1, "frames kept true at the start of a rolled-out history")
    balance_weight: float = setting(0.01, "weight of the action experts' load-balancing loss")
    structure_weight: float = setting(
        0.0, "weight of 1 - SSIM of the predicted frames, added to the loss (0: mean squared error only)"
    )
    motion_weight: float = setting(
        1.0, "weight of moving pixels in the squared error, relative to static ones (1: plain mean)"
    )
    motion_threshold: float = setting(
        0.03, "a pixel moves when a channel changes by more than this from the previous frame ([-1, 1] scale)"
    )
    motion_radius: int = setting(1, "moving pixels are dilated by this many pixels")
    gradient_weight: float = setting(
        0.0, "weight of the gradient-difference term (L1 between image gradients of prediction and truth)"
    )
    ranking_weight: float = setting(
        0.0, "weight of the command-ranking hinge: true commands must beat another window's by a margin"
    )
    ranking_margin: float = setting(
        0.5, "the ranking margin as a fraction of the window's motion energy (mean squared frame change)"
    )


@dataclass
class TrainSettings:
    batch_size: int = setting(8, "windows per step and process")
    window: int = setting(0, "frames per training window (0: max_history + 1)")
    lr: float = setting(4e-4, "peak learning rate")
    warmup_steps: int = setting(100, "linear learning-rate warm-up steps")
    lr_schedule: str = setting(
        "constant",
        "after warm-up: constant, or cosine decay to lr_min at steps",
        choices=("constant", "cosine"),
    )
    lr_min: float = setting(1e-5, "final learning rate of the cosine schedule")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    grad_clip: float = setting(1.0, "gradient norm clip")
    ema_decay: float = setting(
        0.995, "EMA decay of the shipped weights (short CPU runs: a long EMA drags in early weights)"
    )
    steps: int | None = setting(None, "step budget (give steps or minutes)")
    minutes: float | None = setting(None, "optimisation-time budget in minutes (give steps or minutes)")
    val_every: int = setting(250, "validate the EMA weights every this many steps")
    checkpoint_minutes: float = setting(2.0, "minutes between checkpoints")
    seed: int = setting(0, "seed of the weights, the batches and every noise draw")
    device: str = setting("auto", "auto: cuda when available, else cpu", choices=("auto", "cpu", "cuda"))
    precision: str = setting(
        "auto",
        "bf16 autocast or fp32; auto: bf16 on CUDA, and on a CPU with native bf16, else fp32",
        choices=("auto", "bf16", "fp32"),
    )
    augment: str = setting(
        "none",
        "augmentation of the training windows' frames, one draw per window (data/augment.py): "
        "none, light or strong",
        choices=tuple(AUGMENTATIONS),
    )
    compile: bool = setting(
        False, "torch.compile the network (off by default: not measured to help here; see device_check)"
    )
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)


@dataclass
class DataSettings:
    """Where the training windows come from: rosbag2 folders and LeRobot roots, read by
    ``astra_ros.data.sources.open_episodes`` (the same options as astra-eval's)."""

    paths: list[str] = setting(
        [], "rosbag2 folders or LeRobot dataset roots", flag=("--data", "--bags", "--bag"), metavar="PATH"
    )
    format: str = setting("auto", "auto: meta/info.json -> lerobot, else bag", choices=FORMATS)
    episodes: str | None = setting(None, "LeRobot episode indices, e.g. 1-33,35 (default: all)")
    camera: str | None = setting(None, "LeRobot video key (default: the first in meta/info.json)")
    state_key: str = setting("observation.state", "LeRobot joint state column")
    action_key: str = setting("action", "LeRobot joint position target column")
    frozen: str = setting(
        "drop",
        "LeRobot frames equal to the previous one: drop (timestamps kept) or keep",
        choices=FROZEN_POLICIES,
    )
    frame_period: float | None = setting(None, "LeRobot: keep frames at least this many seconds apart")
    cache_dir: Path = setting(DEFAULT_CACHE_DIR, "decoded-frame cache")
    image_topic: str = setting("/camera/image_raw", "camera topic in the bags")
    command_topic: str | None = setting(None, "bag command topic (default: the modality's)")
    modality: list[str] = setting(
        [],
        "bag command modality, one for all or one per bag (default: from its topics)",
        flag=("--modality", "--modalities"),
    )
    val_fraction: float = setting(0.1, "share of the episodes held out for validation")
    val_episodes: str | None = setting(
        None,
        "LeRobot episodes validated during training instead of a val_fraction share of the training "
        "episodes (e.g. a held-out set of config/splits/*.yaml); disjoint from episodes",
    )


@dataclass
class TrainConfig:
    out: Path | None = setting(None, "run directory (checkpoint.pt, log.csv, model.pt, config.yaml)")
    preset: str = setting("small", "model preset", choices=sorted(PRESETS))
    model: dict[str, Any] = setting(
        {}, "AstraConfig overrides of the preset", flag="--set", metavar="KEY=VALUE"
    )
    init: Path | None = setting(
        None, "start from the weights of this model.pt or checkpoint.pt, fresh optimizer"
    )
    resume: bool = setting(False, "continue from RUN_DIR/checkpoint.pt (exactly, as if never stopped)")
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)


def _sections(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type hint) of every setting of ``cls``, sections included."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += _leaves(hint, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f, hint))
    return out


def _base(hint: Any) -> Any:
    """``X`` of ``X | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> a dict; values that read as JSON (numbers, true/false, lists) are parsed."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise TrainingError(f"--set {item!r}; expected KEY=VALUE")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, in one argument group per section; a flag not given is left unset
    (``argparse.SUPPRESS``) so that the config files and the dataclass defaults apply."""
    groups = {"": parser.add_argument_group("run")}
    for name in _sections(TrainConfig):
        groups[name] = parser.add_argument_group(name)
    for dotted, f, hint in _leaves(TrainConfig):
        meta = dict(f.metadata)
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        flags = flag if isinstance(flag, tuple) else (flag,)
        kind = _base(hint)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kwargs: dict[str, Any] = {"dest": dotted, "default": argparse.SUPPRESS}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            kwargs.update(nargs="+", type=typing.get_args(kind)[0])
        elif typing.get_origin(kind) is dict:
            kwargs.update(nargs="*")
        else:
            kwargs["type"] = kind
        if "choices" not in meta and kind is not bool:
            meta.setdefault("metavar", f.name.upper())
        help_text = meta.pop("help", "")
        shown = "" if default in (None, [], {}) else f" (default: {default})"
        groups[dotted.rpartition(".")[0].split(".")[0]].add_argument(
            *flags, help=help_text + shown, **kwargs, **meta
        )


def load_yaml(paths: list[Path]) -> dict[str, Any]:
    """Merge YAML files in order (later files win, key by key within sections)."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrainingError(f"config file {path}: cannot be read: {exc}") from exc
        if not isinstance(data, dict):
            raise TrainingError(
                f"config file {path}: expected a mapping of settings; got {type(data).__name__}"
            )
        _merge(merged, data)
    return merged


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "model":
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _value(dotted: str, hint: Any, value: Any) -> Any:
    """``value`` checked (and converted: int -> float, str -> Path) for the setting ``dotted``."""
    kind = _base(hint)
    if value is None and kind is not hint:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    origin = typing.get_origin(kind)
    if origin is list and isinstance(value, list):
        return [str(v) for v in value]
    if origin is dict and isinstance(value, dict):
        return dict(value)
    if isinstance(kind, type) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise TrainingError(f"{dotted}={value!r}; expected {getattr(kind, '__name__', kind)}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TrainingError(f"unknown setting {prefix}{unknown[0]}; expected one of {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise TrainingError(f"{prefix}{name} is {value!r}; expected a section of settings")
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _value(prefix + name, hint, value)
    return cls(**kwargs)


def model_config(config: TrainConfig) -> AstraConfig:
    """The run's model: its preset with the ``model`` overrides, a ``kinematics`` name replaced by the
    numbers of its description (so checkpoints store the geometry itself)."""
    overrides = dict(config.model)
    name = overrides.get("kinematics")
    if isinstance(name, str):
        if name not in KINEMATICS:
            raise TrainingError(
                f"model.kinematics={name!r}; expected a description or one of {sorted(KINEMATICS)}"
            )
        overrides["kinematics"] = KINEMATICS[name]()
    return AstraConfig.preset(config.preset, **overrides)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The dataclass defaults, then the ``--config`` files, then the flags given."""
    values = load_yaml(getattr(args, "config", None) or [])
    for dotted, _f, _hint in _leaves(TrainConfig):
        if hasattr(args, dotted):
            value = getattr(args, dotted)
            value = parse_overrides(value) if dotted == "model" else value
            *sections, name = dotted.split(".")
            node = values
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = value
    return _build(TrainConfig, values)


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON values (paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))
