"""``astra-record-sim``: record simulator episodes as a real rosbag2 bag (mcap or sqlite3).

Usage::

    astra-record-sim --env kuka --episodes 60 --steps 300 --seed 0 --out data/kuka_train

``--steps`` is the number of camera frames per episode. All episodes go into ONE bag, separated
by a gap of simulated time (``EPISODE_GAP_S``) so the reader splits them again. All stamps (bag
receive time and header stamps) are simulated time, starting at ``START_NS``.

Frame/command convention: the camera frame stamped ``t`` shows the state at ``t``; the command
stamped ``t`` is applied from ``t`` on, so the command in force at a frame's stamp (zero-order
hold) drives the motion from that frame to the next.

``kuka``: ``astra_ros.sim.kuka.KukaEnv`` (pybullet KUKA iiwa, each link a distinct saturated colour
on a plain floor, close camera, physics 240 Hz). ``sensor_msgs/JointState`` velocity commands
(joints ``lbr_iiwa_joint_1`` .. ``lbr_iiwa_joint_7``, rad/s) on ``/joint_commands`` at 30 Hz, each
held for its 1/30 s (8 physics steps); ``sensor_msgs/JointState`` positions and velocities of the
arm on ``/joint_states`` at 30 Hz, stamped with the command applied from that state on;
``sensor_msgs/Image`` rgb8 on ``/camera/image_raw`` and its segmentation render mono8 on
``/camera/segmentation`` (pixel = link id + 1: 0 no link, 1 base, 2..8 links 1..7; 8 is the end
effector) at 15 Hz. Commands are piecewise segments (0.3-1.6 s): about 25% pauses, the rest
random target velocities reached either smoothly (first-order filter) or at once (sudden
switch). A joint near the edge of its working range gets its command sign flipped; the recorded
command is the applied one. Each episode starts from a fresh random arm pose.

``carracing``: ``astra_ros.sim.carracing.CarRacingEnv`` (gymnasium ``CarRacing-v3``, 50 Hz,
zoom-in frames not recorded). Random smooth steer/gas/brake; the 96x96 observation is resized to
``--size`` and published at 50/3 Hz; ``geometry_msgs/Twist`` on ``/cmd_vel`` at 50 Hz
(``linear.x = gas - brake``, ``angular.z = -steer``, all other fields 0). An episode that the env
ends early (track finished or car off the playfield) is shorter than ``--steps``.

The same ``--seed`` and arguments give byte-identical bags.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.sim.kuka import FRAME_PERIOD, JOINT_NAMES, PHYSICS_HZ, KukaEnv, SimError

ENVS = ("kuka", "carracing")
STORAGES = ("mcap", "sqlite3")
IMAGE_TOPIC = "/camera/image_raw"
JOINT_TOPIC = "/joint_commands"
TWIST_TOPIC = "/cmd_vel"
START_NS = 1_000_000_000  # simulated clock starts at 1 s (a zero header stamp means "unset")
EPISODE_GAP_S = 2.0

STATE_TOPIC = "/joint_states"
SEGMENTATION_TOPIC = "/camera/segmentation"

KUKA_COMMAND_EVERY = 8  # physics steps per command: 30 Hz
KUKA_COMMAND_PERIOD = KUKA_COMMAND_EVERY / PHYSICS_HZ
KUKA_VMAX = np.array([2.4, 2.2, 2.6, 2.6, 3.2, 3.2, 3.5])  # rad/s, max random target


class RecordError(RuntimeError):
    """A recording that cannot start (bad output path, unknown env, missing simulator)."""


@dataclass
class RecordStats:
    out: str
    env: str
    episodes: int
    frames: int
    commands: int
    seconds: float  # wall clock
    episode_frames: list[int] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------------------- messages


class _BagOut:
    """Thin wrapper over rosbags' Writer with the message kinds we write; ``robot_state`` adds the
    ``/joint_states`` and segmentation topics."""

    def __init__(
        self, out: Path, storage: str, command_type: str, command_topic: str, robot_state: bool = False
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.ts = get_typestore(Stores.ROS2_KILTED)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(out, version=9, storage_plugin=plugin)
        self.writer.open()
        self.image_conn = self.writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=self.ts)
        self.cmd_conn = self.writer.add_connection(command_topic, command_type, typestore=self.ts)
        if robot_state:
            self.state_conn = self.writer.add_connection(
                STATE_TOPIC, "sensor_msgs/msg/JointState", typestore=self.ts
            )
            self.seg_conn = self.writer.add_connection(
                SEGMENTATION_TOPIC, "sensor_msgs/msg/Image", typestore=self.ts
            )
        t = self.ts.types
        self.Image = t["sensor_msgs/msg/Image"]
        self.Header = t["std_msgs/msg/Header"]
        self.Time = t["builtin_interfaces/msg/Time"]
        self.JointState = t["sensor_msgs/msg/JointState"]
        self.Twist = t["geometry_msgs/msg/Twist"]
        self.Vector3 = t["geometry_msgs/msg/Vector3"]
        self.images = 0
        self.commands = 0

    def header(self, t_ns: int, frame_id: str) -> Any:
        return self.Header(
            stamp=self.Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000), frame_id=frame_id
        )

    def _image(self, conn: Any, t_ns: int, pixels: np.ndarray, encoding: str) -> None:
        h, w = pixels.shape[:2]
        data = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1)
        msg = self.Image(
            header=self.header(t_ns, "camera"),
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=data.size // h,
            data=data,
        )
        self.writer.write(conn, t_ns, self.ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))

    def image(self, t_ns: int, rgb: np.ndarray) -> None:
        self._image(self.image_conn, t_ns, rgb, "rgb8")
        self.images += 1

    def segmentation(self, t_ns: int, ids: np.ndarray) -> None:
        """Link ids (-1 none) as mono8 id + 1."""
        self._image(self.seg_conn, t_ns, (np.asarray(ids) + 1).astype(np.uint8), "mono8")

    def _joint_state(
        self, conn: Any, t_ns: int, names: tuple[str, ...], position: np.ndarray, velocity: np.ndarray
    ) -> None:
        msg = self.JointState(
            header=self.header(t_ns, "base"),
            name=list(names),
            position=np.asarray(position, np.float64),
            velocity=np.asarray(velocity, np.float64),
            effort=np.zeros(0, np.float64),
        )
        self.writer.write(conn, t_ns, self.ts.serialize_cdr(msg, "sensor_msgs/msg/JointState"))

    def joint_command(self, t_ns: int, names: tuple[str, ...], velocity: np.ndarray) -> None:
        self._joint_state(self.cmd_conn, t_ns, names, np.zeros(0), velocity)
        self.commands += 1

    def joint_state(
        self, t_ns: int, names: tuple[str, ...], position: np.ndarray, velocity: np.ndarray
    ) -> None:
        self._joint_state(self.state_conn, t_ns, names, position, velocity)

    def twist(self, t_ns: int, linear_x: float, angular_z: float) -> None:
        msg = self.Twist(
            linear=self.Vector3(x=float(linear_x), y=0.0, z=0.0),
            angular=self.Vector3(x=0.0, y=0.0, z=float(angular_z)),
        )
        self.writer.write(self.cmd_conn, t_ns, self.ts.serialize_cdr(msg, "geometry_msgs/msg/Twist"))
        self.commands += 1

    def close(self) -> None:
        self.writer.close()


# ------------------------------------------------------------------------------- command process


class SegmentProcess:
    """Piecewise random command: pauses, smooth moves and sudden switches, per call one tick."""

    def __init__(
        self,
        rng: np.random.Generator,
        vmax: np.ndarray,
        hz: float,
        pause_prob: float = 0.25,
        sudden_prob: float = 0.35,
        seg_s: tuple[float, float] = (0.3, 1.6),
        tau_s: float = 0.25,
    ) -> None:
        self.rng, self.vmax, self.hz = rng, np.asarray(vmax, np.float64), hz
        self.pause_prob, self.sudden_prob, self.seg_s = pause_prob, sudden_prob, seg_s
        self.alpha = 1.0 - float(np.exp(-1.0 / (tau_s * hz)))
        self.value = np.zeros_like(self.vmax)
        self.target = np.zeros_like(self.vmax)
        self.left = 0
        self.sudden = False

    def _new_segment(self) -> None:
        self.left = max(1, int(round(self.rng.uniform(*self.seg_s) * self.hz)))
        if self.rng.random() < self.pause_prob:
            self.target = np.zeros_like(self.vmax)
            self.sudden = self.rng.random() < 0.5
        else:
            self.target = self.rng.uniform(-1.0, 1.0, self.vmax.shape) * self.vmax
            # Several joints move at once, some stay still: sparse but strong motion.
            active = self.rng.random(self.vmax.shape) < 0.6
            if not active.any():
                active[self.rng.integers(len(active))] = True
            self.target = np.where(active, self.target, 0.0)
            self.sudden = self.rng.random() < self.sudden_prob

    def step(self) -> np.ndarray:
        if self.left <= 0:
            self._new_segment()
        self.left -= 1
        if self.sudden:
            self.value = self.target.copy()
        else:
            self.value = self.value + self.alpha * (self.target - self.value)
        return self.value.copy()

    def flip(self, mask: np.ndarray) -> None:
        """Reverse the listed components (used at joint limits) so they keep moving away."""
        self.value = np.where(mask, -self.value, self.value)
        self.target = np.where(mask, -self.target, self.target)


# ------------------------------------------------------------------------------------------- KUKA


def kuka_episode(env: KukaEnv, rng: np.random.Generator) -> SegmentProcess:
    """Reset ``env`` to a random pose drawn from ``rng``; the command process of the episode."""
    env.reset(int(rng.integers(0, 2**31 - 1)))
    return SegmentProcess(rng, KUKA_VMAX, PHYSICS_HZ / KUKA_COMMAND_EVERY)


def kuka_command(env: KukaEnv, proc: SegmentProcess) -> np.ndarray:
    """Next command of ``proc``, kept inside the working range of ``env``'s joints.

    Shared with ``astra_ros.ros.sim_publisher`` so both drive the arm the same way.
    """
    v = proc.step()
    q = env.state().positions
    # Flip a command that would carry a joint past its working range in the
    # next command period (or that already points outwards beyond it).
    lookahead = q + v * KUKA_COMMAND_PERIOD * 2.0
    flip = ((lookahead > env.upper) & (v > 0)) | ((lookahead < env.lower) & (v < 0))
    if flip.any():
        proc.flip(flip)
        v = proc.value.copy()
    return v


def _record_kuka(
    bag: _BagOut, rng: np.random.Generator, episodes: int, steps: int, size: int, stats: RecordStats, bar: Any
) -> int:
    try:
        env = KukaEnv(size)
    except SimError as err:
        raise RecordError(f"--env kuka: {err}") from err
    ns = 1_000_000_000
    per_frame = round(FRAME_PERIOD / KUKA_COMMAND_PERIOD)
    t0 = START_NS
    try:
        for _ in range(episodes):
            proc = kuka_episode(env, rng)
            for k in range(steps * per_frame):
                t_ns = t0 + (k * KUKA_COMMAND_EVERY * ns) // PHYSICS_HZ
                state = env.state()
                bag.joint_state(t_ns, JOINT_NAMES, state.positions, state.velocities)
                command = kuka_command(env, proc)
                bag.joint_command(t_ns, JOINT_NAMES, command)
                if k % per_frame == 0:
                    bag.image(t_ns, env.render())
                    bag.segmentation(t_ns, env.segmentation())
                    bar.update(1)
                env.step(command, KUKA_COMMAND_PERIOD)
            stats.episode_frames.append(steps)
            t0 = t0 + (steps * per_frame * KUKA_COMMAND_EVERY * ns) // PHYSICS_HZ + int(EPISODE_GAP_S * ns)
    finally:
        env.close()
    return t0


# -------------------------------------------------------------------------------------- CarRacing


def _record_carracing(
    bag: _BagOut, rng: np.random.Generator, episodes: int, steps: int, size: int, stats: RecordStats, bar: Any
) -> int:
    from astra_ros.sim.carracing import ENV_HZ, CarRacingEnv

    try:
        env = CarRacingEnv(size)
    except SimError as err:
        raise RecordError(f"--env carracing: {err}") from err
    period = 1_000_000_000 // ENV_HZ
    per_frame = round(env.frame_period * ENV_HZ)
    t0 = START_NS
    try:
        for _ in range(episodes):
            env.reset(int(rng.integers(0, 2**31 - 1)))
            # Independent processes: steer (pause = straight ahead) and throttle (pause = coast).
            steer_proc = SegmentProcess(
                rng, np.array([1.0]), ENV_HZ, pause_prob=0.3, sudden_prob=0.3, seg_s=(0.3, 1.5), tau_s=0.15
            )
            throttle_proc = SegmentProcess(
                rng, np.array([1.0]), ENV_HZ, pause_prob=0.25, sudden_prob=0.3, seg_s=(0.5, 2.0), tau_s=0.2
            )
            frames = 0
            k = 0
            while frames < steps:
                t_ns = t0 + k * period
                steer, throttle = float(steer_proc.step()[0]), float(throttle_proc.step()[0])
                # Bias towards driving forwards: CarRacing is slow to get going.
                throttle = float(np.clip(throttle + 0.3, -1.0, 1.0))
                gas, brake = max(throttle, 0.0), max(-throttle, 0.0) * 0.8
                steer = float(np.clip(steer, -1.0, 1.0))
                if k % per_frame == 0:
                    bag.image(t_ns, env.render())
                    frames += 1
                    bar.update(1)
                bag.twist(t_ns, gas - brake, -steer)
                ended = env.step(np.array([gas - brake, -steer]), env.physics_period)
                k += 1
                if ended:
                    bar.update(steps - frames)
                    break
            stats.episode_frames.append(frames)
            t0 = t0 + k * period + int(EPISODE_GAP_S * 1_000_000_000)
    finally:
        env.close()
    return t0


# ------------------------------------------------------------------------------------------ main


def check_out_path(out: Path) -> None:
    """Raise RecordError unless ``out`` is a new path in an existing, writable directory."""
    if out.exists():
        raise RecordError(
            f"--out {out} already exists; expected a new path (rosbag2 bags are never overwritten)"
        )
    parent = out.absolute().parent
    if not parent.is_dir():
        raise RecordError(
            f"--out {out}: parent directory {parent} does not exist; expected an existing directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RecordError(
            f"--out {out}: parent directory {parent} is not writable; expected a writable directory"
        )


def record(
    env: str,
    episodes: int,
    steps: int,
    seed: int,
    out: str | Path,
    storage: str = "mcap",
    size: int = 64,
    progress: bool = True,
) -> RecordStats:
    """Record ``episodes`` x ``steps`` camera frames of ``env`` into a new rosbag2 bag at ``out``."""
    import time

    from tqdm import tqdm

    if env not in ENVS:
        raise RecordError(f"--env {env!r} is unknown; expected one of {list(ENVS)}")
    if storage not in STORAGES:
        raise RecordError(f"--storage {storage!r} is unknown; expected one of {list(STORAGES)}")
    for name, value, low in (("episodes", episodes, 1), ("steps", steps, 1), ("size", size, 8)):
        if value < low:
            raise RecordError(f"--{name}={value}; expected an integer >= {low}")
    out = Path(out)
    check_out_path(out)
    rng = np.random.default_rng(seed)
    if env == "kuka":
        bag = _BagOut(out, storage, "sensor_msgs/msg/JointState", JOINT_TOPIC, robot_state=True)
    else:
        bag = _BagOut(out, storage, "geometry_msgs/msg/Twist", TWIST_TOPIC)
    stats = RecordStats(out=str(out), env=env, episodes=episodes, frames=0, commands=0, seconds=0.0)
    start = time.perf_counter()
    bar = tqdm(total=episodes * steps, unit="frame", desc=f"astra-record-sim {env}", disable=not progress)
    try:
        if env == "kuka":
            _record_kuka(bag, rng, episodes, steps, size, stats, bar)
        else:
            _record_carracing(bag, rng, episodes, steps, size, stats, bar)
    finally:
        bar.close()
        bag.close()
    stats.seconds = time.perf_counter() - start
    stats.frames, stats.commands = bag.images, bag.commands
    return stats


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="astra-record-sim",
        description="Record simulator episodes (camera + commands, simulated time) as one rosbag2 bag.",
    )
    ap.add_argument(
        "--env", required=True, choices=ENVS, help="kuka (pybullet iiwa) or carracing (CarRacing-v3)"
    )
    ap.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    ap.add_argument("--steps", type=int, default=300, help="camera frames per episode (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical bag")
    ap.add_argument("--out", required=True, help="new bag directory to create")
    ap.add_argument(
        "--storage", choices=STORAGES, default="mcap", help="rosbag2 storage plugin (default mcap)"
    )
    ap.add_argument("--size", type=int, default=64, help="camera image side in pixels (default 64)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed a message naming the bad argument
        return int(exc.code or 0)
    try:
        stats = record(
            args.env,
            args.episodes,
            args.steps,
            args.seed,
            args.out,
            args.storage,
            args.size,
            progress=not args.quiet,
        )
    except RecordError as err:
        print(f"astra-record-sim: error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {stats.out}: {stats.episodes} {stats.env} episodes, {stats.frames} frames on {IMAGE_TOPIC}, "
        f"{stats.commands} commands, {stats.frames_per_second:.0f} frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
