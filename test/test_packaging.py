"""package.xml declares a rosdep key for every third-party import, and `make test` fails when
pytest fails, including when it collects no tests."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"tensorrt", "cuda"}  # GPU deployment extras, checked at run time by the loader
MODULE_KEYS = {
    "numpy": "python3-numpy",
    "yaml": "python3-yaml",
    "cv2": "python3-opencv",
    "onnxruntime": "python3-onnxruntime-pip",
    "openvino": "python3-openvino-pip",
    "onnx": "python3-onnx-pip",
    "onnxscript": "python3-onnx-pip",
    "torch": "python3-torch-pip",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "PIL": "python3-pil",
    "pybullet": "python3-pybullet-pip",
    "pybullet_data": "python3-pybullet-pip",
    "gymnasium": "python3-gymnasium-pip",
    "rosbags": "python3-rosbags-pip",
    "av": "python3-av-pip",
    "pyarrow": "python3-pyarrow-pip",
}
ROSDISTRO_PIP_KEYS = {"python3-onnxruntime-pip", "python3-pybullet-pip"}  # the rest: rosdep/astra_ros.yaml


def declared_keys() -> set[str]:
    tags = ("depend", "exec_depend", "build_depend", "buildtool_depend")
    root = ET.parse(ROOT / "package.xml").getroot()
    return {element.text.strip() for tag in tags for element in root.iter(tag)}


def third_party_imports() -> dict[str, str]:
    """Top-level module -> one file that imports it, over the whole astra_ros package."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "astra_ros").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("astra_ros", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_runtime_import_has_a_rosdep_key():
    keys = declared_keys()
    assert "cv_bridge" not in keys  # never imported: images are converted with numpy
    missing = {}
    for module, where in third_party_imports().items():
        if module in OPTIONAL:
            continue
        key = MODULE_KEYS.get(module, module)  # ROS packages are their own key
        if key not in keys:
            missing[module] = (key, where)
    assert not missing, f"package.xml lacks rosdep keys (module: (key, imported in)): {missing}"


def test_pip_keys_outside_rosdistro_are_defined_here():
    custom = yaml.safe_load((ROOT / "rosdep" / "astra_ros.yaml").read_text())
    used = {key for key in declared_keys() if key.endswith("-pip")} - ROSDISTRO_PIP_KEYS
    assert used == set(custom)
    for key, rule in custom.items():
        for platform in ("ubuntu", "debian"):
            assert rule[platform]["pip"]["packages"], (key, platform)


def test_make_test_fails_when_pytest_collects_nothing(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"pytest $*\"\nexit 5\n")
    fake.chmod(0o755)
    ruff = tmp_path / "venv" / "bin" / "ruff"
    ruff.parent.mkdir(parents=True)
    ruff.write_text("#!/bin/sh\nexit 0\n")
    ruff.chmod(0o755)
    cmd = ["make", "-s", "-C", str(ROOT), "-o", "setup", "test", f"PY={fake}", f"VENV={tmp_path / 'venv'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert "pytest -m pytest -q test" in result.stdout.replace(str(fake), "pytest")
    assert result.returncode != 0


def test_confidence_comments_describe_what_the_node_computes():
    from astra_ros.ros.settings import SPECS

    message = (ROOT / "msg" / "PredictedFrames.msg").read_text()
    service = (ROOT / "srv" / "Imagine.srv").read_text()
    assert "disagreement" not in message + service  # no uncertainty is estimated
    assert f"confidence[i] = {SPECS['confidence_decay'].default} ** (i + 1)" in message
    assert "the same for every candidate" in service
