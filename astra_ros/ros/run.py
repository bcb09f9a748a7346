"""``astra-ros-run --params YAML [--ros-args ...]``: start the node from a YAML file, no launch system.

Reads the ``astra_world_model: ros__parameters:`` block, checks every key against the node's
declarations, and starts the node with those values as parameter overrides. ``-p name:=value``
after ``--ros-args`` wins over the YAML; other ROS arguments (remappings, ``__ns``) pass through.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from astra_ros.ros.settings import DECLARED_NAMES, SPECS, SettingsError

NODE_KEYS = ("astra_world_model", "/astra_world_model", "/**")


def load_params(path: str | Path) -> dict[str, Any]:
    """The node's ``ros__parameters`` from a YAML file; raises SettingsError with the offending key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SettingsError(f"--params {path}: {err}") from err
    if not isinstance(data, dict):
        raise SettingsError(f"--params {path}: top level is {type(data).__name__}; expected a mapping")
    for key in NODE_KEYS:
        block = data.get(key)
        if isinstance(block, dict) and isinstance(block.get("ros__parameters"), dict):
            params = block["ros__parameters"]
            break
    else:
        raise SettingsError(
            f"--params {path}: no 'astra_world_model: ros__parameters:' block; top-level keys {sorted(data)}"
        )
    unknown = sorted(set(params) - set(DECLARED_NAMES))
    if unknown:
        raise SettingsError(
            f"--params {path}: unknown parameters {unknown}; expected names from {sorted(DECLARED_NAMES)}"
        )
    return params


def cli_param_names(ros_args: list[str]) -> set[str]:
    """Names set with ``-p name:=value`` / ``--param name:=value`` in the ROS arguments."""
    names = set()
    for flag, value in zip(ros_args, ros_args[1:], strict=False):
        if flag in ("-p", "--param") and ":=" in value:
            names.add(value.split(":=", 1)[0])
    return names


def _typed(name: str, value: Any) -> Any:
    """YAML ``1`` for a float parameter is an int; ROS would refuse it as the wrong type."""
    spec = SPECS.get(name)
    if spec is not None and type(spec.default) is float and type(value) is int:
        return float(value)
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        index = argv.index("--ros-args")
        argv, ros_args = argv[:index], argv[index:]
    parser = argparse.ArgumentParser(prog="astra-ros-run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", required=True, help="YAML with an astra_world_model: ros__parameters: block"
    )
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except SettingsError as err:
        print(f"astra-ros-run: {err}", file=sys.stderr)
        return 2

    from rclpy.parameter import Parameter

    from astra_ros.ros.isolation import default_discovery
    from astra_ros.ros.node import spin_node

    default_discovery()
    overridden = cli_param_names(ros_args)
    # An empty list would be typed BYTE_ARRAY by rclpy; it equals the default anyway.
    overrides = [
        Parameter(name, value=_typed(name, value))
        for name, value in params.items()
        if name not in overridden and value != []
    ]
    return spin_node(["astra-ros-run", *ros_args], overrides)


if __name__ == "__main__":
    sys.exit(main())
