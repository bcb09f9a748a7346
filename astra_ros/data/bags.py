"""Read rosbag2 bags (mcap or sqlite3) into episodes of model-resolution frames and commands.

Torch-free. Each camera frame gets the command in force at its header stamp (zero-order hold:
the latest command with stamp <= frame stamp); a frame with no earlier command, or whose command
is older than ``max_staleness`` seconds, is dropped and counted. Episodes split where the gap
between consecutive kept frames exceeds ``episode_gap`` seconds.

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

__all__ = ["BagError", "DEFAULT_TOPICS", "Episode", "ReadReport", "read_bag"]

DEFAULT_TOPICS = {"joint_velocity": "/joint_commands", "twist": "/cmd_vel"}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
COMMAND_TYPES = {
    "joint_velocity": ("sensor_msgs/msg/JointState",),
    "twist": ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped"),
}
DROP_REASONS = ("no_command", "stale_command", "duplicate_stamp", "short_episode")


class BagError(ValueError):
    """A bag that cannot be read as requested; the message names the bag, topic and problem."""


@dataclass
class Episode:
    frames: np.ndarray  # (T, S, S, 3) uint8 at model resolution
    stamps: np.ndarray  # (T,) int64 nanoseconds (header stamps)
    commands: np.ndarray  # (T, D) float32: raw command in force at each frame (zero-order hold)
    modality: str  # "joint_velocity" | "twist" | ...
    joint_names: tuple[str, ...]  # order of the D columns for joint_velocity; () otherwise
    source: str  # bag path
    states: np.ndarray | None = None  # (T, J) float32 joint positions at each frame, where recorded

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


def read_bag(
    path: str | Path,
    image_topic: str = "/camera/image_raw",
    command_topic: str | None = None,
    modality: str = "joint_velocity",
    size: int = 64,
    max_staleness: float = 0.25,
    episode_gap: float = 0.5,
    joint_names: list[str] | tuple[str, ...] | None = None,
    min_episode_frames: int = 2,
) -> tuple[list[Episode], ReadReport]:
    """Read a rosbag2 bag into episodes of (frame, command-in-force) pairs at ``size`` x ``size``.

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
    keep = np.ones(n_images, bool)
    dup = np.zeros(n_images, bool)
    dup[1:] = img_t[1:] == img_t[:-1]
    drops["duplicate_stamp"] = int(dup.sum())
    keep &= ~dup
    held = np.searchsorted(cmd_t, img_t, side="right") - 1  # zero-order hold
    no_cmd = keep & (held < 0)
    drops["no_command"] = int(no_cmd.sum())
    keep &= ~no_cmd
    age = (img_t - cmd_t[np.maximum(held, 0)]) / 1e9
    stale = keep & (age > max_staleness)
    drops["stale_command"] = int(stale.sum())
    keep &= ~stale

    kept = np.flatnonzero(keep)
    episodes: list[Episode] = []
    periods: list[np.ndarray] = []
    if kept.size:
        gaps = np.diff(img_t[kept]) / 1e9
        cuts = np.flatnonzero(gaps > episode_gap) + 1
        for part in np.split(kept, cuts):
            if part.size < max(1, min_episode_frames):
                drops["short_episode"] += int(part.size)
                continue
            episodes.append(
                Episode(
                    frames=np.stack([frames[sort[i]] for i in part]),
                    stamps=img_t[part].copy(),
                    commands=cmd_v[held[part]].copy(),
                    modality=modality,
                    joint_names=tuple(names),
                    source=bag,
                )
            )
            if part.size > 1:
                periods.append(np.diff(img_t[part]) / 1e9)
    frames_kept = int(sum(len(e) for e in episodes))
    report = ReadReport(
        bag=bag,
        image_topic=image_topic,
        command_topic=command_topic,
        images=n_images,
        commands=int(cmd_t.size),
        frames_kept=frames_kept,
        drops=drops,
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
            f"min_episode_frames={min_episode_frames}): {report.summary()}",
        )
    return episodes, report
