"""The files that follow from ``settings.PARAMETERS``: the shipped YAML, the world-model launch file
and docs/parameters.md.

    python -m astra_ros.ros.parameter_files --write   # regenerate all three after changing PARAMETERS
    python -m astra_ros.ros.parameter_files --check   # exit 1 naming the stale files (also a test)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from astra_ros.ros.settings import BUILTINS, PARAMETERS, ParamSpec

REPO = Path(__file__).resolve().parents[2]
YAML_PATH = Path("config/astra_world_model.yaml")
LAUNCH_PATH = Path("launch/astra_world_model.launch.py")
MARKDOWN_PATH = Path("docs/parameters.md")
REGENERATE = "python -m astra_ros.ros.parameter_files --write"
SPECS = PARAMETERS + BUILTINS
TOPICS = {  # remappable topics of the node: launch argument -> description
    "image": "Camera image topic",
    "joint_commands": "Joint commands (JointState, Float64MultiArray or JointTrajectory)",
    "cmd_vel": "Twist / TwistStamped commands",
    "planned_commands": "JointTrajectory of planned commands",
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def allowed(spec: ParamSpec) -> str:
    """``a | b`` for choices, ``[min, max]`` for a range, else empty."""
    if spec.choices:
        return " | ".join(spec.choices)
    if spec.min is not None:
        return f"[{_number(spec.min)}, {_number(spec.max)}]"
    return ""


def yaml_value(value: Any) -> str:
    """A YAML scalar that loads back with the parameter's type (floats keep their point)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list)):
        return json.dumps(value)
    return repr(value)


def launch_default(spec: ParamSpec) -> str:
    """The launch argument's default: text that ROS parses back to the parameter's default."""
    return spec.default if isinstance(spec.default, str) else yaml_value(spec.default)


def render_yaml() -> str:
    lines = [
        "# Parameters of the astra_world_model node, rendered from PARAMETERS in",
        f"# astra_ros/ros/settings.py by `{REGENERATE}`",
        "# (do not edit by hand; docs/parameters.md explains each).",
        "# Start with:  astra-ros-run --params config/astra_world_model.yaml",
        "#         or:  ros2 launch astra_ros astra_world_model.launch.py",
        "astra_world_model:",
        "  ros__parameters:",
    ]
    for spec in SPECS:
        comment = f"  # {allowed(spec)}" if allowed(spec) else ""
        lines.append(f"    {spec.name}: {yaml_value(spec.default)}{comment}")
    return "\n".join(lines) + "\n"


def _string_lines(text: str, indent: str, width: int = 96) -> list[str]:
    """``text`` as implicitly concatenated string literals of at most ``width`` characters."""
    pieces, current = [], ""
    for word in text.split(" "):
        if current and len(current) + len(word) > width - len(indent) - 16:
            pieces.append(current)
            current = ""
        current += word + " "
    pieces.append(current[:-1])
    return [f"{indent}{json.dumps(p)}" for p in pieces]


def _argument(name: str, default: str, description: str) -> list[str]:
    body = [f"            {json.dumps(name)},", f"            default_value={json.dumps(default)},"]
    described = _string_lines(description, "            ")
    described[0] = described[0].replace("            ", "            description=", 1)
    return ["        DeclareLaunchArgument(", *body, *described[:-1], described[-1] + ",", "        ),"]


LAUNCH_HEAD = '''"""Launch the astra_world_model node with config/astra_world_model.yaml.

    ros2 launch astra_ros astra_world_model.launch.py namespace:=robot image:=/camera/image_raw \\
        model_path:=/path/to/model.onnx use_sim_time:=true

Rendered from PARAMETERS in astra_ros/ros/settings.py by `{regenerate}`
(do not edit by hand). Each parameter argument's default equals the YAML value, so a launch without
arguments runs the YAML as is; arguments override it (later entries in ``parameters`` win).
"""

# ruff: noqa: I001  (the local launch/ folder makes ruff take the ROS `launch` package for first-party)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node and its topics"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare("astra_ros"), "config", "astra_world_model.yaml"]
            ),
            description="YAML with an astra_world_model: ros__parameters: block",
        ),
'''

LAUNCH_TAIL = '''    ]
    node = Node(
        package="astra_ros",
        executable="astra_world_model",
        name="astra_world_model",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {{
{parameters}
            }},
        ],
        remappings=[
{remappings}
        ],
    )
    return LaunchDescription([*arguments, node])
'''


def _described(spec: ParamSpec) -> str:
    return f"{spec.description} Allowed: {allowed(spec)}." if allowed(spec) else spec.description


def render_launch() -> str:
    launched = [spec for spec in SPECS if spec.launch]
    arguments = [line for s in launched for line in _argument(s.name, launch_default(s), _described(s))]
    arguments += [line for topic, text in TOPICS.items() for line in _argument(topic, topic, text)]
    parameters = "\n".join(f'                "{s.name}": LaunchConfiguration("{s.name}"),' for s in launched)
    remappings = "\n".join(f'            ("{topic}", LaunchConfiguration("{topic}")),' for topic in TOPICS)
    return (
        LAUNCH_HEAD.format(regenerate=REGENERATE)
        + "\n".join(arguments)
        + "\n"
        + LAUNCH_TAIL.format(parameters=parameters, remappings=remappings)
    )


def render_markdown() -> str:
    lines = [
        "# Parameters of astra_world_model",
        "",
        f"Rendered from `PARAMETERS` in `astra_ros/ros/settings.py` by `{REGENERATE}`;",
        "do not edit by hand. Those marked *live* may change while the node runs (`ros2 param set`;",
        "a bad value is refused with the reason); the others are read-only after start. Set them in",
        "`config/astra_world_model.yaml`",
        "(`astra-ros-run --params ...`), with `-p name:=value`, or, for those marked *launch*, as",
        "arguments of `ros2 launch astra_ros astra_world_model.launch.py`.",
        "",
        "| name | type | default | allowed | live | launch | description |",
        "|---|---|---|---|---|---|---|",
    ]
    types = {bool: "bool", int: "int", float: "float", str: "string", list: "string[]"}
    for spec in SPECS:
        default = yaml_value(spec.default)
        row = [
            f"`{spec.name}`",
            types[type(spec.default)],
            f"`{default}`",
            allowed(spec).replace("|", "\\|"),
            "" if spec.read_only else "yes",
            "yes" if spec.launch else "",
            spec.description.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


RENDERERS = {YAML_PATH: render_yaml, LAUNCH_PATH: render_launch, MARKDOWN_PATH: render_markdown}


def stale_files(root: Path = REPO) -> list[Path]:
    """The generated files whose content differs from what PARAMETERS renders."""
    return [path for path, render in RENDERERS.items() if not _matches(root / path, render())]


def _matches(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() == text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astra_ros.ros.parameter_files", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    mode.add_argument("--markdown", action="store_true", help="print docs/parameters.md")
    args = parser.parse_args(argv)
    if args.markdown:
        print(render_markdown(), end="")
        return 0
    if args.write:
        for path, render in RENDERERS.items():
            (REPO / path).write_text(render())
        return 0
    stale = stale_files()
    if stale:
        print(f"stale: {', '.join(map(str, stale))}; run `{REGENERATE}`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
