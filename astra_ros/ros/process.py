"""Start-up shared by the small helper nodes (sim publisher, recorder): isolate, init, stop on a signal."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


def init_stoppable_node(name: str) -> tuple[Any, Callable[[], bool]]:
    """Isolate DDS, init rclpy without its signal handlers and create ``name``.

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

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return rclpy.create_node(name), lambda: stop["flag"]
