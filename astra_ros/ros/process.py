"""Start-up shared by the small helper nodes (sim publisher, recorder): command line, isolate, init,
stop on a signal."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any


def command_line(argv: list[str] | None) -> list[str]:
    """``[program, *arguments]``: ``argv``, or this process's command line when None. It may carry ROS
    arguments (``--ros-args -r __node:=... -r __ns:=... --params-file ...`` from launch_ros)."""
    return list(sys.argv) if argv is None else [sys.argv[0], *argv]


def parse_node_args(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    """Parse a helper node's own options from ``command_line()``, without its ROS arguments."""
    from rclpy.utilities import remove_ros_args

    return parser.parse_args(remove_ros_args(args)[1:])


def init_stoppable_node(name: str, args: list[str]) -> tuple[Any, Callable[[], bool]]:
    """Isolate DDS, init rclpy with the ROS arguments in ``args`` (a ``command_line()``: remaps such
    as ``__node`` and ``__ns`` apply) without its signal handlers, and create ``name``.

    Returns the node and a function that tells whether SIGINT or SIGTERM arrived, so the caller's
    loop can finish its work (close a bag, write a file) before shutting down.
    """
    from astra_ros.ros.isolation import isolate_ros

    isolate_ros()
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        stop["flag"] = True

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return rclpy.create_node(name), lambda: stop["flag"]
