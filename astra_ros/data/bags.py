"""Read rosbag2 bags (mcap or sqlite3) into episodes of model-resolution frames and commands.

Torch-free. Episodes split where the gap between consecutive frames exceeds ``episode_gap``
seconds. Frame i gets the action rule of ``astra_ros.data.pairing``: ``commands[i]`` is the
time-weighted mean of the commands in force (zero-order hold) over ``[t_i, t_{i+1})``, the last
frame of an episode over one frame period (the median) from its stamp. Staleness limit and policy
are the pairing module's (0.5 s, ``zero``); filled intervals are counted in ``ReadReport.fills``,
frames dropped under ``skip`` in ``ReadReport.drops`` (a dropped frame cuts its episode).

What the robot recorded besides, when the bag has it: ``/joint_states`` (``sensor_msgs/JointState``
positions and velocities of the command joints; ``Episode.states`` holds the newest one at or
before each frame) and the segmentation render on ``/camera/segmentation`` (``mono8`` or
``16UC1``, pixel = link id + 1, 0 = no link; ``Episode.segmentation`` holds the link ids at each
frame's stamp, -1 = none, resized by nearest neighbour).

Stamps: images use ``header.stamp`` (the bag receive time only when the header stamp is zero,
counted in ``ReadReport.stamp_fallbacks``); JointState and TwistStamped commands likewise;
plain Twist has no header and uses the bag receive time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.data.images import ImageFormatError, image_message_to_rgb, resize_to_model
from astra_ros.data.pairing import DEFAULT_POLICY, STALENESS_S, check_policy, interval_mean

__all__ = ["BagError", "DEFAULT_TOPICS", "Episode", "JointStates", "ReadReport", "read_bag"]

DEFAULT_TOPICS = {"joint_velocity": "/joint_commands", "twist": "/cmd_vel"}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
COMMAND_TYPES = {
    "joint_velocity": ("sensor_msgs/msg/JointState",),
    "twist": ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped"),
}
DROP_REASONS = ("missing_command", "stale_command", "duplicate_stamp", "short_episode")
FILL_REASONS = ("missing_command", "stale_command")
STATE_TOPIC = "/joint_states"
SEGMENTATION_TOPIC = "/camera/segmentation"
SEGMENTATION_ENCODINGS = {"mono8": np.uint8, "8UC1": np.uint8, "mono16": np.uint16, "16UC1": np.uint16}


class BagError(ValueError):
    """A bag that cannot be read as requested; the message names the bag, topic and problem."""


@dataclass(frozen=True)
class JointStates:
    positions: np.ndarray  # (T, J) float64 rad, columns in ``Episode.joint_names`` order
    velocities: np.ndarray  # (T, J) float64 rad/s (NaN where the message had none)


@dataclass
class Episode:
    frames: np.ndarray  # (T, S, S, 3) uint8 at model resolution
    stamps: np.ndarray  # (T,) int64 nanoseconds (header stamps)
    commands: np.ndarray  # (T, D) float32: mean command over [t_i, t_{i+1}) (``data.pairing``)
    modality: str  # "joint_velocity" | "twist" | ...
    joint_names: tuple[str, ...]  # order of the D columns for joint_velocity; () otherwise
    source: str  # bag path
    states: JointStates | None = None  # /joint_states at each frame, when recorded
    segmentation: np.ndarray | None = None  # (T, S, S) int8 link ids (-1 none), when recorded

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class ReadReport:
    bag: str
    image_topic: str
    command_topic: str
    images: int  # image messages read
    commands: int  # command messages read
    frames_kept: int  # frames in the returned episodes
    drops: dict[str, int]  # frames dropped, by reason
    episodes: int
    frame_period: float  # median seconds between consecutive kept frames (within episodes)
    stamp_fallbacks: int = 0  # messages with a zero header stamp that used the bag receive time
    fills: dict[str, int] = field(default_factory=dict)  # frames whose interval was zero- or hold-filled
    joint_states: int = 0  # /joint_states messages read
    segmentations: int = 0  # segmentation images read
    image_size: tuple[int, int] = (0, 0)  # (height, width) of the source images
    modality: str = ""
    joint_names: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One human-readable paragraph."""
        dropped = sum(self.drops.values())
        reasons = ", ".join(f"{k} {v}" for k, v in self.drops.items() if v) or "none"
        hz = f"{1.0 / self.frame_period:.1f} Hz" if self.frame_period > 0 else "n/a"
        text = (
            f"{self.bag}: {self.images} images on {self.image_topic} "
            f"({self.image_size[1]}x{self.image_size[0]}), {self.commands} {self.modality or 'command'} "
            f"messages on {self.command_topic}; kept {self.frames_kept} frames in {self.episodes} episodes "
            f"(frame period {self.frame_period * 1000:.1f} ms, {hz}); dropped {dropped} ({reasons})"
        )
        filled = ", ".join(f"{k} {v}" for k, v in self.fills.items() if v)
        if filled:
            text += f"; filled by the stale-command policy: {filled}"
        if self.joint_states or self.segmentations:
            text += f"; {self.joint_states} joint states, {self.segmentations} segmentation images"
        if self.stamp_fallbacks:
            text += f"; {self.stamp_fallbacks} messages had a zero header stamp and used the bag time"
        return text + "."


