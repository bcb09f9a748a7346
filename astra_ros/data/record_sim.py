"""``astra-record-sim``: record simulator episodes as a real rosbag2 bag (mcap or sqlite3).

Usage::

    astra-record-sim --env kuka --episodes 60 --steps 300 --seed 0 --out data/kuka_train

``--steps`` is the number of camera frames per episode. All episodes go into ONE bag, separated
by a gap of simulated time (``EPISODE_GAP_S``) so the reader splits them again. All stamps (bag
receive time and header stamps) are simulated time, starting at ``START_NS``.

Frame/command convention: the camera frame stamped ``t`` shows the state at ``t``; the command
stamped ``t`` is applied from ``t`` on, so the command in force at a frame's stamp (zero-order
hold) drives the motion from that frame to the next.

``kuka``: pybullet (DIRECT) KUKA iiwa from pybullet_data, each link a distinct saturated colour on
a plain floor, close camera. Physics 240 Hz; ``sensor_msgs/JointState`` velocity commands
(``VELOCITY_CONTROL``, joints ``lbr_iiwa_joint_1`` .. ``lbr_iiwa_joint_7``, rad/s) on
``/joint_commands`` at 30 Hz; ``sensor_msgs/Image`` rgb8 on ``/camera/image_raw`` at 15 Hz.
Commands are piecewise segments (0.3-1.6 s): about 25% pauses, the rest random target velocities
reached either smoothly (first-order filter) or at once (sudden switch). A joint near the edge of
its working range gets its command sign flipped; the recorded command is the applied one. Each
episode starts from a fresh random arm pose.

``carracing``: gymnasium ``CarRacing-v3`` (``SDL_VIDEODRIVER=dummy``), 50 Hz env. The first
``CAR_SKIP`` zoom-in frames are not recorded. Random smooth steer/gas/brake; the 96x96 observation
is resized to ``--size`` and published at 50/3 Hz; ``geometry_msgs/Twist`` on ``/cmd_vel`` at
50 Hz with the mapping::

    linear.x  = gas - brake      (gas, brake in [0, 1]; so linear.x in [-1, 1])
    angular.z = -steer           (steer in [-1, 1], +1 = right; ROS angular.z > 0 turns left)

All other Twist fields are 0. An episode that the env ends early (track finished or car off the
playfield) is shorter than ``--steps``.

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

ENVS = ("kuka", "carracing")
STORAGES = ("mcap", "sqlite3")
IMAGE_TOPIC = "/camera/image_raw"
JOINT_TOPIC = "/joint_commands"
TWIST_TOPIC = "/cmd_vel"
START_NS = 1_000_000_000  # simulated clock starts at 1 s (a zero header stamp means "unset")
EPISODE_GAP_S = 2.0

KUKA_JOINTS = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
KUKA_PHYSICS_HZ = 240
KUKA_COMMAND_EVERY = 8  # 30 Hz
KUKA_CAMERA_EVERY = 16  # 15 Hz
KUKA_FORCE = 2000.0
# Working range per joint (rad): inside the URDF limits, and keeping the arm in the picture.
KUKA_RANGE = np.array([1.4, 1.1, 1.6, 1.7, 1.8, 1.7, 2.5])
KUKA_VMAX = np.array([2.4, 2.2, 2.6, 2.6, 3.2, 3.2, 3.5])  # rad/s, max random target
KUKA_COLOURS = (  # base, link 1..7: distinct saturated colours
    (0.15, 0.15, 0.15, 1),
    (0.95, 0.10, 0.10, 1),
    (1.00, 0.55, 0.00, 1),
    (0.95, 0.90, 0.05, 1),
    (0.10, 0.80, 0.15, 1),
    (0.05, 0.75, 0.90, 1),
    (0.15, 0.25, 0.95, 1),
    (0.85, 0.10, 0.85, 1),
)
FLOOR_COLOUR = (0.30, 0.33, 0.40, 1)

CAR_HZ = 50
CAR_CAMERA_EVERY = 3
CAR_SKIP = 50


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
    """Thin wrapper over rosbags' Writer with the three message kinds we write."""

    def __init__(self, out: Path, storage: str, command_type: str, command_topic: str) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.ts = get_typestore(Stores.ROS2_KILTED)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(out, version=9, storage_plugin=plugin)
        self.writer.open()
        self.image_conn = self.writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=self.ts)
        self.cmd_conn = self.writer.add_connection(command_topic, command_type, typestore=self.ts)
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

    def image(self, t_ns: int, rgb: np.ndarray) -> None:
        h, w, _ = rgb.shape
        msg = self.Image(
            header=self.header(t_ns, "camera"),
            height=h,
            width=w,
            encoding="rgb8",
            is_bigendian=0,
            step=3 * w,
            data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
        )
        self.writer.write(self.image_conn, t_ns, self.ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
        self.images += 1

    def joint_command(self, t_ns: int, names: tuple[str, ...], velocity: np.ndarray) -> None:
        msg = self.JointState(
            header=self.header(t_ns, "base"),
            name=list(names),
            position=np.zeros(0, np.float64),
            velocity=np.asarray(velocity, np.float64),
            effort=np.zeros(0, np.float64),
        )
        self.writer.write(self.cmd_conn, t_ns, self.ts.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
        self.commands += 1

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


class KukaSim:
    def __init__(self, size: int) -> None:
        try:
            import pybullet as p
            import pybullet_data
        except ImportError as err:  # pragma: no cover - pinned in requirements.txt
            raise RecordError(f"--env kuka needs pybullet (pip install pybullet): {err}") from err
        self.p = p
        self.size = size
        self.client = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
        p.setTimeStep(1.0 / KUKA_PHYSICS_HZ, physicsClientId=self.client)
        p.setGravity(0, 0, -9.81, physicsClientId=self.client)
        floor_shape = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[4, 4, 0.01], rgbaColor=FLOOR_COLOUR, physicsClientId=self.client
        )
        p.createMultiBody(
            baseMass=0,
            baseVisualShapeIndex=floor_shape,
            basePosition=[0, 0, -0.01],
            physicsClientId=self.client,
        )
        self.robot = p.loadURDF("kuka_iiwa/model.urdf", useFixedBase=True, physicsClientId=self.client)
        names = [p.getJointInfo(self.robot, j, physicsClientId=self.client)[1].decode() for j in range(7)]
        if tuple(names) != KUKA_JOINTS:
            raise RecordError(f"kuka_iiwa/model.urdf joint names {names}; expected {list(KUKA_JOINTS)}")
        self.joints = list(range(7))
        lower = np.array([p.getJointInfo(self.robot, j, physicsClientId=self.client)[8] for j in self.joints])
        upper = np.array([p.getJointInfo(self.robot, j, physicsClientId=self.client)[9] for j in self.joints])
        self.lo = np.maximum(lower + 0.1, -KUKA_RANGE)
        self.hi = np.minimum(upper - 0.1, KUKA_RANGE)
        for link, colour in zip(range(-1, 7), KUKA_COLOURS, strict=True):
            p.changeVisualShape(self.robot, link, rgbaColor=colour, physicsClientId=self.client)
        self.view = p.computeViewMatrix(
            cameraEyePosition=[1.3, -0.9, 1.0],
            cameraTargetPosition=[0.0, 0.0, 0.62],
            cameraUpVector=[0, 0, 1],
        )
        self.proj = p.computeProjectionMatrixFOV(fov=50.0, aspect=1.0, nearVal=0.1, farVal=6.0)

    def reset(self, rng: np.random.Generator) -> None:
        q = rng.uniform(self.lo * 0.8, self.hi * 0.8)
        for j, qj in zip(self.joints, q, strict=True):
            self.p.resetJointState(self.robot, j, float(qj), 0.0, physicsClientId=self.client)
        self.apply(np.zeros(7))

    def positions(self) -> np.ndarray:
        states = self.p.getJointStates(self.robot, self.joints, physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def apply(self, velocity: np.ndarray) -> None:
        self.p.setJointMotorControlArray(
            self.robot,
            self.joints,
            self.p.VELOCITY_CONTROL,
            targetVelocities=[float(v) for v in velocity],
            forces=[KUKA_FORCE] * 7,
            physicsClientId=self.client,
        )

    def step(self) -> None:
        self.p.stepSimulation(physicsClientId=self.client)

    def render(self) -> np.ndarray:
        _, _, rgba, _, _ = self.p.getCameraImage(
            self.size,
            self.size,
            viewMatrix=self.view,
            projectionMatrix=self.proj,
            renderer=self.p.ER_TINY_RENDERER,
            lightDirection=[1.0, -0.6, 2.0],
            shadow=0,
            physicsClientId=self.client,
        )
        return np.asarray(rgba, np.uint8).reshape(self.size, self.size, 4)[:, :, :3].copy()

    def close(self) -> None:
        self.p.disconnect(physicsClientId=self.client)


def kuka_command(sim: KukaSim, proc: SegmentProcess) -> np.ndarray:
    """Next command of ``proc``, kept inside the working range, applied to ``sim``; returns it.

    Shared with ``astra_ros.ros.sim_publisher`` so both drive the arm the same way.
    """
    v = proc.step()
    q = sim.positions()
    # Flip a command that would carry a joint past its working range in the
    # next command period (or that already points outwards beyond it).
    lookahead = q + v * (KUKA_COMMAND_EVERY / KUKA_PHYSICS_HZ) * 2.0
    flip = ((lookahead > sim.hi) & (v > 0)) | ((lookahead < sim.lo) & (v < 0))
    if flip.any():
        proc.flip(flip)
        v = proc.value.copy()
    sim.apply(v)
    return v


def _record_kuka(
    bag: _BagOut, rng: np.random.Generator, episodes: int, steps: int, size: int, stats: RecordStats, bar: Any
) -> int:
    sim = KukaSim(size)
    ns = 1_000_000_000
    t0 = START_NS
    try:
        for _ in range(episodes):
            sim.reset(rng)
            proc = SegmentProcess(rng, KUKA_VMAX, KUKA_PHYSICS_HZ / KUKA_COMMAND_EVERY)
            total = steps * KUKA_CAMERA_EVERY
            frames = 0
            for k in range(total):
                t_ns = t0 + (k * ns) // KUKA_PHYSICS_HZ
                if k % KUKA_COMMAND_EVERY == 0:
                    bag.joint_command(t_ns, KUKA_JOINTS, kuka_command(sim, proc))
                if k % KUKA_CAMERA_EVERY == 0:
                    bag.image(t_ns, sim.render())
                    frames += 1
                    bar.update(1)
                sim.step()
            stats.episode_frames.append(frames)
            t0 = t0 + (total * ns) // KUKA_PHYSICS_HZ + int(EPISODE_GAP_S * ns)
    finally:
        sim.close()
    return t0


# -------------------------------------------------------------------------------------- CarRacing


def _record_carracing(
    bag: _BagOut, rng: np.random.Generator, episodes: int, steps: int, size: int, stats: RecordStats, bar: Any
) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import gymnasium as gym
    except ImportError as err:  # pragma: no cover - pinned in requirements.txt
        raise RecordError(f"--env carracing needs gymnasium[box2d]: {err}") from err
    from astra_ros.data.images import resize_to_model

    try:
        env = gym.make("CarRacing-v3", continuous=True, max_episode_steps=10**9)
    except Exception as err:  # noqa: BLE001 - report any simulator start failure clearly
        raise RecordError(f"cannot create gymnasium CarRacing-v3 (needs gymnasium[box2d]): {err}") from err
    period = 1_000_000_000 // CAR_HZ
    t0 = START_NS
    try:
        for _ in range(episodes):
            obs, _ = env.reset(seed=int(rng.integers(0, 2**31 - 1)))
            for _ in range(CAR_SKIP):
                obs, _, term, trunc, _ = env.step(np.zeros(3, np.float32))
            # Independent processes: steer (pause = straight ahead) and throttle (pause = coast).
            steer_proc = SegmentProcess(
                rng, np.array([1.0]), CAR_HZ, pause_prob=0.3, sudden_prob=0.3, seg_s=(0.3, 1.5), tau_s=0.15
            )
            throttle_proc = SegmentProcess(
                rng, np.array([1.0]), CAR_HZ, pause_prob=0.25, sudden_prob=0.3, seg_s=(0.5, 2.0), tau_s=0.2
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
                if k % CAR_CAMERA_EVERY == 0:
                    bag.image(t_ns, resize_to_model(np.asarray(obs, np.uint8), size))
                    frames += 1
                    bar.update(1)
                bag.twist(t_ns, gas - brake, -steer)
                obs, _, term, trunc, _ = env.step(np.array([steer, gas, brake], np.float32))
                k += 1
                if term or trunc:
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
        bag = _BagOut(out, storage, "sensor_msgs/msg/JointState", JOINT_TOPIC)
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
