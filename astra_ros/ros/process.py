"""Start-up of the nodes: for the small helper nodes (sim publisher, recorder) command line, isolate,
init, stop on a signal; for a managed node (the world model) its spin loop and shutdown."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, model file missing/corrupt/wrong kind)."""


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


def helper_node(node: Any, suffix: str) -> Any:
    """A parameterless node ``<node name>_<suffix>`` beside ``node`` (same namespace and context):
    services on it run on their own executor thread (``spin_managed``)."""
    from rclpy.node import Node

    return Node(
        f"{node.get_name()}_{suffix}",
        namespace=node.get_namespace(),
        context=node.context,
        use_global_arguments=False,  # a global __node remap must not give it the node's name
        start_parameter_services=False,
    )


def spin_managed(name: str, args: list[str], start: Callable[[], tuple[Any, list[Any]]]) -> int:
    """Init rclpy with ``args`` (ROS arguments), ``start()`` the managed node, spin it until SIGINT /
    SIGTERM, shut it down; 2 when ``start`` raises StartupError (the reason printed), else 0.

    ``start`` returns the lifecycle node and its helper nodes, each spun by its own executor thread
    (the node's ``destroy_node`` destroys them). A signal only stops the spin loops: the node is
    shut down (its worker stopped) before the ROS context (rclpy's own handlers would invalidate
    the context under the worker first).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    # The worker needs the GIL back from the executor threads after each backend call: at Python's
    # default 5 ms switch interval that wait added ~80 ms to the p50 latency and up to 2 s to the p99
    # (2-core CPU, measured with an earlier multi-threaded executor); 0.2 ms removes most of it.
    sys.setswitchinterval(0.0002)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            node, helpers = start()
        except StartupError as err:
            print(f"[{name}] cannot start: {err}", file=sys.stderr, flush=True)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        helper_executors = []
        for helper in helpers:
            helper_executor = SingleThreadedExecutor()
            helper_executor.add_node(helper)
            helper_executors.append(helper_executor)
            spin = (helper_executor, stop, node)
            threading.Thread(target=spin_until, args=spin, name=helper.get_name(), daemon=True).start()
        try:
            spin_until(executor, stop, node)
        finally:
            node.trigger_shutdown()
            for helper_executor in helper_executors:
                helper_executor.shutdown()
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


def spin_until(executor: Any, stop: threading.Event, node: Any) -> None:
    """Spin ``executor`` until ``stop`` (checked at least every 0.1 s: a signal cannot wake the wait
    itself). An exception escaping a callback (e.g. rclpy's TimeSource on a /clock with negative
    seconds) is logged by ``node`` and spinning goes on: no message kills the node."""
    from rclpy.executors import ExternalShutdownException

    while not stop.is_set() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return
        except Exception as err:  # noqa: BLE001
            message = f"callback failed: {type(err).__name__}: {err}"
            node.get_logger().error(message, throttle_duration_sec=5.0)
