"""Shared by test_data_lerobot and test_convert: tiny LeRobot datasets (v2.1 and v3.0) written with
pyarrow and PyAV (H.264 at qp 0, intra only, so identical source frames decode to identical pixels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CAMERA = "observation.images.top"
JOINTS = ("j0", "j1", "j2")
FPS = 10
SIDE = 32  # source video frames are SIDE x SIDE


def episode_content(index: int, rows: int, joints: tuple[str, ...] = JOINTS) -> dict[str, np.ndarray]:
    """Frames that change on every row except rows 2 and 3 (exact repeats of the row before), and
    states/actions that differ per row."""
    rng = np.random.default_rng(index)
    frames = rng.integers(0, 256, (rows, SIDE, SIDE, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(frames[:, ::8, ::8], 8, axis=1), 8, axis=2)  # 8x8 blocks survive coding
    frames[2] = frames[1]
    frames[3] = frames[1]
    state = (0.1 * (np.arange(rows)[:, None] + np.arange(len(joints))[None]) + index).astype(np.float32)
    action = state + np.float32(0.05)
    return {"frames": frames, "state": state, "action": action, "timestamp": np.arange(rows) / FPS}


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264") -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qp": "0", "g": "1", "preset": "ultrafast"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _table(content: dict[str, np.ndarray], index: int, start: int = 0):
    import pyarrow as pa

    rows, joints = content["state"].shape
    return pa.table(
        {
            "observation.state": pa.array(list(content["state"]), pa.list_(pa.float32(), joints)),
            "action": pa.array(list(content["action"]), pa.list_(pa.float32(), joints)),
            "timestamp": pa.array(content["timestamp"].astype(np.float32)),
            "frame_index": pa.array(np.arange(rows)),
            "episode_index": pa.array(np.full(rows, index)),
            "index": pa.array(start + np.arange(rows)),
            "task_index": pa.array(np.zeros(rows, np.int64)),
        }
    )


def _info(version: str, episodes: dict[int, int], joints: tuple[str, ...] = JOINTS) -> dict:
    vector = {"dtype": "float32", "shape": [len(joints)], "names": [list(joints)]}
    info = {
        "codebase_version": version,
        "robot_type": "test_arm",
        "total_episodes": len(episodes),
        "fps": FPS,
        "chunks_size": 1000,
        "features": {
            "observation.state": vector,
            "action": vector,
            CAMERA: {
                "dtype": "video",
                "shape": [SIDE, SIDE, 3],
                "names": ["height", "width", "channel"],
                "info": {"video.height": SIDE, "video.width": SIDE, "video.codec": "h264", "video.fps": FPS},
            },
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        },
    }
    if version == "v2.1":
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    else:
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    return info


def write_dataset(
    root: Path,
    version: str = "v2.1",
    episodes: dict[int, int] | None = None,
    joints: tuple[str, ...] = JOINTS,
) -> Path:
    """A LeRobot dataset of ``episodes`` (index -> rows, default {0: 8, 1: 6}) with one camera and
    ``joints`` in its state and action."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    episodes = episodes or {0: 8, 1: 6}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "info.json").write_text(json.dumps(_info(version, episodes, joints), indent=1))
    contents = {i: episode_content(i, n, joints) for i, n in episodes.items()}
    if version == "v2.1":
        lines = [
            json.dumps({"episode_index": i, "tasks": ["test"], "length": n}) for i, n in episodes.items()
        ]
        (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
        for i, content in contents.items():
            data = root / f"data/chunk-000/episode_{i:06d}.parquet"
            data.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(_table(content, i), data)
            write_video(root / f"videos/chunk-000/{CAMERA}/episode_{i:06d}.mp4", content["frames"])
        return root
    tables, rows, start = [], [], 0
    for i, content in contents.items():
        n = len(content["state"])
        tables.append(_table(content, i, start))
        rows.append(
            {
                "episode_index": i,
                "length": n,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": start,
                "dataset_to_index": start + n,
                f"videos/{CAMERA}/chunk_index": 0,
                f"videos/{CAMERA}/file_index": 0,
                f"videos/{CAMERA}/from_timestamp": start / FPS,
                f"videos/{CAMERA}/to_timestamp": (start + n) / FPS,
            }
        )
        start += n
    data = root / "data/chunk-000/file-000.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), data)
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    meta.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), meta)
    frames = np.concatenate([c["frames"] for c in contents.values()])
    write_video(root / f"videos/{CAMERA}/chunk-000/file-000.mp4", frames)
    return root
