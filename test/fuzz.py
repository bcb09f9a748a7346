"""Hostile input against the running ``astra_world_model`` node, over DDS (issue 19).

``KINDS`` is the catalogue of attacks (images, stamps, commands, Imagine, services, parameters).
``Fuzzer`` drives a node started by ``bench_node.NodeProcess``: it keeps a valid camera (15 Hz)
and commands (30 Hz) going, sends one attack, and keeps the valid stream going until the node
predicts again. An attack passes when:

- the node process is alive and predicts again (a prediction of a valid frame sent after the
  attack) within ``resume_timeout`` s (``RESUME_TIMEOUT_S``);
- ``rejected.*`` in /diagnostics moved by exactly the kind's ``rejected`` counts (nothing else
  was rejected, e.g. no real frame after a future-stamped one) and ``reset.*`` by its ``resets``;
- every prediction published meanwhile is of a valid frame (its stamp), with frame_id ``camera``,
  commands within the valid range and, on the copy-last backend, the valid frame's pixels (valid
  images are grey levels in ``[VALID_LO, VALID_HI]``; hostile ones are black or white);
- no frame was dropped for a missing or broken input (``DROPPED_INPUT``) unless the kind allows it
  (``max_dropped``): one bad message must not cost a valid frame;
- no log line longer than ``MAX_LOG_LINE`` characters, at most ``max_log_lines`` new lines.

The node test (``test/test_fuzz.py``) runs each kind once; the benchmark runs them in a random
order for a while and writes a JSON summary and an RSS plot:

    python test/fuzz.py --seconds 300 --out fuzz_out [--model-path engines/astra_small.onnx]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from harness import COPY_LAST_JOINTS, Driver, NodeProcess

from astra_ros.ros.isolation import isolate_ros
from astra_ros.ros.settings import SPECS


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


IMAGE_HZ = 15.0
COMMAND_HZ = 30.0
VALID_LO, VALID_HI = 20, 219
VALID_SPEED = 0.5  # |valid command| <= this
RESUME_TIMEOUT_S = 10.0
LOG_THROTTLE_S = float(SPECS["log_throttle_period"].default)  # the node's
PRE_S = 0.15  # valid stream before each attack
MAX_LOG_LINE = 1000
IMAGE_SIDE = 32
FUZZ_PARAMS: dict[str, Any] = {
    "model_path": "copy_last",
    "joint_names": COPY_LAST_JOINTS,
    "prediction_rate": 0.0,
    "frame_period": 0.0,
    "image_qos_reliability": "reliable",
    "image_qos_depth": 50,
    "diagnostics_period": 0.1,
    "horizon": 4,
    "min_history": 2,
    "max_image_pixels": 640 * 480,  # the too-large attack stays cheap on the wire
    "max_image_gap": 5.0,  # a stall of this process (a slow model, a huge attack) is not a camera gap
}
POSITION_TOPIC = "position_commands"  # the position node's joint_commands, remapped (JointState uses it)
TRAJECTORY_TOPIC = "trajectory_commands"  # the trajectory node's joint_commands, remapped
POSITION_PARAMS = {  # a stall of this process (its states late) is not a missing state
    "command_modality": "joint_position",
    "stale_command_policy": "hold",
    "command_staleness": 3.0,
}
NODE_SETUPS: dict[str, tuple[dict[str, Any], list[str]]] = {  # command_type -> extra params, ROS args
    "joint_state": ({}, []),
    "twist": ({}, []),
    # position-controlled arms: absolute targets and /joint_states
    "float64_multi_array": (POSITION_PARAMS, ["-r", f"joint_commands:={POSITION_TOPIC}"]),
    "joint_trajectory": (POSITION_PARAMS, ["-r", f"joint_commands:={TRAJECTORY_TOPIC}"]),
}
STATE_NODES = ("float64_multi_array", "joint_trajectory")  # the nodes that take /joint_states
DROPPED_INPUT = (
    "dropped.missing_state",
    "dropped.missing_command",
    "dropped.stale_command",
    "dropped.backend_error",
)


@dataclass(frozen=True)
class Kind:
    name: str
    group: str  # images, stamps, commands, imagine, services, parameters
    send: Callable[[Fuzzer], None]  # sends the attack; raises AssertionError on a wrong reply
    rejected: dict[str, int] = field(default_factory=dict)  # exact rejected.<key> deltas
    resets: int = 0  # exact delta of all reset.* counters
    max_log_lines: int | None = None
    command_type: str = "joint_state"  # the node it needs
    max_dropped: int | None = 0  # frames dropped for an input (DROPPED_INPUT) at most; None: any


@dataclass
class Outcome:
    kind: str  # the kind's name, "<command_type>:<name>" on the nodes other than joint_state
    group: str
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


class Fuzzer:
    """One node under attack: valid stream, attack helpers, checks."""

    def __init__(
        self,
        proc: NodeProcess,
        driver: Driver,
        joints: list[str],
        command_type: str = "joint_state",
        status_name: str = "/astra_world_model: world model",
        pixel_check: bool = True,
    ):
        from geometry_msgs.msg import Twist
        from rcl_interfaces.srv import SetParameters

        self.proc, self.driver, self.joints = proc, driver, list(joints)
        self.command_type, self.status_name, self.pixel_check = command_type, status_name, pixel_check
        self.twist_pub = driver.node.create_publisher(Twist, "cmd_vel", 50)
        if command_type in STATE_NODES:
            from sensor_msgs.msg import JointState
            from std_msgs.msg import Float64MultiArray
            from trajectory_msgs.msg import JointTrajectory

            self.array_pub = driver.node.create_publisher(Float64MultiArray, POSITION_TOPIC, 50)
            self.trajectory_pub = driver.node.create_publisher(JointTrajectory, TRAJECTORY_TOPIC, 50)
            self.state_pub = driver.node.create_publisher(JointState, "joint_states", 50)
        self.states_paused_until = 0.0  # monotonic s: the valid stream sends no state before then
        node_name = status_name.split(":")[0]
        self.set_params = driver.node.create_client(SetParameters, f"{node_name}/set_parameters")
        self.max_pixels = int(FUZZ_PARAMS["max_image_pixels"])
        self.resume_timeout = RESUME_TIMEOUT_S
        self.rss_warm_kb = 0  # node RSS once warm (``warm``)
        self.valid_stamps: set[int] = set()
        self._diagnostics: dict[str, str] | None = None  # settled, after the previous kind
        self._count = 0
        self._next_image = self._next_command = time.monotonic()

    # --- valid stream ---------------------------------------------------------------------------

    def pump(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Keep the valid camera and commands going until ``predicate`` holds or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now >= self._next_command:
                self._next_command = max(self._next_command + 1 / COMMAND_HZ, now - 0.1)
                self.valid_command()
            if now >= self._next_image:
                self._next_image = max(self._next_image + 1 / IMAGE_HZ, now - 0.1)
                self.valid_image()
            if predicate():
                return True
            if now >= deadline:
                return False
            self.driver.rclpy.spin_once(self.driver.node, timeout_sec=0.005)

    def valid_command(self) -> None:
        speed = 0.1 * (1 + self._count % 5)
        if self.command_type == "twist":
            self.twist_pub.publish(self.twist(speed))
        elif self.command_type in STATE_NODES:  # targets and the state they are reached from
            if self.command_type == "joint_trajectory":
                self.publish_trajectory([speed] * len(self.joints), time.time_ns())
            else:
                self.publish_targets([speed] * len(self.joints))
            if time.monotonic() >= self.states_paused_until:
                self.publish_state(self.joints, [speed] * len(self.joints), time.time_ns())
        else:
            self.publish_joints(self.joints, [speed] * len(self.joints), time.time_ns())

    def valid_image(self) -> None:
        stamp = time.time_ns()
        self.valid_stamps.add(stamp)
        value = VALID_LO + self._count % (VALID_HI - VALID_LO + 1)
        self._count += 1
        self.driver.image_pub.publish(self.image(stamp, value=value))

    # --- message makers -------------------------------------------------------------------------

    def image(self, stamp: int, value: int = 0, **fields: Any):
        """A ``rgb8`` IMAGE_SIDE^2 image (black by default) with some fields overridden."""
        from sensor_msgs.msg import Image

        from astra_ros.ros.conversions import ns_to_stamp

        msg = Image()
        if stamp >= 0:
            msg.header.stamp = ns_to_stamp(stamp)
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.header.frame_id = "camera"
        msg.height = msg.width = IMAGE_SIDE
        msg.encoding, msg.step = "rgb8", 3 * IMAGE_SIDE
        msg.data = bytes([value]) * (3 * IMAGE_SIDE * IMAGE_SIDE)
        for key, item in fields.items():
            setattr(msg, key, item)
        if "data" not in fields and "step" not in fields and ("height" in fields or "width" in fields):
            msg.data = bytes(msg.step * msg.height)
        return msg

    def raw(self, encoding: str, height: int, width: int, bytes_per_pixel: float, stamp: int | None = None):
        """An image whose step and data length match ``bytes_per_pixel`` (the attack is elsewhere)."""
        step = int(math.ceil(width * bytes_per_pixel))
        rows = height * 3 // 2 if encoding in ("nv12", "nv21") else height
        return self.image(
            time.time_ns() if stamp is None else stamp,
            encoding=encoding,
            height=height,
            width=width,
            step=step,
            data=bytes(rows * step),
        )

    def publish_joints(self, names: list[str], velocities: list[float], stamp: int) -> None:
        from sensor_msgs.msg import JointState

        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.name = list(names)
        msg.velocity = [float(v) for v in velocities]
        self.driver.joint_pub.publish(msg)

    def publish_targets(self, values: list[float]) -> None:
        from std_msgs.msg import Float64MultiArray

        self.array_pub.publish(Float64MultiArray(data=[float(v) for v in values]))

    def publish_trajectory(self, positions: list[float], stamp: int, time_from_start_ns: int = 0) -> None:
        """A one-point JointTrajectory of position targets for ``self.joints``."""
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        point = JointTrajectoryPoint(positions=[float(v) for v in positions])
        point.time_from_start.sec, point.time_from_start.nanosec = divmod(time_from_start_ns, 1_000_000_000)
        msg = JointTrajectory(joint_names=list(self.joints), points=[point])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.trajectory_pub.publish(msg)

    def publish_state(self, names: list[str], positions: list[float], stamp: int) -> None:
        from sensor_msgs.msg import JointState

        msg = JointState(name=list(names), position=[float(v) for v in positions])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.state_pub.publish(msg)

    @staticmethod
    def twist(value: float):
        from geometry_msgs.msg import Twist

        msg = Twist()
        msg.linear.x = msg.angular.z = float(value)
        return msg

    def imagine(self, **fields: Any):
        return self.call(self.driver.imagine, self.imagine_request(**fields))

    def imagine_request(self, **fields: Any):
        """A valid Imagine request (2 candidates x 3 frames) with ``fields`` set."""
        from astra_ros.srv import Imagine

        width = len(self.joints)
        request = Imagine.Request(
            modality="joint_velocity",
            joint_names=self.joints,
            num_candidates=2,
            horizon=3,
            action_dim=width,
            actions=[0.1] * (2 * 3 * width),
        )
        for key, item in fields.items():
            setattr(request, key, item)
        return request

    def call(self, client, request, timeout: float = 20.0):
        """A service call answered while the valid stream goes on."""
        future = client.call_async(request)
        if not self.pump(future.done, timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout} s")
        return future.result()

    def set_parameter(self, name: str, value: Any) -> Any:
        from rclpy.parameter import Parameter

        request = self.set_params.srv_type.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]
        )
        return self.call(self.set_params, request).results[0]

    # --- checks ----------------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, str]:
        for array in reversed(self.driver.diagnostics):
            for status in array.status:
                if status.name == self.status_name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def status_messages(self, since: int = 0) -> list[str]:
        """The node status's messages in the /diagnostics received since the ``since``-th."""
        return [
            s.message for a in self.driver.diagnostics[since:] for s in a.status if s.name == self.status_name
        ]

    def settled_diagnostics(self) -> dict[str, str]:
        """The diagnostics published after the next one (callbacks in flight have been counted)."""
        seen = len(self.driver.diagnostics)
        self.pump(lambda: len(self.driver.diagnostics) > seen + 1, 2.0)
        return self.diagnostics()

    def run(self, kind: Kind) -> Outcome:
        started = time.monotonic()
        label = kind.name if self.command_type == "joint_state" else f"{self.command_type}:{kind.name}"
        problems: list[str] = []
        self.pump(lambda: False, PRE_S)
        before = self._diagnostics or self.settled_diagnostics()
        log_start = len(self.proc.output())
        first_prediction = len(self.driver.predictions)
        try:
            kind.send(self)
        except (AssertionError, TimeoutError) as err:
            problems.append(f"reply: {err}")
        sent_ns = time.time_ns()

        def delta(diag: dict[str, str], key: str) -> int:
            return int(diag.get(key, 0)) - int(before.get(key, 0))

        def resumed() -> bool:
            return any(
                stamp_ns(m.header.stamp) > sent_ns for m, _ in self.driver.predictions[first_prediction:]
            )

        def settled() -> bool:
            diag = self.diagnostics()
            counted = all(delta(diag, f"rejected.{k}") >= v for k, v in kind.rejected.items())
            return counted and resumed() and self.proc.proc.poll() is None

        self.pump(settled, self.resume_timeout)
        if self.proc.proc.poll() is not None:
            return Outcome(label, kind.group, [f"node exited with {self.proc.proc.returncode}"], 0.0)
        after = self._diagnostics = self.settled_diagnostics()
        if not resumed():
            problems.append(f"no prediction of a valid frame within {self.resume_timeout} s")
        keys = {k for k in (*before, *after) if k.startswith("rejected.")} | {
            f"rejected.{k}" for k in kind.rejected
        }
        moved = {k[9:]: delta(after, k) for k in sorted(keys) if delta(after, k)}
        if moved != {k: v for k, v in kind.rejected.items() if v}:
            problems.append(f"rejected counters moved by {moved}; expected {kind.rejected}")
        resets = sum(delta(after, k) for k in {*before, *after} if k.startswith("reset."))
        if resets != kind.resets:
            problems.append(f"{resets} state resets; expected {kind.resets}")
        dropped = {k: delta(after, k) for k in DROPPED_INPUT if delta(after, k)}
        if kind.max_dropped is not None and sum(dropped.values()) > kind.max_dropped:
            problems.append(f"frames dropped for an input: {dropped}; expected at most {kind.max_dropped}")
        problems += self._garbage(self.driver.predictions[first_prediction:])
        lines = self.proc.output()[log_start:].splitlines()
        longest = max((len(line) for line in lines), default=0)
        if longest > MAX_LOG_LINE:
            problems.append(f"a log line of {longest} characters; expected at most {MAX_LOG_LINE}")
        if kind.max_log_lines is not None and len(lines) > kind.max_log_lines:
            problems.append(f"{len(lines)} log lines; expected at most {kind.max_log_lines}")
        return Outcome(label, kind.group, problems, time.monotonic() - started)

    def _garbage(self, predictions: list) -> list[str]:
        problems = []
        for msg, _ in predictions:
            stamp = stamp_ns(msg.header.stamp)
            if stamp not in self.valid_stamps:
                problems.append(f"a prediction of an input that was not a valid frame (stamp {stamp})")
            if msg.header.frame_id != "camera":
                problems.append(f"a prediction with frame_id of {len(msg.header.frame_id)} characters")
            speeds = [abs(v) for point in msg.actions.points for v in (*point.velocities, *point.positions)]
            if max(speeds, default=0.0) > VALID_SPEED + 1e-6:
                problems.append(f"a prediction conditioned on a command of |{max(speeds):g}|")
            if self.pixel_check:
                levels = {frame.data[0] for frame in msg.frames}
                if not all(VALID_LO <= level <= VALID_HI for level in levels):
                    problems.append(f"a prediction with pixel levels {sorted(levels)} (not a valid frame)")
            if problems:
                break
        return problems


