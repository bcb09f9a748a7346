"""Read LeRobot datasets (v2.1 and v3.0) into episodes of model-resolution frames and commands.

Torch-free; PyAV decodes the videos, pyarrow reads the parquet files (``lerobot`` itself cannot be
installed beside our torch pin). Layouts, from ``meta/info.json``:

- v2.1: one parquet file and one video per episode (``data_path`` / ``video_path`` templates with
  ``episode_chunk`` and ``episode_index``); the episode's video frames are its parquet rows.
- v3.0: many episodes per file; ``meta/episodes/*.parquet`` names each episode's data and video
  files and its time span in the video (``videos/<camera>/from_timestamp`` .. ``to_timestamp``).

Frames are centre-cropped and area-resized to ``size`` (``resize_to_model``) and cached on disk,
keyed by the video file's sha256 and the size, so a second epoch does not decode again.

Frozen frames: a frame whose decoded pixels equal the previous frame's exactly is a camera repeat
(the G1 head camera delivers 15 Hz in stretches while the state changes on every row). With
``frozen="drop"`` (the default) they are removed and each kept frame keeps its own timestamp; see
docs/real_robot_data.md for the measurement behind the default.

Commands (``joint_position`` modality): the position target relative to the state at the frame,
``mean(action[rows of the interval]) - observation.state[frame row]``, where the interval runs from
a kept frame's row up to the next kept frame's row (the per-frame action rule: the mean command in
force over [t_i, t_{i+1})). It is the joint displacement the targets ask for over that interval.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.data.bags import Episode, JointStates
from astra_ros.data.images import resize_to_model
from astra_ros.hashing import file_sha256

__all__ = [
    "DEFAULT_CACHE_DIR",
    "EpisodeReport",
    "LeRobotError",
    "LeRobotMeta",
    "LeRobotReport",
    "decode_video",
    "is_lerobot",
    "iter_video",
    "parse_episodes",
    "read_lerobot",
    "select_frames",
]

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "astra_ros" / "frames"
CACHE_VERSION = 1  # bump when the decode or resize changes what a cache file holds
FROZEN_POLICIES = ("drop", "keep")


class LeRobotError(ValueError):
    """A dataset that cannot be read as requested; the message names the file and episode."""


def is_lerobot(path: str | Path) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def parse_episodes(text: str) -> list[int]:
    """``"1-33,35"`` -> ``[1, 2, ..., 33, 35]`` (sorted, without repeats)."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise LeRobotError(
                f"--episodes {text!r}: {part!r} is not N or N-M; expected e.g. '1-33,35'"
            ) from None
        if first < 0 or last < first:
            raise LeRobotError(f"--episodes {text!r}: {part!r} is not a range N-M with 0 <= N <= M")
        out.update(range(first, last + 1))
    return sorted(out)


@dataclass
class LeRobotMeta:
    root: Path
    info: dict[str, Any]
    version: str  # "v2.1" | "v3.0"
    fps: float
    cameras: tuple[str, ...]  # video feature keys
    episodes: dict[int, dict[str, Any]]  # episode index -> its row of episode metadata

    @classmethod
    def open(cls, root: str | Path) -> LeRobotMeta:
        root = Path(root)
        info_path = root / "meta" / "info.json"
        if not info_path.is_file():
            raise LeRobotError(f"{root}: no meta/info.json; expected a LeRobot dataset root")
        info = json.loads(info_path.read_text())
        version = str(info.get("codebase_version", ""))
        if version not in ("v2.1", "v3.0"):
            raise LeRobotError(f"{info_path}: codebase_version={version!r}; expected 'v2.1' or 'v3.0'")
        features = info.get("features", {})
        cameras = tuple(k for k, v in features.items() if v.get("dtype") == "video")
        if version == "v2.1":
            episodes = _jsonl_episodes(root / "meta" / "episodes.jsonl")
        else:
            episodes = _parquet_episodes(root / "meta" / "episodes")
        return cls(root, info, version, float(info["fps"]), cameras, episodes)

    def feature_names(self, key: str) -> tuple[str, ...]:
        names = self.info["features"].get(key, {}).get("names")
        while isinstance(names, list) and len(names) == 1 and isinstance(names[0], list):
            names = names[0]
        if isinstance(names, dict):  # {"motors": [...]}
            names = next(iter(names.values()), [])
        return tuple(str(n) for n in names) if isinstance(names, list) else ()

    def data_file(self, episode: int) -> Path:
        row = self.episodes[episode]
        if self.version == "v2.1":
            chunk = episode // int(self.info.get("chunks_size", 1000))
            rel = self.info["data_path"].format(episode_chunk=chunk, episode_index=episode)
        else:
            rel = self.info["data_path"].format(
                chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
            )
        return self.root / rel

    def video_file(self, episode: int, camera: str) -> tuple[Path, float | None, float | None]:
        """-> (video path, start and end time of the episode in it; None: the whole file)."""
        row = self.episodes[episode]
        if self.version == "v2.1":
            chunk = episode // int(self.info.get("chunks_size", 1000))
            rel = self.info["video_path"].format(episode_chunk=chunk, video_key=camera, episode_index=episode)
            return self.root / rel, None, None
        rel = self.info["video_path"].format(
            video_key=camera,
            chunk_index=int(row[f"videos/{camera}/chunk_index"]),
            file_index=int(row[f"videos/{camera}/file_index"]),
        )
        start = float(row[f"videos/{camera}/from_timestamp"])
        return self.root / rel, start, float(row[f"videos/{camera}/to_timestamp"])


