#!/usr/bin/env python3
"""Create or reuse ``.venv`` and build the astra_ros interfaces into it (``make setup``).

Steps (skipped entirely when the stamp matches, which takes well under a second):
1. ``python -m venv .venv`` with the interpreter running this script (python3.11);
2. ``pip install -r requirements.txt`` (the one pin file) and ``pip install -e . --no-deps``;
3. rewrite the ROS wheels' CMake exports, which hard-code the manylinux build interpreter's
   include dirs, to this venv's Python and numpy include dirs;
4. CMake configure/build/install of msg/ and srv/ into the venv prefix; the generated Python goes to
   ``.venv/lib/astra_ros_interfaces/astra_ros`` and ``site-packages/astra_ros.pkg`` points
   ``pkgutil.extend_path`` (astra_ros/__init__.py) at it, so ``astra_ros.msg`` sits next to the
   editable library code;
5. an import check, then the stamp (sha256 of every input) in ``.venv/.bootstrap-stamp``.

Usage: python3.11 scripts/bootstrap.py [--force] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP_NAME = ".bootstrap-stamp"
INTERFACE_DIR = "lib/astra_ros_interfaces"  # relative to the venv prefix; not on sys.path
# Files whose content decides whether the environment must be rebuilt (globs relative to the root).
STAMP_INPUTS = (
    "requirements.txt",
    "msg/*.msg",
    "srv/*.srv",
    "CMakeLists.txt",
    "cmake/*",
    "package.xml",
    "setup.py",
    "pyproject.toml",
    "scripts/bootstrap.py",
)
# Include dirs of the manylinux interpreter the ros-* wheels were built with.
_PY_INCLUDE_RE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_NUMPY_INCLUDE_RE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_?core/include"
)


def stamp_inputs(root: Path) -> list[Path]:
    """The files hashed into the stamp, sorted, relative paths resolved under ``root``."""
    files: set[Path] = set()
    for pattern in STAMP_INPUTS:
        files.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(files)


def compute_stamp(root: Path, python_version: str | None = None) -> str:
    """sha256 over the interpreter version and the (path, content) of every stamp input."""
    h = hashlib.sha256()
    h.update((python_version or sys.version.split()[0]).encode())
    for path in stamp_inputs(root):
        h.update(b"\0" + path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def stamp_matches(root: Path, venv: Path) -> bool:
    """True when ``venv`` exists with a python and its stamp equals the current inputs' stamp."""
    stamp = venv / STAMP_NAME
    if not venv_python(venv).exists() or not stamp.is_file():
        return False
    return stamp.read_text().strip() == compute_stamp(root)


def _run(cmd: list[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, env=env, cwd=cwd)


def _venv_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["CMAKE_PREFIX_PATH"] = str(venv)
    env["AMENT_PREFIX_PATH"] = str(venv)
    for var in ("PYTHONPATH", "PYTHONHOME", "COLCON_PREFIX_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE"):
        env.pop(var, None)
    return env


def fix_cmake_includes(venv: Path, py_include: str, numpy_include: str) -> int:
    """Point the wheels' exported include dirs at this venv's Python/numpy; returns files changed."""
    changed = 0
    for path in sorted((venv / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = _NUMPY_INCLUDE_RE.sub(numpy_include, text)
        new = _PY_INCLUDE_RE.sub(py_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


def _query(python: Path, code: str, env: dict[str, str]) -> str:
    out = subprocess.run([str(python), "-c", code], check=True, env=env, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def bootstrap(root: Path, venv: Path, force: bool = False) -> bool:
    """Bring ``venv`` up to date; returns False when nothing had to be done."""
    if not force and stamp_matches(root, venv):
        print(f"bootstrap: {venv} is up to date (stamp matches)")
        return False
    t0 = time.monotonic()
    python = venv_python(venv)
    if not python.exists():
        if venv.exists():
            shutil.rmtree(venv)
        _run([sys.executable, "-m", "venv", venv])
    (venv / STAMP_NAME).unlink(missing_ok=True)
    env = _venv_env(venv)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-r", root / "requirements.txt"], env=env)
    _run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", root], env=env)

    py_include = _query(python, "import sysconfig; print(sysconfig.get_paths()['include'])", env)
    numpy_include = _query(python, "import numpy; print(numpy.get_include())", env)
    if not (Path(py_include) / "Python.h").is_file():
        raise SystemExit(
            f"bootstrap: Python.h not found in {py_include}; expected the CPython headers "
            "(install python3.11-dev or equivalent)"
        )
    n = fix_cmake_includes(venv, py_include, numpy_include)
    print(f"bootstrap: rewrote include dirs in {n} CMake files", flush=True)

    build = venv / ".build" / "astra_ros"
    configure = [
        venv / "bin" / "cmake",
        "-S",
        root,
        "-B",
        build,
        f"-DCMAKE_PREFIX_PATH={venv}",
        f"-DCMAKE_INSTALL_PREFIX={venv}",
        f"-DPython3_EXECUTABLE={python}",
        "-DBUILD_TESTING=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DASTRA_ROS_INSTALL_PYTHON_PACKAGE=OFF",
        f"-DPYTHON_INSTALL_DIR={INTERFACE_DIR}",
    ]
    try:
        _run(configure, env=env)
    except subprocess.CalledProcessError:
        print("bootstrap: configure failed; retrying from an empty build dir", flush=True)
        shutil.rmtree(build, ignore_errors=True)
        _run(configure, env=env)
    _run([venv / "bin" / "cmake", "--build", build, "-j", str(os.cpu_count() or 2)], env=env)
    _run([venv / "bin" / "cmake", "--install", build], env=env)

    # pkgutil.extend_path (astra_ros/__init__.py) adds the lines of <sys.path entry>/astra_ros.pkg.
    site = Path(_query(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])", env))
    (site / "astra_ros.pkg").write_text(f"{venv / INTERFACE_DIR / 'astra_ros'}\n")

    _run(
        [
            python,
            "-c",
            "import astra_ros, astra_ros.ros.isolation; from astra_ros.msg import PredictedFrames; "
            "from astra_ros.srv import Imagine; PredictedFrames(); Imagine.Request(); "
            "print('bootstrap: import check ok', astra_ros.__file__)",
        ],
        env=env,
    )
    (venv / STAMP_NAME).write_text(compute_stamp(root) + "\n")
    print(f"bootstrap: done in {time.monotonic() - t0:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="venv dir (default .venv)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    parser.add_argument("--check", action="store_true", help="exit 0 if up to date, 1 otherwise")
    args = parser.parse_args(argv)
    venv = args.venv.absolute()
    if args.check:
        return 0 if stamp_matches(ROOT, venv) else 1
    if sys.version_info[:2] != (3, 11):
        print(
            f"bootstrap: warning: running with Python {sys.version.split()[0]}; the pins expect 3.11",
            file=sys.stderr,
        )
    bootstrap(ROOT, venv, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