# --- the catalogue -----------------------------------------------------------------------------------


def _now() -> int:
    return time.time_ns()


def _image(**fields: Any) -> Callable[[Fuzzer], None]:
    return lambda f: f.driver.image_pub.publish(f.image(_now(), **fields))


def _raw(encoding: str, height: int, width: int, bytes_per_pixel: float) -> Callable[[Fuzzer], None]:
    return lambda f: f.driver.image_pub.publish(f.raw(encoding, height, width, bytes_per_pixel))


def _too_large(f: Fuzzer) -> None:
    side = math.isqrt(f.max_pixels) + 1  # 32FC1, like a depth camera at full resolution
    f.driver.image_pub.publish(f.raw("32FC1", side, side, 4))


def _huge_frame_id(f: Fuzzer) -> None:
    msg = f.image(_now(), value=255)
    msg.header.frame_id = HUGE
    f.driver.image_pub.publish(msg)


def _future_repeated(f: Fuzzer) -> None:
    """Images 0.9 s ahead every 0.8 s: without the tolerance they would hijack the timeline."""
    for k in range(3):
        if k:
            f.pump(lambda: False, 0.8)
        f.driver.image_pub.publish(f.image(_now() + 900_000_000, value=255))


def _second_camera(f: Fuzzer) -> None:
    """A second camera 100 s behind, interleaved with the real one for 20 frames."""
    for _ in range(20):
        f.pump(lambda: False, 1 / IMAGE_HZ)
        f.driver.image_pub.publish(f.image(_now() - 100 * 10**9, value=255))