def _jsonl_episodes(path: Path) -> dict[int, dict[str, Any]]:
    if not path.is_file():
        raise LeRobotError(f"{path}: missing; expected one JSON line per episode (LeRobot v2.1)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["episode_index"]): r for r in rows}


def _parquet_episodes(folder: Path) -> dict[int, dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted(folder.glob("chunk-*/*.parquet"))
    if not files:
        raise LeRobotError(f"{folder}: no chunk-*/*.parquet; expected the episode table (LeRobot v3.0)")
    out: dict[int, dict[str, Any]] = {}
    for f in files:
        for row in pq.read_table(f).to_pylist():
            out[int(row["episode_index"])] = row
    return out


# -- video decoding and the frame cache ----------------------------------------------------------


def iter_video(path: Path, what: str, progress: bool = False) -> Iterator[tuple[float, np.ndarray, bool]]:
    """Yield ``(presentation time in seconds, rgb (H, W, 3) uint8, repeat)`` for every frame of
    ``path``; ``repeat``: the pixels equal the previous frame's exactly."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise LeRobotError(f"{what}: cannot open video {path}: {err}") from err
    with container:
        if not container.streams.video:
            raise LeRobotError(f"{what}: {path} has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec not in av.codecs_available:
            raise LeRobotError(
                f"{what}: {path} is encoded with {codec!r}, which this PyAV build cannot decode; "
                "expected a codec in av.codecs_available (e.g. av1, h264)"
            )
        rate = float(stream.average_rate or 1)
        previous: np.ndarray | None = None
        count = 0
        bar = _progress(stream.frames or None, f"decode {path.name}", progress)
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                repeat = previous is not None and np.array_equal(rgb, previous)
                previous = rgb
                yield (float(frame.time) if frame.time is not None else count / rate), rgb, repeat
                count += 1
                bar.update(1)
        except av.error.FFmpegError as err:
            raise LeRobotError(
                f"{what}: cannot decode {path} (codec {codec!r}) after {count} frames: {err}"
            ) from err
        finally:
            bar.close()
    if count == 0:
        raise LeRobotError(f"{what}: {path} holds no video frames")


def decode_video(path: Path, size: int, what: str, progress: bool = False) -> dict[str, np.ndarray]:
    """Every frame of ``path`` -> ``frames`` (N, size, size, 3) uint8 (``resize_to_model``), ``times``
    (N,) float64 seconds, ``repeats`` (N,) bool (pixels equal to the previous frame's)."""
    frames, times, repeats = [], [], []
    for t, rgb, repeat in iter_video(path, what, progress):
        frames.append(resize_to_model(rgb, size))
        times.append(t)
        repeats.append(repeat)
    return {
        "frames": np.stack(frames),
        "times": np.asarray(times, np.float64),
        "repeats": np.asarray(repeats, bool),
    }


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def cached_video(
    path: Path, size: int, cache_dir: Path | None, what: str, progress: bool
) -> dict[str, np.ndarray]:
    """``decode_video`` through an on-disk cache keyed by the file's sha256 and ``size``."""
    if cache_dir is None:
        return decode_video(path, size, what, progress)
    key = f"{file_sha256(path)[:32]}_{size}_v{CACHE_VERSION}.npz"
    cache = cache_dir / key
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in ("frames", "times", "repeats")}
    decoded = decode_video(path, size, what, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **decoded)
    tmp.replace(cache)
    return decoded


# -- frame selection -------------------------------------------------------------------------------


def select_frames(
    stamps: np.ndarray, repeats: np.ndarray, frozen: str, frame_period: float | None, fps: float
) -> np.ndarray:
    """Indices of the frames to keep: frozen repeats dropped (``frozen="drop"``), then, with
    ``frame_period``, each kept frame at least that long after the previous kept one (greedy from
    the first; stamps within half a row of the period count as reaching it)."""
    if frozen not in FROZEN_POLICIES:
        raise LeRobotError(f"frozen={frozen!r}; expected one of {list(FROZEN_POLICIES)}")
    keep = np.flatnonzero(~repeats) if frozen == "drop" else np.arange(len(stamps))
    if not frame_period:
        return keep
    need = int(round((frame_period - 0.5 / fps) * 1e9))
    out = [int(keep[0])]
    for i in keep[1:]:
        if stamps[i] - stamps[out[-1]] >= need:
            out.append(int(i))
    return np.asarray(out, np.int64)


def interval_means(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean of ``values`` rows from each kept index up to (excluding) the next kept index; the last
    kept frame averages its own row only (its interval's end is not recorded)."""
    ends = np.append(keep[1:], keep[-1] + 1)
    sums = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0, dtype=np.float64)])
    return ((sums[ends] - sums[keep]) / (ends - keep)[:, None]).astype(np.float32)


# -- reports ---------------------------------------------------------------------------------------


@dataclass
class EpisodeReport:
    episode: int
    rows: int  # parquet rows = video frames
    repeats: int  # frames whose pixels equal the previous frame's
    kept: int  # frames in the returned episode
    frame_period: float  # median seconds between kept frames
    zero_change: float  # share of kept frames whose next kept frame has identical (resized) pixels

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class LeRobotReport:
    root: str
    version: str
    camera: str
    state_key: str
    action_key: str
    frozen: str
    fps: float
    image_size: tuple[int, int]  # (height, width) of the source video
    episodes: list[EpisodeReport] = field(default_factory=list)
    absent: list[int] = field(default_factory=list)  # selected indices the dataset does not hold

    def summary(self) -> str:
        rows = sum(e.rows for e in self.episodes)
        rep = sum(e.repeats for e in self.episodes)
        kept = sum(e.kept for e in self.episodes)
        period = float(np.median([e.frame_period for e in self.episodes])) if self.episodes else 0.0
        per = ", ".join(f"{e.episode}:{e.repeats}/{e.rows}" for e in self.episodes)
        text = (
            f"{self.root} (LeRobot {self.version}, {self.camera} {self.image_size[1]}x{self.image_size[0]} "
            f"at {self.fps:g} fps): {len(self.episodes)} episodes, {rows} frames, {rep} frozen repeats "
            f"({100.0 * rep / max(rows, 1):.1f} %, policy {self.frozen}); kept {kept} frames "
            f"(median frame period {period * 1000:.1f} ms). Repeats per episode: {per}"
        )
        if self.absent:
            text += f". Selected but not in the dataset: {self.absent}"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.root,
            "format": f"lerobot {self.version}",
            "camera": self.camera,
            "state_key": self.state_key,
            "action_key": self.action_key,
            "frozen": self.frozen,
            "frames": sum(e.kept for e in self.episodes),
            "episodes": len(self.episodes),
            "repeats": sum(e.repeats for e in self.episodes),
            "frame_period": float(np.median([e.frame_period for e in self.episodes]))
            if self.episodes
            else 0.0,
            "per_episode": [e.to_dict() for e in self.episodes],
            "absent": self.absent,
        }


