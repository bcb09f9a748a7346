"""astra-record-sim: real rosbag2 output, determinism, motion, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from astra_ros.data.bags import read_bag
from astra_ros.data.record_sim import START_NS, main, record
from astra_ros.sim.kuka import JOINT_NAMES as KUKA_JOINTS


def read_all(bag: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        out["types"] = types  # type: ignore[assignment]
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


@pytest.fixture(scope="module")
def kuka_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "kuka"
    args = "--env kuka --episodes 2 --steps 30 --seed 3 --size 32 --quiet --out".split()
    assert main([*args, str(out)]) == 0  # through the command line once
    return out


def test_kuka_bag_topics_types_names_and_stamps(kuka_bag: Path) -> None:
    assert (kuka_bag / "metadata.yaml").is_file() and (kuka_bag / "kuka.mcap").is_file()
    msgs = read_all(kuka_bag)
    assert msgs["types"] == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/segmentation": "sensor_msgs/msg/Image",
        "/joint_commands": "sensor_msgs/msg/JointState",
        "/joint_states": "sensor_msgs/msg/JointState",
    }
    images, cmds, states = msgs["/camera/image_raw"], msgs["/joint_commands"], msgs["/joint_states"]
    assert len(images) == 60 and len(cmds) == 120 and len(states) == 120  # 15 Hz camera, 30 Hz
    first = images[0][1]
    assert (first.height, first.width, first.encoding, first.step) == (32, 32, "rgb8", 96)
    seg = msgs["/camera/segmentation"][0][1]
    assert (seg.height, seg.width, seg.encoding, seg.step) == (32, 32, "mono8", 32)
    assert [t for t, _ in msgs["/camera/segmentation"]] == [t for t, _ in images]
    assert set(np.unique(seg.data)) <= set(range(9)) and len(np.unique(seg.data)) >= 4  # none + links
    assert tuple(cmds[0][1].name) == KUKA_JOINTS and len(cmds[0][1].velocity) == 7
    # /joint_states: the state each command is applied from; positions integrate the commands
    assert [t for t, _ in states] == [t for t, _ in cmds] and tuple(states[0][1].name) == KUKA_JOINTS
    q = np.stack([m.position for _, m in states[:60]])
    v = np.stack([m.velocity for _, m in states[:60]])
    np.testing.assert_allclose(v[0], 0.0)  # each episode starts at rest
    commanded = np.stack([m.velocity for _, m in cmds[:59]])
    np.testing.assert_allclose(np.diff(q, axis=0), commanded / 30, atol=0.02)
    # simulated time: header stamp == bag time, starts at START_NS, 1/15 s apart, 2 s between episodes
    stamps = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in images])
    np.testing.assert_array_equal(stamps, [t for t, _ in images])
    assert stamps[0] == START_NS
    gaps = np.diff(stamps) / 1e9
    np.testing.assert_allclose(gaps[:29], 1 / 15, atol=1e-6)
    assert gaps[29] == pytest.approx(2.0 + 1 / 15, abs=1e-6)
    episodes, report = read_bag(kuka_bag, size=32)
    assert report.episodes == 2 and report.frames_kept == 60 and sum(report.drops.values()) == 0
    assert episodes[0].joint_names == KUKA_JOINTS
    assert np.abs(np.concatenate([e.commands for e in episodes])).max() > 0.5


def raw_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with AnyReader([bag]) as reader:
        return [(conn.topic, t, bytes(raw)) for conn, t, raw in reader.messages()]


def test_kuka_is_deterministic(tmp_path: Path, kuka_bag: Path) -> None:
    (tmp_path / "a").mkdir()
    again = tmp_path / "a" / "kuka"
    record("kuka", 2, 30, 3, again, size=32, progress=False)
    first, second = raw_messages(kuka_bag), raw_messages(again)
    assert len(first) == len(second) == 60 * 2 + 120 * 2
    for a, b in zip(first, second, strict=True):
        assert a == b, f"message {a[0]} at {a[1]} ns differs"
    assert (again / "kuka.mcap").read_bytes() == (kuka_bag / "kuka.mcap").read_bytes()
    other = tmp_path / "other"
    record("kuka", 2, 30, 4, other, size=32, progress=False)
    a, _ = read_bag(kuka_bag, size=32)
    b, _ = read_bag(other, size=32)
    assert not np.array_equal(a[0].frames, b[0].frames)


def test_kuka_has_motion_beyond_copy_last(tmp_path: Path) -> None:
    out = tmp_path / "motion"
    record("kuka", 3, 40, 0, out, size=64, progress=False)
    episodes, _ = read_bag(out)
    f = np.stack([e.frames for e in episodes]).astype(np.float32) / 255.0
    mad1 = np.abs(f[:, 1:] - f[:, :-1]).mean()
    mad8 = np.abs(f[:, 8:] - f[:, :-8]).mean()
    assert mad1 > 0.002  # the arm moves every frame on average
    assert mad8 > 2.0 * mad1, (mad1, mad8)  # copy-last over 8 frames is clearly worse than over 1


def test_carracing_bag(tmp_path: Path) -> None:
    out = tmp_path / "car"
    stats = record("carracing", 1, 12, 0, out, storage="sqlite3", size=32, progress=False)
    assert stats.frames == 12 and (out / "car.db3").is_file()
    msgs = read_all(out)
    assert msgs["types"] == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/cmd_vel": "geometry_msgs/msg/Twist",
    }
    episodes, report = read_bag(out, modality="twist", size=32)
    assert report.frames_kept == 12 and episodes[0].commands.shape == (12, 6)
    c = np.concatenate([e.commands for e in episodes])
    assert np.all(np.abs(c[:, 0]) <= 1) and np.all(c[:, [1, 2, 3, 4]] == 0)
    assert report.frame_period == pytest.approx(0.06)


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env", "mujoco", "--out", str(tmp_path / "x")]) == 2
    assert "invalid choice: 'mujoco'" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert main(["--env", "kuka", "--out", str(tmp_path / "exists"), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["--env", "kuka", "--out", str(tmp_path / "no" / "such" / "dir"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--env", "kuka", "--steps", "0", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "--steps=0" in capsys.readouterr().err
