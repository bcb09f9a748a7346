"""Plain-Python install of astra_ros (`pip install -e .`); colcon uses CMakeLists.txt instead."""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r"<version>([^<]+)</version>", (HERE / "package.xml").read_text()).group(1)

# Keep in sync with docs/DEVELOPING.md and ASTRA_ROS_CONSOLE_SCRIPTS in CMakeLists.txt.
CONSOLE_SCRIPTS = [
    "astra-record-sim = astra_ros.data.record_sim:main",
    "astra-train = astra_ros.training.train:main",
    "astra-export = astra_ros.export.onnx_export:main",
    "astra-build-engine = astra_ros.runtime.build_engine:main",
    "astra-bench = astra_ros.bench:main",
    "astra-eval = astra_ros.evaluation.evaluate:main",
    "astra-convert = astra_ros.data.convert:main",
    "astra-plan-bench = astra_ros.planning.bench:main",
    "astra_world_model = astra_ros.ros.node:main",
    "astra_planner = astra_ros.ros.planner_node:main",
    "astra-ros-run = astra_ros.ros.run:main",
    "astra_sim_publisher = astra_ros.ros.sim_publisher:main",
    "astra_prediction_recorder = astra_ros.ros.recorder:main",
]


def _files(pattern: str) -> list[str]:
    return sorted(p for p in glob(pattern) if Path(p).is_file() and not p.endswith(".gitkeep"))


setup(
    name="astra_ros",
    version=VERSION,
    description="Astra-style interactive video world model for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["astra_ros", "astra_ros.*"]),
    data_files=[
        ("share/astra_ros", ["package.xml"]),
        ("share/astra_ros/launch", _files("launch/*")),
        ("share/astra_ros/config", _files("config/*")),
        ("share/astra_ros/msg", _files("msg/*.msg")),
        ("share/astra_ros/srv", _files("srv/*.srv")),
    ],
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    zip_safe=False,
)