def _last_image_stamp(f: Fuzzer) -> int:
    return max(f.valid_stamps)


def _joints(
    velocity: float | None = None, names=None, velocities=None, stamp=None
) -> Callable[[Fuzzer], None]:
    def send(f: Fuzzer) -> None:
        joint_names = f.joints if names is None else names(f) if callable(names) else names
        values = velocities if velocities is not None else [velocity] * len(joint_names)
        f.publish_joints(joint_names, values, _now() if stamp is None else stamp())

    return send


MANY_NAMES = [f"j{i}" for i in range(5000)]


def _targets(value: float | None = None, values=None) -> Callable[[Fuzzer], None]:
    return lambda f: f.publish_targets(values if values is not None else [value] * len(f.joints))


def _state(position: float = 0.1, names=None, stamp=None) -> Callable[[Fuzzer], None]:
    def send(f: Fuzzer) -> None:
        joint_names = f.joints if names is None else names(f)
        f.publish_state(joint_names, [position] * len(joint_names), _now() if stamp is None else stamp())

    return send


def _trajectory(stamp=None, time_from_start_ns: int = 0) -> Callable[[Fuzzer], None]:
    """One JointTrajectory of valid targets, stamped ``stamp()`` (default now), its point taking
    effect ``time_from_start_ns`` later."""

    def send(f: Fuzzer) -> None:
        f.publish_trajectory([0.1] * len(f.joints), _now() if stamp is None else stamp(), time_from_start_ns)

    return send


