"""The files that follow from the nodes' parameter specs (``settings.PARAMETERS`` of the world-model
node, ``planner_settings.PARAMETERS`` of the planner): each node's shipped YAML and launch file, and
docs/parameters.md.

    python -m astra_ros.ros.parameter_files --write   # regenerate them after changing a PARAMETERS
    python -m astra_ros.ros.parameter_files --check   # exit 1 naming the stale files (also a test)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astra_ros.ros import planner_settings
from astra_ros.ros.settings import BUILTINS, PARAMETERS, ParamSpec

REPO = Path(__file__).resolve().parents[2]
MARKDOWN_PATH = Path("docs/parameters.md")
REGENERATE = "python -m astra_ros.ros.parameter_files --write"


@dataclass(frozen=True)
class NodeFiles:
    """One node's parameter spec and what its YAML and launch file say around it."""

    name: str  # node and executable
    source: str  # the module with its PARAMETERS
    specs: tuple[ParamSpec, ...]  # PARAMETERS, then rclpy's BUILTINS
    topics: dict[str, str]  # remappable topics: launch argument -> description
    starts: tuple[str, ...]  # the YAML's "Start with" commands
    usage: str  # the launch file's example command line

    @property
    def yaml_path(self) -> Path:
        return Path(f"config/{self.name}.yaml")

    @property
    def launch_path(self) -> Path:
        return Path(f"launch/{self.name}.launch.py")


WORLD_MODEL = NodeFiles(
    name="astra_world_model",
    source="astra_ros/ros/settings.py",
    specs=PARAMETERS + BUILTINS,
    topics={
        "image": "Camera image topic",
        "joint_commands": "Joint commands (JointState, Float64MultiArray or JointTrajectory)",
        "cmd_vel": "Twist / TwistStamped commands",
        "planned_commands": "JointTrajectory of planned commands",
    },
    starts=(
        "astra-ros-run --params config/astra_world_model.yaml",
        "ros2 launch astra_ros astra_world_model.launch.py",
    ),
    usage="namespace:=robot image:=/camera/image_raw \\\n"
    "        model_path:=/path/to/model.onnx use_sim_time:=true",
)
PLANNER = NodeFiles(
    name="astra_planner",
    source="astra_ros/ros/planner_settings.py",
    specs=planner_settings.PARAMETERS + planner_settings.BUILTINS,
    topics={
        "image": "Camera image topic",
        "goal_image": "Goal image topic",
        "joint_commands": "JointState commands out (joint_velocity models)",
        "cmd_vel": "Twist commands out (twist models)",
    },
    starts=("ros2 launch astra_ros astra_planner.launch.py",),
    usage="image:=/camera/image_raw goal_image:=/goal \\\n"
    "        joint_commands:=/joint_commands model_path:=/path/to/model.onnx",
)


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


def render_yaml(node: NodeFiles = WORLD_MODEL) -> str:
    first, *others = node.starts
    lines = [
        f"# Parameters of the {node.name} node, rendered from PARAMETERS in",
        f"# {node.source} by `{REGENERATE}`",
        "# (do not edit by hand; docs/parameters.md explains each).",
        f"# Start with:  {first}",
        *(f"#         or:  {command}" for command in others),
        f"{node.name}:",
        "  ros__parameters:",
    ]
    for spec in node.specs:
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


LAUNCH_HEAD = '''"""Launch the {name} node with config/{name}.yaml.

    ros2 launch astra_ros {name}.launch.py {usage}

Rendered from PARAMETERS in {source}
by `{regenerate}` (do not edit by hand). Each parameter argument's default
equals the YAML value, so a launch without arguments runs the YAML as is; arguments override it
(later entries in ``parameters`` win).
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
                [FindPackageShare("astra_ros"), "config", "{name}.yaml"]
            ),
            description="YAML with an {name}: ros__parameters: block",
        ),
'''

LAUNCH_TAIL = """    ]
    node = Node(
        package="astra_ros",
        executable="{name}",
        name="{name}",
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
"""


def _described(spec: ParamSpec) -> str:
    return f"{spec.description} Allowed: {allowed(spec)}." if allowed(spec) else spec.description


def render_launch(node: NodeFiles = WORLD_MODEL) -> str:
    launched = [spec for spec in node.specs if spec.launch]
    arguments = [line for s in launched for line in _argument(s.name, launch_default(s), _described(s))]
    arguments += [line for topic, text in node.topics.items() for line in _argument(topic, topic, text)]
    parameters = "\n".join(f'                "{s.name}": LaunchConfiguration("{s.name}"),' for s in launched)
    remappings = "\n".join(f'            ("{t}", LaunchConfiguration("{t}")),' for t in node.topics)
    head = LAUNCH_HEAD.format(name=node.name, usage=node.usage, source=node.source, regenerate=REGENERATE)
    tail = LAUNCH_TAIL.format(name=node.name, parameters=parameters, remappings=remappings)
    return head + "\n".join(arguments) + "\n" + tail


def _table(specs: tuple[ParamSpec, ...]) -> list[str]:
    lines = [
        "| name | type | default | allowed | live | launch | description |",
        "|---|---|---|---|---|---|---|",
    ]
    types = {bool: "bool", int: "int", float: "float", str: "string", list: "string[]"}
    for spec in specs:
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
    return lines


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
        *_table(WORLD_MODEL.specs),
        "",
        "# Parameters of astra_planner",
        "",
        f"Rendered from `PARAMETERS` in `{PLANNER.source}` by `{REGENERATE}`;",
        "do not edit by hand. All are read at start. Set them in `config/astra_planner.yaml`, with",
        "`-p name:=value`, or, for those marked *launch*, as arguments of",
        "`ros2 launch astra_ros astra_planner.launch.py`.",
        "",
        *_table(PLANNER.specs),
    ]
    return "\n".join(lines) + "\n"


RENDERERS = {
    WORLD_MODEL.yaml_path: render_yaml,
    WORLD_MODEL.launch_path: render_launch,
    MARKDOWN_PATH: render_markdown,
    PLANNER.yaml_path: lambda: render_yaml(PLANNER),
    PLANNER.launch_path: lambda: render_launch(PLANNER),
}


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