def _stamp_ns(msg: Any) -> int:
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


class _Ctx:
    """Formats errors with the bag and topic."""

    def __init__(self, bag: str) -> None:
        self.bag = bag

    def error(self, topic: str | None, problem: str) -> BagError:
        where = f"bag {self.bag}" + (f", topic {topic}" if topic else "")
        return BagError(f"{where}: {problem}")


def _pick_connection(reader: Any, topic: str, allowed: tuple[str, ...], ctx: _Ctx, role: str) -> list[Any]:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        available = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
        raise ctx.error(topic, f"no {role} topic {topic!r} in the bag; topics present: {available or 'none'}")
    types = sorted({c.msgtype for c in conns})
    bad = [t for t in types if t not in allowed]
    if bad:
        raise ctx.error(topic, f"{role} messages have type {bad}; expected one of {list(allowed)}")
    return conns


def _read_commands(
    reader: Any, conns: list[Any], modality: str, joint_names: tuple[str, ...] | None, ctx: _Ctx, topic: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
    """-> (stamps int64 (N,), values float32 (N, D), joint names, stamp fallbacks)."""
    stamps: list[int] = []
    values: list[np.ndarray] = []
    names: tuple[str, ...] | None = tuple(joint_names) if joint_names is not None else None
    order: np.ndarray | None = None
    order_for: tuple[str, ...] | None = None
    fallbacks = 0
    for index, (conn, bag_t, raw) in enumerate(reader.messages(connections=conns)):
        msg = reader.deserialize(raw, conn.msgtype)
        if conn.msgtype == "geometry_msgs/msg/Twist":
            t = int(bag_t)
            tw = msg
        elif conn.msgtype == "geometry_msgs/msg/TwistStamped":
            t = _stamp_ns(msg)
            tw = msg.twist
        else:
            t = _stamp_ns(msg)
        if conn.msgtype != "geometry_msgs/msg/Twist" and t == 0:
            t = int(bag_t)
            fallbacks += 1
        if modality == "twist":
            values.append(
                np.array(
                    [tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z],
                    np.float32,
                )
            )
        else:
            msg_names = tuple(str(n) for n in msg.name)
            vel = np.asarray(msg.velocity, np.float64)
            if names is None:
                if not msg_names:
                    raise ctx.error(
                        topic, f"JointState message #{index} has an empty 'name' field; expected joint names"
                    )
                names = msg_names
            if msg_names != order_for:
                missing = [n for n in names if n not in msg_names]
                extra = [n for n in msg_names if n not in names] if joint_names is None else []
                if missing or extra or len(set(msg_names)) != len(msg_names):
                    raise ctx.error(
                        topic,
                        f"JointState message #{index} has names {list(msg_names)}; "
                        f"expected names {list(names)} "
                        f"(missing {missing}, unexpected {extra})",
                    )
                order = np.array([msg_names.index(n) for n in names])
                order_for = msg_names
            if vel.shape[0] != len(msg_names):
                raise ctx.error(
                    topic,
                    f"JointState message #{index} has velocity of length {vel.shape[0]}; "
                    f"expected {len(msg_names)} "
                    f"(one per name in {list(msg_names)})",
                )
            assert order is not None
            values.append(vel[order].astype(np.float32))
        stamps.append(t)
    if not stamps:
        raise ctx.error(topic, "command topic has no messages; expected at least one command")
    st = np.asarray(stamps, np.int64)
    val = np.stack(values).astype(np.float32)
    if not np.all(np.isfinite(val)):
        bad = int(np.flatnonzero(~np.isfinite(val).all(axis=1))[0])
        raise ctx.error(topic, f"command message #{bad} contains NaN or inf; expected finite values")
    sort = np.argsort(st, kind="stable")
    return st[sort], val[sort], (names or ()) if modality == "joint_velocity" else (), fallbacks


def _read_joint_states(
    reader: Any, conns: list[Any], names: tuple[str, ...], ctx: _Ctx, topic: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """-> (stamps int64 (N,), positions (N, J), velocities (N, J)) in ``names`` order, sorted;
    None for a topic without messages."""
    stamps: list[int] = []
    positions: list[np.ndarray] = []
    velocities: list[np.ndarray] = []
    for index, (conn, bag_t, raw) in enumerate(reader.messages(connections=conns)):
        msg = reader.deserialize(raw, conn.msgtype)
        msg_names = [str(n) for n in msg.name]
        pos, vel = np.asarray(msg.position, np.float64), np.asarray(msg.velocity, np.float64)
        missing = [n for n in names if n not in msg_names]
        if missing or pos.shape[0] != len(msg_names) or vel.shape[0] not in (0, len(msg_names)):
            raise ctx.error(
                topic,
                f"JointState message #{index} has names {msg_names}, {pos.shape[0]} positions and "
                f"{vel.shape[0]} velocities; expected every joint of {list(names)} (missing {missing}) "
                "with one position (and one velocity, or none) per name",
            )
        order = [msg_names.index(n) for n in names]
        stamps.append(_stamp_ns(msg) or int(bag_t))
        positions.append(pos[order])
        velocities.append(vel[order] if vel.size else np.full(len(names), np.nan))
    if not stamps:
        return None
    sort = np.argsort(np.asarray(stamps, np.int64), kind="stable")
    return np.asarray(stamps, np.int64)[sort], np.stack(positions)[sort], np.stack(velocities)[sort]


def _read_segmentations(reader: Any, conns: list[Any], ctx: _Ctx, topic: str) -> dict[int, np.ndarray]:
    """-> {stamp ns: (H, W) int16 link ids, -1 none}."""
    out: dict[int, np.ndarray] = {}
    for index, (conn, bag_t, raw) in enumerate(reader.messages(connections=conns)):
        msg = reader.deserialize(raw, conn.msgtype)
        dtype = SEGMENTATION_ENCODINGS.get(str(msg.encoding))
        h, w, step = int(msg.height), int(msg.width), int(msg.step)
        data = np.asarray(msg.data, np.uint8)
        if dtype is None or step < w * np.dtype(dtype).itemsize or data.size != h * step:
            raise ctx.error(
                topic,
                f"segmentation message #{index} has encoding={msg.encoding!r}, {w}x{h}, step {step}, "
                f"{data.size} bytes; expected one of {list(SEGMENTATION_ENCODINGS)} with "
                "height * step bytes",
            )
        rows = data.reshape(h, step)[:, : w * np.dtype(dtype).itemsize].copy().view(dtype)
        if msg.is_bigendian and rows.dtype.itemsize > 1:
            rows = rows.byteswap()
        out[_stamp_ns(msg) or int(bag_t)] = rows.astype(np.int16) - 1
    return out


def _states_at(
    states: tuple[np.ndarray, np.ndarray, np.ndarray] | None, stamps: np.ndarray
) -> JointStates | None:
    """The newest joint state at or before each stamp; None when a stamp precedes them all."""
    if states is None:
        return None
    index = np.searchsorted(states[0], stamps, side="right") - 1
    if (index < 0).any():
        return None
    return JointStates(states[1][index].copy(), states[2][index].copy())


def _segmentation_at(segs: dict[int, np.ndarray] | None, stamps: np.ndarray, size: int) -> np.ndarray | None:
    """The segmentation recorded at each frame's stamp at ``size`` (nearest); None when one is missing."""
    if not segs or any(int(t) not in segs for t in stamps):
        return None
    out = []
    for t in stamps:
        ids = segs[int(t)]
        rows = (np.arange(size) * ids.shape[0]) // size + ids.shape[0] // (2 * size)
        cols = (np.arange(size) * ids.shape[1]) // size + ids.shape[1] // (2 * size)
        out.append(ids[np.ix_(rows, cols)].astype(np.int8))
    return np.stack(out)


def read_bag(
    path: str | Path,
    image_topic: str = "/camera/image_raw",
    command_topic: str | None = None,
    modality: str = "joint_velocity",
    size: int = 64,
    max_staleness: float = STALENESS_S,
    episode_gap: float = 0.5,
    joint_names: list[str] | tuple[str, ...] | None = None,
    min_episode_frames: int = 2,
    stale_policy: str = DEFAULT_POLICY,
    state_topic: str = STATE_TOPIC,
    segmentation_topic: str = SEGMENTATION_TOPIC,
) -> tuple[list[Episode], ReadReport]:
    """Read a rosbag2 bag into episodes of (frame, interval-mean command) pairs at ``size`` x ``size``.

    Raises BagError (naming bag, topic and problem) for a missing/corrupt/truncated bag, missing
    topics, wrong message types, images that cannot be converted (unknown encoding, data length)
    or that change size mid-stream, mismatched joint names, or when no frame survives pairing.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag = str(path)
    ctx = _Ctx(bag)
    if modality not in COMMAND_TYPES:
        raise BagError(
            f"bag {bag}: modality={modality!r} cannot be read from bags; "
            f"expected one of {list(COMMAND_TYPES)}"
        )
    if command_topic is None:
        command_topic = DEFAULT_TOPICS[modality]
    if size <= 0:
        raise BagError(f"bag {bag}: size={size}; expected a positive number of pixels")
    try:
        check_policy(stale_policy)
    except ValueError as err:
        raise BagError(f"bag {bag}: {err}") from err
    if max_staleness <= 0 or episode_gap <= 0:
        raise BagError(
            f"bag {bag}: max_staleness={max_staleness}, episode_gap={episode_gap}; expected both > 0"
        )
    p = Path(bag)
    if not p.exists():
        raise BagError(
            f"bag {bag}: path does not exist; expected a rosbag2 directory (metadata.yaml + storage)"
        )

    current_topic: str | None = None
    try:
        with AnyReader([p], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
            img_conns = _pick_connection(reader, image_topic, IMAGE_TYPES, ctx, "image")
            cmd_conns = _pick_connection(reader, command_topic, COMMAND_TYPES[modality], ctx, "command")
            current_topic = command_topic
            cmd_t, cmd_v, names, fallbacks = _read_commands(
                reader,
                cmd_conns,
                modality,
                tuple(joint_names) if joint_names is not None else None,
                ctx,
                command_topic,
            )
            joint_states = segmentations = None
            topics = {c.topic for c in reader.connections}
            if modality == "joint_velocity" and state_topic in topics:
                current_topic = state_topic
                state_conns = _pick_connection(
                    reader, state_topic, ("sensor_msgs/msg/JointState",), ctx, "state"
                )
                joint_states = _read_joint_states(reader, state_conns, names, ctx, state_topic)
            if segmentation_topic in topics:
                current_topic = segmentation_topic
                seg_conns = _pick_connection(
                    reader, segmentation_topic, ("sensor_msgs/msg/Image",), ctx, "segmentation"
                )
                segmentations = _read_segmentations(reader, seg_conns, ctx, segmentation_topic)
            current_topic = image_topic
            stamps: list[int] = []
            frames: list[np.ndarray] = []
            src_hw: tuple[int, int] | None = None
            for index, (conn, bag_t, raw) in enumerate(reader.messages(connections=img_conns)):
                msg = reader.deserialize(raw, conn.msgtype)
                t = _stamp_ns(msg)
                if t == 0:
                    t = int(bag_t)
                    fallbacks += 1
                try:
                    rgb = image_message_to_rgb(msg)
                except ImageFormatError as err:
                    raise ctx.error(image_topic, f"image message #{index} (stamp {t} ns): {err}") from err
                hw = (int(rgb.shape[0]), int(rgb.shape[1]))
                if src_hw is None:
                    src_hw = hw
                elif hw != src_hw:
                    raise ctx.error(
                        image_topic,
                        f"image message #{index} (stamp {t} ns) has size {hw[1]}x{hw[0]}; expected "
                        f"{src_hw[1]}x{src_hw[0]} like the first image "
                        "(sizes must not change within a topic)",
                    )
                stamps.append(t)
                frames.append(resize_to_model(rgb, size))
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001 - rosbags/sqlite/mcap errors for corrupt or truncated bags
        where = f", topic {current_topic}" if current_topic else ""
        raise BagError(
            f"bag {bag}{where}: cannot read the bag (truncated or corrupt storage?): "
            f"{type(err).__name__}: {err}"
        ) from err

    if not frames:
        raise ctx.error(image_topic, "image topic has no messages; expected camera frames")

    n_images = len(frames)
    img_t = np.asarray(stamps, np.int64)
    sort = np.argsort(img_t, kind="stable")
    img_t = img_t[sort]
    drops = dict.fromkeys(DROP_REASONS, 0)
    fills = dict.fromkeys(FILL_REASONS, 0)
    dup = np.zeros(n_images, bool)
    dup[1:] = img_t[1:] == img_t[:-1]
    drops["duplicate_stamp"] = int(dup.sum())
    unique = np.flatnonzero(~dup)
    gaps = np.diff(img_t[unique])
    runs = np.split(unique, np.flatnonzero(gaps > episode_gap * 1e9) + 1)
    inside = gaps[gaps <= episode_gap * 1e9]
    period_ns = int(np.median(inside)) if inside.size else 0
    stamps_list = cmd_t.tolist()
    width = int(cmd_v.shape[1])
    episodes: list[Episode] = []
    periods: list[np.ndarray] = []
    for run in runs:
        ends = np.append(img_t[run[1:]], img_t[run[-1]] + period_ns)
        actions = []
        keep = np.ones(run.size, bool)
        for j, (t0, t1) in enumerate(zip(img_t[run].tolist(), ends.tolist(), strict=True)):
            paired = interval_mean(stamps_list, cmd_v, t0, t1, int(max_staleness * 1e9), stale_policy, width)
            if paired.fallback:
                (drops if paired.command is None else fills)[paired.fallback] += 1
            keep[j] = paired.command is not None
            actions.append(paired.command if paired.command is not None else np.zeros(width, np.float32))
        commands = np.stack(actions)
        # Under the skip policy a dropped frame cuts the run: no episode spans a hole in time.
        cuts = np.flatnonzero(np.diff(keep.astype(np.int8)) != 0) + 1
        for part in np.split(np.arange(run.size), cuts):
            if not keep[part[0]]:
                continue
            if part.size < max(1, min_episode_frames):
                drops["short_episode"] += int(part.size)
                continue
            index = run[part]
            part_stamps = img_t[index]
            episodes.append(
                Episode(
                    frames=np.stack([frames[sort[i]] for i in index]),
                    stamps=part_stamps.copy(),
                    commands=commands[part],
                    modality=modality,
                    joint_names=tuple(names),
                    source=bag,
                    states=_states_at(joint_states, part_stamps),
                    segmentation=_segmentation_at(segmentations, part_stamps, size),
                )
            )
            if part.size > 1:
                periods.append(np.diff(part_stamps) / 1e9)
    frames_kept = int(sum(len(e) for e in episodes))
    report = ReadReport(
        bag=bag,
        image_topic=image_topic,
        command_topic=command_topic,
        images=n_images,
        commands=int(cmd_t.size),
        frames_kept=frames_kept,
        drops=drops,
        fills=fills,
        joint_states=len(joint_states[0]) if joint_states else 0,
        segmentations=len(segmentations) if segmentations else 0,
        episodes=len(episodes),
        frame_period=float(np.median(np.concatenate(periods))) if periods else 0.0,
        stamp_fallbacks=fallbacks,
        image_size=src_hw or (0, 0),
        modality=modality,
        joint_names=tuple(names),
    )
    if not episodes:
        raise ctx.error(
            image_topic,
            f"no frames left after pairing with {command_topic} (max_staleness={max_staleness} s, "
            f"stale_policy={stale_policy}, min_episode_frames={min_episode_frames}): {report.summary()}",
        )
    return episodes, report