def _state_ahead(f: Fuzzer) -> None:
    """One state stamped 0.4 s ahead (inside future_stamp_tolerance), the next real state at once."""
    f.publish_state(f.joints, [0.1] * len(f.joints), _now() + 400_000_000)
    f.publish_state(f.joints, [0.1] * len(f.joints), _now())


def _state_pause(f: Fuzzer) -> None:
    """/joint_states stops (for 1.25 command_staleness at least) while images and targets go on:
    the frames are dropped for the missing state, the log (throttled: the pause lasts until a line
    names it, at most one throttle period more) and /diagnostics name that reason, and the node
    predicts again once states return (no ~/reset)."""
    log_start, seen, started = len(f.proc.output()), len(f.driver.diagnostics), time.monotonic()
    line, pause = "frame dropped (missing_state): no robot state", 1.25 * POSITION_PARAMS["command_staleness"]
    f.states_paused_until = math.inf
    f.pump(
        lambda: time.monotonic() - started >= pause and line in f.proc.output()[log_start:],
        pause + LOG_THROTTLE_S,
    )
    f.states_paused_until = 0.0
    assert line in f.proc.output()[log_start:], (
        f"no log line names the missing state: {f.proc.output()[log_start:]}"
    )
    named = [m for m in f.status_messages(seen) if "dropped.missing_state: no robot state" in m]
    assert named, f"/diagnostics never named the missing state: {f.status_messages(seen)[-1:]}"


