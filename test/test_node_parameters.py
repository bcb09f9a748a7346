"""One parameter spec: Settings, the shipped YAML, the launch arguments and docs/parameters.md all
follow from ``PARAMETERS``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from astra_ros.ros.parameter_files import RENDERERS, render_launch, render_markdown, stale_files
from astra_ros.ros.settings import BUILTINS, PARAMETERS, Settings

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = {str: "str", int: "int", float: "float", bool: "bool", list: "tuple[str, ...]"}


def test_settings_fields_are_the_parameters_in_order_with_their_types():
    assert [(f.name, f.type) for f in fields(Settings)] == [
        (p.name, ANNOTATIONS[type(p.default)]) for p in PARAMETERS
    ]


def test_generated_files_are_up_to_date():
    assert stale_files() == [], "run `python -m astra_ros.ros.parameter_files --write`"


def test_a_stale_file_is_found_and_check_exits_1(tmp_path):
    for path in RENDERERS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    assert stale_files(tmp_path) == []
    yaml_path = next(iter(RENDERERS))
    (tmp_path / yaml_path).write_text((tmp_path / yaml_path).read_text().replace("horizon: 8", "horizon: 9"))
    assert stale_files(tmp_path) == [yaml_path]
    check = [sys.executable, "-m", "astra_ros.ros.parameter_files", "--check"]
    assert subprocess.run(check, cwd=REPO, capture_output=True).returncode == 0


def test_yaml_launch_and_doc_carry_every_parameter_and_its_default():
    params = yaml.safe_load((REPO / "config/astra_world_model.yaml").read_text())
    values = params["astra_world_model"]["ros__parameters"]
    specs = PARAMETERS + BUILTINS
    assert values == {p.name: p.default for p in specs}
    launch, doc = render_launch(), render_markdown()
    for spec in specs:
        assert f"| `{spec.name}` |" in doc
        assert (f'"{spec.name}": LaunchConfiguration("{spec.name}")' in launch) == spec.launch, spec.name
    assert {"model_path", "backend", "horizon", "prediction_rate", "use_sim_time"} <= {
        p.name for p in specs if p.launch
    }


def test_planner_settings_yaml_and_launch_follow_its_parameters():
    from astra_ros.ros import planner_settings
    from astra_ros.ros.parameter_files import PLANNER, render_yaml

    assert [(f.name, f.type) for f in fields(planner_settings.PlannerSettings)] == [
        (p.name, ANNOTATIONS[type(p.default)]) for p in planner_settings.PARAMETERS
    ]
    assert {PLANNER.yaml_path, PLANNER.launch_path} <= set(RENDERERS)
    params = yaml.safe_load((REPO / "config/astra_planner.yaml").read_text())
    specs = planner_settings.PARAMETERS + planner_settings.BUILTINS
    assert params["astra_planner"]["ros__parameters"] == {p.name: p.default for p in specs}
    assert render_yaml(PLANNER) == (REPO / PLANNER.yaml_path).read_text()
    launch, doc = render_launch(PLANNER), render_markdown().split("# Parameters of astra_planner")[1]
    for spec in specs:
        assert f"| `{spec.name}` |" in doc
        assert (f'"{spec.name}": LaunchConfiguration("{spec.name}")' in launch) == spec.launch, spec.name
    assert 'executable="astra_planner"' in launch
    assert '("goal_image", LaunchConfiguration("goal_image"))' in launch


def test_a_stale_planner_file_is_found(tmp_path):
    from astra_ros.ros.parameter_files import PLANNER

    for path in RENDERERS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    launch = tmp_path / PLANNER.launch_path
    launch.write_text(launch.read_text().replace('default_value="64"', 'default_value="32"'))
    (tmp_path / PLANNER.yaml_path).unlink()
    assert stale_files(tmp_path) == [PLANNER.yaml_path, PLANNER.launch_path]
