"""Static checks of the launch files and the shipped YAML against the node's declarations.

``launch``/``launch_ros`` have no wheels here, so the launch files are parsed with ``ast``:
every parameter they set must be declared by astra_ros/ros/settings.py, every LaunchConfiguration
must have a DeclareLaunchArgument, argument defaults for parameters must equal the YAML, and the
YAML's keys must be exactly the declared names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from astra_ros.ros.settings import DECLARED_NAMES, SPECS, Settings

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
WORLD_MODEL_LAUNCH = REPO / "launch" / "astra_world_model.launch.py"
DEMO_LAUNCH = REPO / "launch" / "astra_demo.launch.py"
YAML_PATH = REPO / "config" / "astra_world_model.yaml"


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _const(node: ast.AST | None):
    return node.value if isinstance(node, ast.Constant) else None


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def analyse(source: str) -> dict:
    """Launch arguments, LaunchConfiguration uses, and per-executable parameter dicts of a launch file."""
    tree = ast.parse(source)
    declared: dict[str, object] = {}
    used: set[str] = set()
    nodes: list[dict] = []
    includes: list[str] = []
    has_entry = any(
        isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body
    )
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _call_name(call)
        if name == "DeclareLaunchArgument":
            declared[_const(call.args[0])] = _const(_kw(call, "default_value"))
        elif name == "LaunchConfiguration":
            used.add(_const(call.args[0]))
        elif name == "Node":
            params: dict[str, ast.AST] = {}
            plist = _kw(call, "parameters")
            for item in plist.elts if isinstance(plist, ast.List) else []:
                if isinstance(item, ast.Dict):
                    for key, value in zip(item.keys, item.values, strict=True):
                        params[_const(key)] = value
            nodes.append({"executable": _const(_kw(call, "executable")), "params": params, "call": call})
        elif name == "IncludeLaunchDescription":
            includes += [_const(n) for n in ast.walk(call) if str(_const(n)).endswith(".launch.py")]
    return {"declared": declared, "used": used, "nodes": nodes, "includes": includes, "entry": has_entry}


def undeclared_parameters(source: str) -> list[str]:
    problems = []
    for node in analyse(source)["nodes"]:
        if node["executable"] == "astra_world_model":
            problems += [name for name in node["params"] if name not in DECLARED_NAMES]
    return problems


@pytest.fixture(scope="module")
def yaml_params() -> dict:
    return yaml.safe_load(YAML_PATH.read_text())["astra_world_model"]["ros__parameters"]


def test_launch_files_exist():
    names = {p.name for p in LAUNCH_FILES}
    assert {"astra_world_model.launch.py", "astra_demo.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_parses_and_uses_only_declared_arguments(path):
    info = analyse(path.read_text())
    assert info["entry"], "generate_launch_description() missing"
    assert undeclared_parameters(path.read_text()) == []
    assert info["used"] <= set(info["declared"]), (
        f"undeclared launch arguments {info['used'] - set(info['declared'])}"
    )


def test_world_model_launch_starts_the_node_from_the_params_file():
    info = analyse(WORLD_MODEL_LAUNCH.read_text())
    world_models = [n for n in info["nodes"] if n["executable"] == "astra_world_model"]
    assert len(world_models) == 1
    params = _kw(world_models[0]["call"], "parameters")
    first = params.elts[0]
    assert _call_name(first) == "LaunchConfiguration" and _const(first.args[0]) == "params_file"


def test_world_model_launch_defaults_match_yaml(yaml_params):
    info = analyse(WORLD_MODEL_LAUNCH.read_text())
    node = next(n for n in info["nodes"] if n["executable"] == "astra_world_model")
    for name, value in node["params"].items():
        assert _call_name(value) == "LaunchConfiguration"
        argument = _const(value.args[0])
        default = info["declared"][argument]
        assert yaml.safe_load(default) == yaml_params[name], f"{argument} default {default!r}"


def test_demo_includes_the_world_model_launch_and_the_demo_executables():
    info = analyse(DEMO_LAUNCH.read_text())
    assert info["includes"] == [WORLD_MODEL_LAUNCH.name]
    executables = {n["executable"] for n in info["nodes"]}
    assert executables == {"astra_sim_publisher", "astra_prediction_recorder"}
    scripts = set(re.findall(r'"([\w-]+) = astra_ros\.', (REPO / "setup.py").read_text()))
    assert executables <= scripts


def test_checker_catches_an_undeclared_parameter():
    source = (
        "def generate_launch_description():\n"
        "    return Node(executable='astra_world_model', parameters=[{'horizon': 1, 'horizn': 2}])\n"
    )
    assert undeclared_parameters(source) == ["horizn"]


def test_yaml_keys_are_exactly_the_declared_parameters(yaml_params):
    assert sorted(yaml_params) == sorted(DECLARED_NAMES)


def test_yaml_values_are_valid_and_default_model(yaml_params):
    values = {k: v for k, v in yaml_params.items() if k in SPECS}
    for name, value in values.items():  # floats are written as floats, so ROS types them as doubles
        assert type(value) is type(SPECS[name].default) or (value == [] and SPECS[name].default == []), name
    settings = Settings.from_values(values)
    assert settings.model_path == "engines/astra_small.onnx" and settings.backend == "auto"


# -- the demo's helper executables, started with exactly the command line launch_ros gives them --

HELPERS = {
    "astra_sim_publisher": "astra_ros.ros.sim_publisher",
    "astra_prediction_recorder": "astra_ros.ros.recorder",
}


def _value(node: ast.AST, declared: dict) -> str:
    """A launch-file argument as launch would substitute it (a LaunchConfiguration: its default)."""
    if isinstance(node, ast.Call) and _call_name(node) == "LaunchConfiguration":
        return declared[_const(node.args[0])]
    return _const(node)


def launched_helpers(params_file: Path) -> dict[str, list[str]]:
    """executable -> its argv after the program name: the Node's ``arguments``, then ``--ros-args``
    with the node name, the namespace and a parameters file, as launch_ros appends them."""
    info = analyse(DEMO_LAUNCH.read_text())
    out = {}
    for node in info["nodes"]:
        call = node["call"]
        arguments = _kw(call, "arguments")
        argv = [_value(a, info["declared"]) for a in (arguments.elts if arguments else [])]
        name, namespace = _const(_kw(call, "name")), _value(_kw(call, "namespace"), info["declared"])
        ros = [
            "--ros-args",
            "-r",
            f"__node:={name}",
            "-r",
            f"__ns:=/{namespace}",
            "--params-file",
            str(params_file),
        ]
        out[node["executable"]] = [*argv, *ros]
    return out


def resolve(topic: str, namespace: str) -> str:
    return topic if topic.startswith("/") else f"/{namespace}/{topic}"


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "launch_params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    use_sim_time: false\n")
    return path


def test_demo_helpers_parse_the_launch_command_line_and_meet_the_node_topics(params_file):
    import importlib

    from astra_ros.ros.process import parse_node_args

    namespace = analyse(DEMO_LAUNCH.read_text())["declared"]["namespace"]
    node_topics = analyse(WORLD_MODEL_LAUNCH.read_text())["declared"]  # remap targets, relative by default
    wanted = {
        "image": resolve(node_topics["image"], namespace),
        "joint_commands": resolve(node_topics["joint_commands"], namespace),
        "joint_states": resolve(node_topics["state_topic"], namespace),
        "predicted_frames": resolve("predicted_frames", namespace),
    }
    helpers = launched_helpers(params_file)
    assert set(helpers) == set(HELPERS)
    parsed = {
        exe: parse_node_args(importlib.import_module(HELPERS[exe]).build_parser(), [exe, *argv])
        for exe, argv in helpers.items()
    }
    sim, recorder = parsed["astra_sim_publisher"], parsed["astra_prediction_recorder"]
    assert resolve(sim.image_topic, namespace) == wanted["image"]
    assert resolve(sim.command_topic, namespace) == wanted["joint_commands"]
    assert resolve(sim.state_topic, namespace) == wanted["joint_states"]
    assert resolve(recorder.image_topic, namespace) == wanted["image"]
    assert resolve(recorder.predictions_topic, namespace) == wanted["predicted_frames"]
    assert recorder.out.endswith(".npz")


def test_demo_helpers_run_with_the_launch_command_line(params_file, tmp_path):
    import os
    import subprocess
    import sys

    from astra_ros.ros.isolation import isolate_ros

    isolate_ros()
    helpers = launched_helpers(params_file)
    for exe, seconds in (("astra_sim_publisher", "0.2"), ("astra_prediction_recorder", "0.5")):
        argv = ["--seconds", seconds, *helpers[exe]]  # options first, ROS arguments last, as launched
        cmd = [sys.executable, "-m", HELPERS[exe], *argv]
        result = subprocess.run(
            cmd, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
    recording = analyse(DEMO_LAUNCH.read_text())["declared"]["recording"]
    assert (tmp_path / recording).is_file()