def _change_state_burst(f: Fuzzer) -> None:
    """20 change_state calls at once (10 deactivate/activate pairs, as a supervisor retrying): every
    one answered, in order, successfully; the node ends active."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    name = f"{f.status_name.split(':')[0]}/change_state"
    client = f.driver.node.create_client(ChangeState, name, qos_profile=every_call)
    try:
        assert f.pump(client.service_is_ready, 10.0), f"{name} not available"
        ids = [Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE] * 10
        futures = [client.call_async(ChangeState.Request(transition=Transition(id=i))) for i in ids]
        f.pump(lambda: all(future.done() for future in futures), 30.0)
        answered = [future.result().success for future in futures if future.done()]
        assert len(answered) == len(futures), f"{len(answered)} of {len(futures)} change_state calls answered"
        assert all(answered), f"{answered.count(False)} change_state calls failed"
    finally:
        f.driver.node.destroy_client(client)


def _twist(value: float) -> Callable[[Fuzzer], None]:
    return lambda f: f.twist_pub.publish(f.twist(value))


def _refused(reason: str, **fields: Any) -> Callable[[Fuzzer], None]:
    def send(f: Fuzzer) -> None:
        response = f.imagine(**fields)
        assert not response.success, "Imagine accepted the request"
        assert reason in response.error, f"error {response.error!r} does not name {reason!r}"

    return send


def _imagine_large(f: Fuzzer) -> None:
    """A valid large Imagine (16 candidates x 64 frames): answered, live predictions go on meanwhile
    and the memory it took is returned."""
    width = len(f.joints)
    before_mb = f.proc.rss_kb() / 1024
    response = f.imagine(num_candidates=16, horizon=64, actions=[0.1] * (16 * 64 * width))
    assert response.success, response.error
    f.pump(lambda: False, 1.0)
    growth_mb = f.proc.rss_kb() / 1024 - before_mb
    assert growth_mb < 50, f"RSS {growth_mb:.0f} MB above its level before the Imagine call"


def _imagine_concurrent(f: Fuzzer) -> None:
    """12 valid Imagine calls at once: every one answered, successfully."""
    futures = [f.driver.imagine.call_async(f.imagine_request(seed=i + 1)) for i in range(12)]
    f.pump(lambda: all(future.done() for future in futures), 60.0)
    answers = [future.result() for future in futures if future.done()]
    assert len(answers) == len(futures), f"{len(answers)} of {len(futures)} concurrent Imagine calls answered"
    failed = [a.error for a in answers if not a.success]
    assert not failed, f"{len(failed)} concurrent Imagine calls failed: {failed[0]}"


def _reset_storm(f: Fuzzer) -> None:
    from std_srvs.srv import Trigger

    for _ in range(20):
        assert f.call(f.driver.reset, Trigger.Request(), timeout=5.0).success


def _reset_burst(f: Fuzzer) -> None:
    from std_srvs.srv import Trigger

    futures = [f.driver.reset.call_async(Trigger.Request()) for _ in range(300)]
    f.pump(lambda: all(future.done() for future in futures), 30.0)
    answered = sum(future.done() for future in futures)
    assert answered == len(futures), f"{answered} of {len(futures)} ~/reset calls answered"


def _parameter(name: str, value: Any) -> Callable[[Fuzzer], None]:
    def send(f: Fuzzer) -> None:
        result = f.set_parameter(name, value)
        assert not result.successful, f"set {name}={value!r} was accepted"

    return send


def _use_sim_time(f: Fuzzer) -> None:
    result = f.set_parameter("use_sim_time", True)
    if result.successful:
        f.set_parameter("use_sim_time", False)  # leave the node as it was for the next kind
    assert not result.successful, "use_sim_time=true was accepted at runtime"


HUGE = "x" * 256 * 1024
NAN, INF = float("nan"), float("inf")

KINDS: tuple[Kind, ...] = (
    # images
    Kind("yuv422_odd_width", "images", _raw("yuv422", 8, 7, 2), {"image_odd_size": 1}),
    Kind("uyvy_odd_width", "images", _raw("uyvy", 8, 9, 2), {"image_odd_size": 1}),
    Kind("yuyv_odd_width", "images", _raw("yuyv", 8, 5, 2), {"image_odd_size": 1}),
    Kind("nv12_odd_height", "images", _raw("nv12", 7, 8, 1), {"image_odd_size": 1}),
    Kind("nv21_odd_height", "images", _raw("nv21", 5, 8, 1), {"image_odd_size": 1}),
    Kind("unknown_encoding", "images", _image(encoding="weird42"), {"image_encoding": 1}),
    Kind("two_channel_encoding", "images", _raw("8UC2", 8, 8, 2), {"image_encoding": 1}),
    Kind("huge_encoding_string", "images", _image(encoding=HUGE), {"image_encoding": 1}),
    Kind("zero_size", "images", _image(height=0, width=0, step=0, data=b""), {"image_empty": 1}),
    Kind("step_too_small", "images", _image(step=IMAGE_SIDE), {"image_step": 1}),
    Kind("truncated_data", "images", _image(data=bytes(100)), {"image_data_length": 1}),
    Kind(
        "huge_header_no_data", "images", _image(height=2**31, width=2**31, data=b""), {"image_too_large": 1}
    ),
    Kind("larger_than_max_image_pixels", "images", _too_large, {"image_too_large": 1}),
    Kind("huge_frame_id", "images", _huge_frame_id, {"image_frame_id": 1}),
    # stamps
    Kind(
        "negative_stamp",
        "stamps",
        lambda f: f.driver.image_pub.publish(f.image(-5 * 10**9)),
        {"image_stamp_range": 1},
    ),
    Kind(
        "stamp_near_int32_max",
        "stamps",
        lambda f: f.driver.image_pub.publish(f.image((2**31 - 2) * 10**9)),
        {"image_stamp_range": 1},
    ),
    Kind("future_stamps_repeated", "stamps", _future_repeated, {"image_stamp_future": 3}),
    Kind(
        "duplicate_stamp",
        "stamps",
        lambda f: f.driver.image_pub.publish(f.image(_last_image_stamp(f), value=255)),
        {"image_duplicate": 1},
    ),
    Kind(
        "backwards_small",
        "stamps",
        lambda f: f.driver.image_pub.publish(f.image(_last_image_stamp(f) - 300_000_000, value=255)),
        {"image_out_of_order": 1},
    ),
    Kind(
        "backwards_jump_once",
        "stamps",
        lambda f: f.driver.image_pub.publish(f.image(_now() - 100 * 10**9, value=255)),
        {"image_unconfirmed_jump": 1},
    ),
    Kind(
        "second_camera_old_clock", "stamps", _second_camera, {"image_unconfirmed_jump": 20}, max_log_lines=6
    ),
    Kind(
        "command_stamp_future",
        "stamps",
        _joints(0.1, stamp=lambda: _now() + 10 * 10**9),
        {"command_stamp_future": 1},
    ),
    Kind(
        "command_stamp_negative", "stamps", _joints(0.1, stamp=lambda: -(10**9)), {"command_stamp_range": 1}
    ),
    Kind(
        "command_stamp_10s_old",
        "stamps",
        _joints(0.1, stamp=lambda: _now() - 10 * 10**9),
        {"command_unconfirmed_jump": 1},
    ),
    # commands
    Kind("joint_nan", "commands", _joints(NAN), {"command_non_finite": 1}),
    Kind("joint_inf", "commands", _joints(-INF), {"command_non_finite": 1}),
    Kind("joint_1e30", "commands", _joints(1e30), {"command_magnitude": 1}),
    Kind("joint_1e4_rad_s", "commands", _joints(1e4), {"command_magnitude": 1}),
    Kind("joint_wrong_length", "commands", _joints(velocities=[0.1, 0.1, 0.1]), {"joint_count": 1}),
    Kind(
        "joint_unknown_names", "commands", _joints(0.1, names=[f"j{i}" for i in range(7)]), {"joint_names": 1}
    ),
    Kind("joint_duplicate_names", "commands", _joints(0.1, names=["joint_0"] * 7), {"joint_names": 1}),
    Kind(
        "joint_5000_names",
        "commands",
        _joints(0.1, names=[f"wrong_{i}" for i in range(5000)]),
        {"joint_names_limit": 1},
    ),
    Kind(
        "joint_huge_name",
        "commands",
        _joints(0.1, names=lambda f: [*f.joints[:-1], HUGE]),
        {"joint_names_limit": 1},
    ),
    Kind("twist_nan", "commands", _twist(NAN), {"command_non_finite": 1}, command_type="twist"),
    Kind("twist_1e30", "commands", _twist(1e30), {"command_magnitude": 1}, command_type="twist"),
    Kind("twist_1e4", "commands", _twist(1e4), {"command_magnitude": 1}, command_type="twist"),
    *(
        Kind(name, "commands", send, rejected, command_type="float64_multi_array")
        for name, send, rejected in (
            ("targets_nan", _targets(NAN), {"command_non_finite": 1}),
            ("targets_1e30", _targets(1e30), {"command_magnitude": 1}),
            ("targets_wrong_length", _targets(values=[0.1] * 3), {"joint_count": 1}),
            ("targets_10000_values", _targets(values=[0.1] * 10000), {"joint_count": 1}),
        )
    ),
    # robot states, on both position-controlled nodes: one message must never stop the predictions
    *(
        Kind(name, "states", send, rejected, command_type=command_type, **extra)
        for command_type in STATE_NODES
        for name, send, rejected, extra in (
            ("state_nan", _state(NAN), {"state_non_finite": 1}, {}),
            ("state_missing_joint", _state(names=lambda f: f.joints[1:]), {"state_joint_names": 1}, {}),
            ("state_stamp_future", _state(stamp=lambda: _now() + 10 * 10**9), {"state_stamp_future": 1}, {}),
            ("state_5000_names", _state(names=lambda f: MANY_NAMES), {"joint_names_limit": 1}, {}),
            (
                "state_stamp_10s_old",
                _state(stamp=lambda: _now() - 10 * 10**9),
                {"state_unconfirmed_jump": 1},
                {},
            ),
            ("state_stamp_0.4s_ahead", _state_ahead, {}, {}),
            ("state_1e39_overflows_float32", _state(1e39), {"state_magnitude": 1}, {}),
            ("state_pause", _state_pause, {}, {"max_dropped": None, "max_log_lines": 4}),
        )
    ),
    # trajectory commands: the command timeline recovers by itself
    Kind(
        "trajectory_point_1e6s_ahead",
        "commands",
        _trajectory(time_from_start_ns=10**15),
        {"trajectory_time_from_start": 1},
        command_type="joint_trajectory",
    ),
    Kind(
        "trajectory_stamp_10s_old",
        "stamps",
        _trajectory(stamp=lambda: _now() - 10 * 10**9),
        {"command_unconfirmed_jump": 1},
        command_type="joint_trajectory",
    ),
    Kind(
        "trajectory_stamp_0.4s_ahead",
        "stamps",
        _trajectory(stamp=lambda: _now() + 400_000_000),
        command_type="joint_trajectory",
    ),
    # Imagine
    Kind(
        "imagine_wrong_length", "imagine", _refused("len(actions)", actions=[0.0] * 5), {"imagine_shape": 1}
    ),
    Kind(
        "imagine_huge_batch_short_data",
        "imagine",
        _refused("num_candidates*horizon", num_candidates=10000, horizon=8, actions=[]),
        {"imagine_shape": 1},
    ),
    Kind("imagine_horizon_1000", "imagine", _refused("horizon=1000", horizon=1000), {"imagine_shape": 1}),
    Kind(
        "imagine_zero_candidates",
        "imagine",
        _refused("num_candidates=0", num_candidates=0),
        {"imagine_shape": 1},
    ),
    Kind("imagine_nan", "imagine", _refused("NaN", actions=[NAN] * 42), {"imagine_non_finite": 1}),
    Kind(
        "imagine_1e30",
        "imagine",
        _refused("max_command_magnitude", actions=[1e30] * 42),
        {"imagine_magnitude": 1},
    ),
    Kind(
        "imagine_unknown_modality",
        "imagine",
        _refused("modality", modality="telepathy"),
        {"imagine_modality": 1},
    ),
    Kind(
        "imagine_wrong_joints",
        "imagine",
        _refused("joint_names", joint_names=["a"] * 7),
        {"imagine_joint_names": 1},
    ),
    Kind("imagine_16x64_valid", "imagine", _imagine_large),
    Kind("imagine_12_concurrent", "imagine", _imagine_concurrent),
    # services
    Kind("reset_storm_sequential", "services", _reset_storm, resets=20, max_log_lines=25),
    Kind("reset_burst_300", "services", _reset_burst, resets=300),
    Kind("change_state_20_concurrent", "services", _change_state_burst, resets=10),
    # parameters
    Kind("set_read_only_parameter", "parameters", _parameter("max_history", 3)),
    Kind("set_parameter_wrong_type", "parameters", _parameter("max_image_pixels", "many")),
    Kind("set_undeclared_parameter", "parameters", _parameter("horizn", 3)),
    Kind("use_sim_time_at_runtime", "parameters", _use_sim_time),
)


def kinds_for(command_type: str) -> list[Kind]:
    return [k for k in KINDS if k.command_type == command_type]


# --- benchmark --------------------------------------------------------------------------------------


def start(params: dict[str, Any], namespace: str = "") -> tuple[NodeProcess, Driver]:
    """The node for ``params["command_type"]`` (with its ``NODE_SETUPS``) and a driver for it."""
    setup, ros_args = NODE_SETUPS[params.get("command_type", "joint_state")]
    ros_args = ros_args + (["-r", f"__ns:=/{namespace}"] if namespace else [])
    proc = NodeProcess({**params, **setup}, extra_args=["--ros-args", *ros_args] if ros_args else [])
    driver = Driver(namespace=namespace)

    def ready() -> bool:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"the node exited with {proc.proc.returncode}:\n{proc.output()[-4000:]}")
        return (
            driver.image_pub.get_subscription_count() > 0
            and driver.imagine.service_is_ready()
            and driver.reset.service_is_ready()
        )

    try:
        if not driver.spin_until(ready, 60.0):
            raise RuntimeError(f"the node did not come up:\n{proc.output()[-4000:]}")
    except RuntimeError:
        driver.close()
        proc.stop()
        raise
    return proc, driver


def warm(fuzzer: Fuzzer) -> None:
    """Stream until the node predicts; records its RSS then."""
    if not fuzzer.pump(lambda: len(fuzzer.driver.predictions) > 0, 30.0):
        raise RuntimeError(f"the node did not predict:\n{fuzzer.proc.output()[-4000:]}")
    fuzzer.rss_warm_kb = fuzzer.proc.rss_kb()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python test/fuzz.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="attack time per node")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-path", default="copy_last", help="copy_last, or a model file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-image-pixels", type=int, default=FUZZ_PARAMS["max_image_pixels"])
    parser.add_argument(
        "--resume-timeout", type=float, default=RESUME_TIMEOUT_S, help="s; raise it for a slow model"
    )
    parser.add_argument(
        "--prediction-rate", type=float, default=FUZZ_PARAMS["prediction_rate"], help="Hz, 0 = every frame"
    )
    args = parser.parse_args(argv)
    isolate_ros()
    import rclpy
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    params = dict(FUZZ_PARAMS, max_image_pixels=args.max_image_pixels, prediction_rate=args.prediction_rate)
    joints, command_types = COPY_LAST_JOINTS, list(NODE_SETUPS)
    if args.model_path != "copy_last":
        from astra_ros.ros.settings import Settings, load_world_model

        info = load_world_model(Settings.from_values({"model_path": args.model_path})).info
        joints = list(info.joint_names) or COPY_LAST_JOINTS
        served = {
            "joint_state": "joint_velocity",
            "twist": "twist",
            "float64_multi_array": "joint_position",
            "joint_trajectory": "joint_position",
        }
        command_types = [kind for kind, modality in served.items() if modality in info.modalities]
        params.update(model_path=args.model_path, joint_names=joints, frame_period=-1.0)
    rng = random.Random(args.seed)
    outcomes: list[Outcome] = []
    rss: list[tuple[float, float]] = []
    rclpy.init()
    started = time.monotonic()
    try:
        for command_type in command_types:
            proc, driver = start({**params, "command_type": command_type})
            try:
                fuzzer = Fuzzer(
                    proc, driver, joints, command_type, pixel_check=args.model_path == "copy_last"
                )
                fuzzer.max_pixels, fuzzer.resume_timeout = args.max_image_pixels, args.resume_timeout
                warm(fuzzer)
                kinds = kinds_for(command_type)
                budget = args.seconds if command_type == "joint_state" else args.seconds * 0.1
                end = time.monotonic() + budget
                with tqdm(total=int(budget), desc=f"fuzz {command_type}", unit="s") as bar:
                    while time.monotonic() < end and proc.proc.poll() is None:
                        order = kinds[:]
                        rng.shuffle(order)
                        for kind in order:
                            outcomes.append(fuzzer.run(kind))
                            rss.append((time.monotonic() - started, proc.rss_kb() / 1024))
                            bar.n = min(int(budget - (end - time.monotonic())), int(budget))
                            bar.refresh()
                            if time.monotonic() >= end or proc.proc.poll() is not None:
                                break
            finally:
                driver.close()
                proc.stop()
    finally:
        rclpy.try_shutdown()
    return report(outcomes, rss, args.out)


def report(outcomes: list[Outcome], rss: list[tuple[float, float]], out: Path) -> int:
    table: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        row = table.setdefault(
            outcome.kind, {"group": outcome.group, "runs": 0, "ok": 0, "problems": Counter(), "seconds": []}
        )
        row["runs"] += 1
        row["ok"] += outcome.ok
        row["seconds"].append(outcome.seconds)
        for problem in outcome.problems:
            row["problems"][problem[:160]] += 1
    print(f"{'kind':48s} {'group':10s} {'ok/runs':>9s} {'s/run':>6s}  first problem")
    for name, row in table.items():
        first = next(iter(row["problems"]), "")
        print(
            f"{name:48s} {row['group']:10s} {row['ok']:>4d}/{row['runs']:<4d} "
            f"{float(np.median(row['seconds'])):6.2f}  {first}"
        )
    summary = {
        "runs": len(outcomes),
        "ok": sum(o.ok for o in outcomes),
        "kinds": {
            name: {**row, "problems": dict(row["problems"]), "seconds": float(np.median(row["seconds"]))}
            for name, row in table.items()
        },
        "rss_mb": {
            "first": rss[0][1] if rss else None,
            "max": max((r for _, r in rss), default=None),
            "last": rss[-1][1] if rss else None,
        },
    }
    (out / "fuzz_summary.json").write_text(json.dumps(summary, indent=1))
    if rss:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([t for t, _ in rss], [r for _, r in rss])
        ax.set_xlabel("seconds")
        ax.set_ylabel("node RSS (MB)")
        ax.set_title("astra_world_model RSS under fuzzing")
        fig.tight_layout()
        fig.savefig(out / "fuzz_rss.png", dpi=100)
    print(json.dumps({k: v for k, v in summary.items() if k != "kinds"}))
    print(f"summary: {out / 'fuzz_summary.json'}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
