"""scripts/bootstrap.py: a second run is a no-op; any changed input invalidates the stamp."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


@pytest.fixture(scope="module")
def bootstrap():
    spec = importlib.util.spec_from_file_location("astra_bootstrap", ROOT / "scripts" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path, bootstrap):
    """A copy of the stamp inputs plus a fake, already-stamped venv."""
    root = tmp_path / "repo"
    for path in bootstrap.stamp_inputs(ROOT):
        dest = root / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / bootstrap.STAMP_NAME).write_text(bootstrap.compute_stamp(root) + "\n")
    return root, venv


def test_second_run_is_a_noop_on_the_live_venv(bootstrap):
    if not (VENV / bootstrap.STAMP_NAME).is_file():
        pytest.fail(f"{VENV} has no {bootstrap.STAMP_NAME}; run `make setup` first")
    assert bootstrap.stamp_matches(ROOT, VENV), "inputs changed since the last `make setup`"
    watched = [
        VENV / bootstrap.STAMP_NAME,
        *VENV.glob("lib/python3*/site-packages/astra_ros.pkg"),
        *VENV.glob("lib/python3*/site-packages/astra_ros-*.dist-info/RECORD"),
    ]
    before = {p: p.stat().st_mtime_ns for p in watched}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bootstrap.py")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert "pip" not in proc.stdout and "cmake" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "bootstrap.py"), "--check"], timeout=120)
    assert check.returncode == 0


def test_stamp_matches_the_copied_tree(bootstrap, tree):
    root, venv = tree
    assert bootstrap.compute_stamp(root) == bootstrap.compute_stamp(ROOT)
    assert bootstrap.stamp_matches(root, venv)
    assert bootstrap.bootstrap(root, venv) is False  # matching stamp: nothing is run


@pytest.mark.parametrize(
    "change",
    [
        "requirements.txt",
        "msg/PredictedFrames.msg",
        "srv/Imagine.srv",
        "CMakeLists.txt",
        "package.xml",
        "setup.py",
        "scripts/bootstrap.py",
        "msg/NewThing.msg",
    ],
)
def test_changed_input_invalidates_the_stamp(bootstrap, tree, change):
    root, venv = tree
    path = root / change
    path.write_text((path.read_text() if path.exists() else "") + "\n# changed\n")
    assert not bootstrap.stamp_matches(root, venv)


def test_unrelated_files_and_python_version_handling(bootstrap, tree):
    root, venv = tree
    (root / "README.md").write_text("docs only\n")
    (root / "astra_ros").mkdir()
    (root / "astra_ros" / "new_module.py").write_text("x = 1\n")  # editable install: no rebuild
    assert bootstrap.stamp_matches(root, venv)
    assert bootstrap.compute_stamp(root, "3.12.1") != bootstrap.compute_stamp(root, "3.11.7")
    (venv / "bin" / "python").unlink()  # a venv without interpreter is never up to date
    assert not bootstrap.stamp_matches(root, venv)


def test_fix_cmake_includes_rewrites_manylinux_paths(bootstrap, tmp_path):
    cmake = tmp_path / "share" / "std_msgs" / "cmake" / "export_std_msgs__rosidl_generator_pyExport.cmake"
    cmake.parent.mkdir(parents=True)
    cmake.write_text(
        '  INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
        '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n'
    )
    assert bootstrap.fix_cmake_includes(tmp_path, "/py/include", "/np/include") == 1
    assert cmake.read_text() == '  INTERFACE_INCLUDE_DIRECTORIES "/py/include;/np/include"\n'
    assert bootstrap.fix_cmake_includes(tmp_path, "/py/include", "/np/include") == 0  # idempotent


def test_live_venv_has_no_manylinux_include_paths():
    offenders = [p for p in VENV.glob("share/*/cmake/*.cmake") if "/opt/python/" in p.read_text()]
    assert offenders == []