# -- reading ---------------------------------------------------------------------------------------


def _column(table: Any, key: str, what: str, path: Path) -> np.ndarray:
    if key not in table.column_names:
        raise LeRobotError(f"{what}: {path} has no column {key!r}; columns present: {table.column_names}")
    col = table.column(key).to_pylist()
    return np.asarray(col, np.float64)


def read_lerobot(
    root: str | Path,
    episodes: list[int] | None = None,
    camera: str | None = None,
    state_key: str = "observation.state",
    action_key: str = "action",
    size: int = 64,
    frozen: str = "drop",
    frame_period: float | None = None,
    min_frames: int = 2,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
) -> tuple[list[Episode], LeRobotReport]:
    """Read the selected episodes (default: all the dataset holds) into ``joint_position`` episodes.

    Raises LeRobotError naming the file and episode for: a missing data or video file, video frames
    != parquet rows, a codec PyAV cannot decode, NaN/inf in state or action, an episode with fewer
    than ``min_frames`` frames after frame selection, or unknown camera/state/action keys.
    """
    import pyarrow.parquet as pq

    meta = LeRobotMeta.open(root)
    if camera is None:
        if not meta.cameras:
            raise LeRobotError(f"{meta.root}/meta/info.json: no video features; expected a camera")
        camera = meta.cameras[0]
    elif camera not in meta.cameras:
        raise LeRobotError(
            f"{meta.root}: camera {camera!r} is not a video feature; expected one of {list(meta.cameras)}"
        )
    for key in (state_key, action_key):
        if key not in meta.info["features"]:
            raise LeRobotError(
                f"{meta.root}/meta/info.json: no feature {key!r}; features: {sorted(meta.info['features'])}"
            )
    if frozen not in FROZEN_POLICIES:
        raise LeRobotError(f"frozen={frozen!r}; expected one of {list(FROZEN_POLICIES)}")
    held = sorted(i for i in meta.episodes if meta.data_file(i).is_file())
    wanted = held if episodes is None else sorted(set(episodes))
    chosen = [i for i in wanted if i in held]
    absent = [i for i in wanted if i not in held]
    if not chosen:
        raise LeRobotError(
            f"{meta.root}: none of the selected episodes {wanted} is in the dataset; it holds {held}"
        )
    names = meta.feature_names(action_key) or meta.feature_names(state_key)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    video_info = meta.info["features"][camera].get("info", {})
    report = LeRobotReport(
        root=str(meta.root),
        version=meta.version,
        camera=camera,
        state_key=state_key,
        action_key=action_key,
        frozen=frozen,
        fps=meta.fps,
        image_size=(int(video_info.get("video.height", 0)), int(video_info.get("video.width", 0))),
        absent=absent,
    )
    out: list[Episode] = []
    from tqdm import tqdm

    for index in tqdm(chosen, desc="episodes", disable=not progress, leave=False, dynamic_ncols=True):
        what = f"{meta.root} episode {index}"
        data_path = meta.data_file(index)
        table = pq.read_table(data_path)
        if meta.version == "v3.0":
            ep_col = np.asarray(table.column("episode_index").to_pylist())
            table = table.filter(ep_col == index)
        state = _column(table, state_key, what, data_path)
        action = _column(table, action_key, what, data_path)
        rows = table.num_rows
        for key, values in ((state_key, state), (action_key, action)):
            bad = ~np.isfinite(values).reshape(rows, -1).all(axis=1)
            if bad.any():
                raise LeRobotError(
                    f"{what}: {data_path} column {key!r} has NaN or inf at row {int(np.flatnonzero(bad)[0])} "
                    f"({int(bad.sum())} rows); expected finite values"
                )
        if state.shape != action.shape:
            raise LeRobotError(
                f"{what}: {state_key} has shape {state.shape}, {action_key} {action.shape}; expected equal"
            )
        # float32 seconds in the files: rounded to whole microseconds (0.7 is stored as 0.69999999)
        stamps = np.round(_column(table, "timestamp", what, data_path) * 1e6).astype(np.int64) * 1000
        video, start, end = meta.video_file(index, camera)
        if not video.is_file():
            raise LeRobotError(
                f"{what}: video {video} is missing; expected camera {camera!r} for its {rows} rows"
            )
        decoded = cached_video(video, size, cache, what, progress)
        if start is not None:
            span = (decoded["times"] >= start - 0.5 / meta.fps) & (decoded["times"] < end - 0.5 / meta.fps)
            decoded = {k: v[span] for k, v in decoded.items()}
            if len(decoded["repeats"]):
                decoded["repeats"][0] = False
        n_frames = len(decoded["frames"])
        if n_frames != rows:
            raise LeRobotError(
                f"{what}: video {video} has {n_frames} frames for {rows} rows in {data_path}; "
                "expected one frame per row"
            )
        keep = select_frames(stamps, decoded["repeats"], frozen, frame_period, meta.fps)
        if len(keep) < min_frames:
            raise LeRobotError(
                f"{what}: {len(keep)} frames after frame selection (frozen={frozen}, "
                f"frame_period={frame_period}) of {rows} rows; expected at least {min_frames} (the context)"
            )
        frames = decoded["frames"][keep]
        commands = interval_means(action, keep) - state[keep].astype(np.float32)
        changed = np.any(frames[1:] != frames[:-1], axis=(1, 2, 3))
        report.episodes.append(
            EpisodeReport(
                episode=index,
                rows=rows,
                repeats=int(decoded["repeats"].sum()),
                kept=len(keep),
                frame_period=float(np.median(np.diff(stamps[keep]))) / 1e9 if len(keep) > 1 else 0.0,
                zero_change=float(1.0 - changed.mean()) if changed.size else 0.0,
            )
        )
        out.append(
            Episode(
                frames=frames,
                stamps=stamps[keep],
                commands=commands,
                modality="joint_position",
                joint_names=names,
                source=what,
                states=JointStates(state[keep].astype(np.float64), np.full(state[keep].shape, np.nan)),
            )
        )
    return out, report
