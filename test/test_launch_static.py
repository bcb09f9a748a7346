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
