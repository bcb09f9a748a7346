"""colcon (colcon-core + colcon-ros from PyPI) builds this repository as a ROS 2 package."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


def _setup_py_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONSOLE_SCRIPTS":
            entries = ast.literal_eval(node.value)
            return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("setup.py: CONSOLE_SCRIPTS not found")


def test_console_scripts_agree_across_setup_cmake_and_docs():
    scripts = _setup_py_scripts()
    docs = dict(
        re.findall(
            r"^\| ([\w-]+) \| (astra_ros[\w.]*:main) \|$", (ROOT / "docs/DEVELOPING.md").read_text(), re.M
        )
    )
    cmake = dict(re.findall(r'"([\w-]+)=(astra_ros[\w.]*)"', (ROOT / "CMakeLists.txt").read_text()))
    assert "astra_world_model" in scripts
    assert scripts == docs
    assert {name: f"{module}:main" for name, module in cmake.items()} == scripts


@pytest.mark.slow
def test_colcon_build_in_temporary_workspace(tmp_path):
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "astra_ros").symlink_to(ROOT, target_is_directory=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "COLCON_PREFIX_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")
    }
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        CMAKE_PREFIX_PATH=str(VENV),
        AMENT_PREFIX_PATH=str(VENV),
    )
    cmd = [
        str(VENV / "bin" / "colcon"),
        "build",
        "--event-handlers",
        "console_direct+",
        "--cmake-args",
        f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}",
        "-DBUILD_TESTING=OFF",
    ]
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"colcon build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"

    prefix = ws / "install" / "astra_ros"
    share = prefix / "share" / "astra_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch").is_dir() and (share / "config").is_dir()
    assert (share / "msg" / "PredictedFrames.msg").is_file() and (share / "srv" / "Imagine.srv").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "astra_ros").is_file()
    for name in _setup_py_scripts():
        exe = prefix / "lib" / "astra_ros" / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe
    assert "from astra_ros.ros.node import main" in (prefix / "lib/astra_ros/astra_world_model").read_text()

    # Import the result the way a ROS user does: source the install space's setup script.
    check = (
        "import astra_ros, astra_ros.msg, astra_ros.srv\n"
        "from astra_ros.msg import PredictedFrames\n"
        "from astra_ros.srv import Imagine\n"
        "from astra_ros.ros.isolation import isolate_ros\n"
        "from rclpy.serialization import deserialize_message, serialize_message\n"
        "m = PredictedFrames(model_id='colcon', rollout_id=7)\n"
        "assert deserialize_message(serialize_message(m), PredictedFrames) == m\n"
        "Imagine.Request(horizon=2)\n"
        "print(astra_ros.__file__); print(astra_ros.msg.__file__); print(astra_ros.srv.__file__)\n"
    )
    shell = f'. "{ws}/install/setup.sh" && exec "{VENV}/bin/python" -c "$ASTRA_CHECK"'
    # cwd=ws: `python -c` puts the cwd first on sys.path, and the repo root holds an astra_ros too.
    proc = subprocess.run(
        ["bash", "-c", shell],
        cwd=ws,
        env=dict(env, ASTRA_CHECK=check),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    paths = [Path(p) for p in proc.stdout.split()]
    assert len(paths) == 3 and all(p.is_relative_to(site / "astra_ros") for p in paths), proc.stdout
