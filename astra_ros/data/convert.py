"""astra-convert: a LeRobot dataset (v2.1 or v3.0) to a real rosbag2 bag (mcap or sqlite3).

    astra-convert ROOT OUT [--episodes 1-3] [--image compressed|raw] [--commands trajectory|array]
                  [--frozen drop|flag|keep] [--size N]

Per dataset row, at the dataset's own stamps (episode k starts ``--episode-gap`` seconds after
episode k-1 ends; the first at ``--start``):

- the camera frame: ``sensor_msgs/CompressedImage`` (JPEG) on ``/camera/image_raw/compressed`` or
  ``sensor_msgs/Image`` (rgb8) on ``/camera/image_raw``; ``--size`` centre-crops and resizes;
- ``/joint_states``: ``sensor_msgs/JointState`` positions from the state column;
- the position target from the action column: ``trajectory_msgs/JointTrajectory`` (one point) on
  ``/joint_trajectory``, or ``std_msgs/Float64MultiArray`` (a ros2_control forward command) on
  ``/position_controller/commands``.

Frozen frames (pixels equal to the previous frame's): ``drop`` writes no image for them, ``flag``
writes the image and a ``std_msgs/Header`` with its stamp on ``/camera/frozen``, ``keep`` writes
them like any frame. State and commands are written for every row.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from astra_ros.data.images import resize_to_model
from astra_ros.data.lerobot import LeRobotError, LeRobotMeta, iter_video, parse_episodes

__all__ = ["ConvertReport", "convert"]

IMAGE_TOPICS = {"compressed": "/camera/image_raw/compressed", "raw": "/camera/image_raw"}
COMMAND_TOPICS = {"trajectory": "/joint_trajectory", "array": "/position_controller/commands"}
STATE_TOPIC = "/joint_states"
FROZEN_TOPIC = "/camera/frozen"
FROZEN_POLICIES = ("drop", "flag", "keep")


@dataclass
class ConvertReport:
    bag: str
    episodes: list[int] = field(default_factory=list)
    rows: int = 0
    images: int = 0
    frozen: int = 0  # frames whose pixels equal the previous frame's (dropped, flagged or kept)
    topics: dict[str, str] = field(default_factory=dict)  # topic -> message type

    def summary(self) -> str:
        return (
            f"{self.bag}: {len(self.episodes)} episodes, {self.rows} rows, {self.images} images, "
            f"{self.frozen} frozen frames; topics {self.topics}."
        )


class _Writer:
    def __init__(self, out: Path, storage: str, image: str, commands: str, frozen: str) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.ts = get_typestore(Stores.ROS2_KILTED)
        self.t = self.ts.types
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(out, version=9, storage_plugin=plugin)
        self.writer.open()
        self.image_kind, self.command_kind = image, commands
        self.topics = {
            IMAGE_TOPICS[image]: "sensor_msgs/msg/CompressedImage"
            if image == "compressed"
            else "sensor_msgs/msg/Image",
            STATE_TOPIC: "sensor_msgs/msg/JointState",
            COMMAND_TOPICS[commands]: (
                "trajectory_msgs/msg/JointTrajectory"
                if commands == "trajectory"
                else "std_msgs/msg/Float64MultiArray"
            ),
        }
        if frozen == "flag":
            self.topics[FROZEN_TOPIC] = "std_msgs/msg/Header"
        self.conns = {
            topic: self.writer.add_connection(topic, kind, typestore=self.ts)
            for topic, kind in self.topics.items()
        }

    def _write(self, topic: str, t_ns: int, msg: Any) -> None:
        self.writer.write(self.conns[topic], t_ns, self.ts.serialize_cdr(msg, self.topics[topic]))

    def header(self, t_ns: int, frame_id: str) -> Any:
        stamp = self.t["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(self, t_ns: int, rgb: np.ndarray) -> None:
        import cv2

        header = self.header(t_ns, "camera")
        if self.image_kind == "compressed":
            ok, jpeg = cv2.imencode(
                ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            assert ok, "OpenCV failed to encode a JPEG"
            msg = self.t["sensor_msgs/msg/CompressedImage"](
                header=header, format="rgb8; jpeg compressed bgr8", data=jpeg.reshape(-1)
            )
        else:
            h, w, _ = rgb.shape
            msg = self.t["sensor_msgs/msg/Image"](
                header=header,
                height=h,
                width=w,
                encoding="rgb8",
                is_bigendian=0,
                step=3 * w,
                data=rgb.reshape(-1),
            )
        self._write(IMAGE_TOPICS[self.image_kind], t_ns, msg)

    def frozen(self, t_ns: int) -> None:
        self._write(FROZEN_TOPIC, t_ns, self.header(t_ns, "camera"))

    def state(self, t_ns: int, names: tuple[str, ...], positions: np.ndarray) -> None:
        empty = np.zeros(0, np.float64)
        msg = self.t["sensor_msgs/msg/JointState"](
            header=self.header(t_ns, "base"),
            name=list(names),
            position=positions.astype(np.float64),
            velocity=empty,
            effort=empty,
        )
        self._write(STATE_TOPIC, t_ns, msg)

    def command(self, t_ns: int, names: tuple[str, ...], target: np.ndarray) -> None:
        values = target.astype(np.float64)
        if self.command_kind == "trajectory":
            duration = self.t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0)
            empty = np.zeros(0, np.float64)
            point = self.t["trajectory_msgs/msg/JointTrajectoryPoint"](
                positions=values,
                velocities=empty,
                accelerations=empty,
                effort=empty,
                time_from_start=duration,
            )
            msg = self.t["trajectory_msgs/msg/JointTrajectory"](
                header=self.header(t_ns, "base"), joint_names=list(names), points=[point]
            )
        else:
            layout = self.t["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
            msg = self.t["std_msgs/msg/Float64MultiArray"](layout=layout, data=values)
        self._write(COMMAND_TOPICS[self.command_kind], t_ns, msg)

    def close(self) -> None:
        self.writer.close()


def convert(
    root: str | Path,
    out: str | Path,
    episodes: list[int] | None = None,
    camera: str | None = None,
    state_key: str = "observation.state",
    action_key: str = "action",
    image: str = "compressed",
    commands: str = "trajectory",
    frozen: str = "drop",
    size: int | None = None,
    storage: str = "mcap",
    start: float = 1.0,
    episode_gap: float = 1.0,
    progress: bool = True,
) -> ConvertReport:
    """Write the selected episodes (default: all present) of a LeRobot dataset to the bag ``out``.

    Raises LeRobotError naming the file and episode (missing files, frames != rows, NaN, bad keys)."""
    import pyarrow.parquet as pq

    for name, value, allowed in (
        ("image", image, IMAGE_TOPICS),
        ("commands", commands, COMMAND_TOPICS),
        ("frozen", frozen, FROZEN_POLICIES),
        ("storage", storage, ("mcap", "sqlite3")),
    ):
        if value not in allowed:
            raise LeRobotError(f"{name}={value!r}; expected one of {list(allowed)}")
    meta = LeRobotMeta.open(root)
    camera = camera or (meta.cameras[0] if meta.cameras else None)
    if camera not in meta.cameras:
        raise LeRobotError(
            f"{meta.root}: camera {camera!r} is not a video feature; expected one of {list(meta.cameras)}"
        )
    names = meta.feature_names(action_key) or meta.feature_names(state_key)
    held = sorted(i for i in meta.episodes if meta.data_file(i).is_file())
    chosen = held if episodes is None else [i for i in sorted(set(episodes)) if i in held]
    if not chosen:
        raise LeRobotError(
            f"{meta.root}: none of the selected episodes {episodes} is in the dataset; it holds {held}"
        )
    out = Path(out)
    if out.exists():
        raise LeRobotError(f"{out} exists; expected a new bag directory")
    writer = _Writer(out, storage, image, commands, frozen)
    report = ConvertReport(bag=str(out), topics=dict(writer.topics))
    offset = int(round(start * 1e9))
    try:
        for index in tqdm(chosen, desc="episodes", disable=not progress, dynamic_ncols=True):
            what = f"{meta.root} episode {index}"
            data_path = meta.data_file(index)
            table = pq.read_table(data_path)
            if meta.version == "v3.0":
                table = table.filter(np.asarray(table.column("episode_index").to_pylist()) == index)
            columns = {}
            for key in (state_key, action_key, "timestamp"):
                if key not in table.column_names:
                    raise LeRobotError(
                        f"{what}: {data_path} has no column {key!r}; columns: {table.column_names}"
                    )
                columns[key] = np.asarray(table.column(key).to_pylist(), np.float64)
                if not np.isfinite(columns[key]).all():
                    row = int(np.flatnonzero(~np.isfinite(columns[key]).reshape(len(table), -1).all(1))[0])
                    raise LeRobotError(f"{what}: {data_path} column {key!r} has NaN or inf at row {row}")
            stamps = offset + np.round(columns["timestamp"] * 1e6).astype(np.int64) * 1000
            video, span_start, span_end = meta.video_file(index, camera)
            if not video.is_file():
                raise LeRobotError(f"{what}: video {video} is missing; expected camera {camera!r}")
            row = 0
            first = True
            for t, rgb, repeat in iter_video(video, what):
                if (
                    span_start is not None
                    and not span_start - 0.5 / meta.fps <= t < span_end - 0.5 / meta.fps
                ):
                    continue
                if row >= len(table):
                    raise LeRobotError(
                        f"{what}: video {video} has more frames than the {len(table)} rows of {data_path}"
                    )
                repeat = repeat and not first
                first = False
                report.frozen += int(repeat)
                if frozen == "flag" and repeat:
                    writer.frozen(int(stamps[row]))
                if not (frozen == "drop" and repeat):
                    writer.image(int(stamps[row]), rgb if size is None else resize_to_model(rgb, size))
                    report.images += 1
                writer.state(int(stamps[row]), names, columns[state_key][row])
                writer.command(int(stamps[row]), names, columns[action_key][row])
                row += 1
            if row != len(table):
                raise LeRobotError(
                    f"{what}: video {video} has {row} frames for {len(table)} rows in {data_path}"
                )
            report.episodes.append(index)
            report.rows += row
            offset = int(stamps[-1]) + int(round(episode_gap * 1e9))
    finally:
        writer.close()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="astra-convert", description=__doc__.splitlines()[0])
    p.add_argument("root", help="LeRobot dataset root (meta/info.json)")
    p.add_argument("out", help="new rosbag2 directory")
    p.add_argument("--episodes", default=None, help="e.g. 1-33,35 (default: all present)")
    p.add_argument("--camera", default=None, help="video key (default: the first in meta/info.json)")
    p.add_argument("--state-key", default="observation.state")
    p.add_argument("--action-key", default="action")
    p.add_argument("--image", choices=tuple(IMAGE_TOPICS), default="compressed")
    p.add_argument("--commands", choices=tuple(COMMAND_TOPICS), default="trajectory")
    p.add_argument("--frozen", choices=FROZEN_POLICIES, default="drop")
    p.add_argument("--size", type=int, default=None, help="centre-crop and resize to SIZE x SIZE")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--start", type=float, default=1.0, help="bag time of the first row, seconds")
    p.add_argument("--episode-gap", type=float, default=1.0, help="seconds between episodes")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        report = convert(
            args.root,
            args.out,
            episodes=parse_episodes(args.episodes) if args.episodes else None,
            camera=args.camera,
            state_key=args.state_key,
            action_key=args.action_key,
            image=args.image,
            commands=args.commands,
            frozen=args.frozen,
            size=args.size,
            storage=args.storage,
            start=args.start,
            episode_gap=args.episode_gap,
            progress=not args.no_progress,
        )
    except (LeRobotError, OSError) as err:
        print(f"astra-convert: error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
