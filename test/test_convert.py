"""astra-convert: LeRobot datasets to real rosbag2 bags, read back with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lerobot_fixtures import JOINTS, episode_content, write_dataset
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from astra_ros.data.convert import convert, main
from astra_ros.data.images import image_message_to_rgb
from astra_ros.data.lerobot import LeRobotError

G1 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "g1_pick_bottle"


def read_back(bag: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(header stamp or bag time ns, message)], in bag order."""
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            head = getattr(msg, "header", msg if conn.msgtype == "std_msgs/msg/Header" else None)
            stamp = t if head is None else head.stamp.sec * 1_000_000_000 + head.stamp.nanosec
            out.setdefault(conn.topic, []).append((stamp, msg))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("lerobot") / "v3", "v3.0")


def test_raw_images_joint_states_and_trajectories_at_the_dataset_stamps(dataset, tmp_path):
    report = convert(dataset, tmp_path / "bag", image="raw", progress=False)
    assert report.episodes == [0, 1] and report.rows == 14 and report.frozen == 4 and report.images == 10
    assert "storage_identifier: mcap" in (tmp_path / "bag" / "metadata.yaml").read_text()
    topics = read_back(tmp_path / "bag")
    assert sorted(topics) == ["/camera/image_raw", "/joint_states", "/joint_trajectory"]
    states = topics["/joint_states"]
    assert len(states) == 14 and len(topics["/joint_trajectory"]) == 14
    first, second = episode_content(0, 8), episode_content(1, 6)
    stamps = [s for s, _ in states]
    np.testing.assert_array_equal(stamps[:8], 1_000_000_000 + np.arange(8) * 100_000_000)
    assert stamps[8] == stamps[7] + 1_000_000_000  # the next episode starts --episode-gap later
    np.testing.assert_allclose(states[9][1].position, second["state"][1], rtol=1e-6)
    assert list(states[0][1].name) == list(JOINTS)
    trajectory = topics["/joint_trajectory"][3][1]
    assert list(trajectory.joint_names) == list(JOINTS)
    np.testing.assert_allclose(trajectory.points[0].positions, first["action"][3], rtol=1e-6)
    images = topics["/camera/image_raw"]
    image_stamps = [s for s, _ in images[:6]]
    assert image_stamps == [stamps[i] for i in (0, 1, 4, 5, 6, 7)]  # rows 2 and 3 are frozen: dropped
    rgb = image_message_to_rgb(images[2][1])
    assert rgb.shape == (32, 32, 3) and np.abs(rgb.astype(int) - first["frames"][4]).mean() < 8


def test_compressed_images_flagged_frozen_frames_and_forward_commands(dataset, tmp_path):
    rc = main(
        [str(dataset), str(tmp_path / "bag"), "--episodes", "1", "--frozen", "flag", "--commands", "array"]
        + ["--size", "16", "--storage", "sqlite3", "--no-progress"]
    )
    assert rc == 0
    assert "storage_identifier: sqlite3" in (tmp_path / "bag" / "metadata.yaml").read_text()
    topics = read_back(tmp_path / "bag")
    assert len(topics["/camera/image_raw/compressed"]) == 6  # flagged frames are still written
    frozen = [s for s, _ in topics["/camera/frozen"]]
    stamps = [s for s, _ in topics["/camera/image_raw/compressed"]]
    assert frozen == stamps[2:4]
    assert image_message_to_rgb(topics["/camera/image_raw/compressed"][0][1]).shape == (16, 16, 3)
    commands = topics["/position_controller/commands"]
    np.testing.assert_allclose(commands[5][1].data, episode_content(1, 6)["action"][5], rtol=1e-6)


def test_errors_exit_2_with_the_problem(dataset, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main([str(dataset), str(tmp_path / "taken"), "--no-progress"]) == 2
    assert "exists; expected a new bag directory" in capsys.readouterr().err
    assert main([str(tmp_path), str(tmp_path / "b"), "--no-progress"]) == 2
    assert "no meta/info.json" in capsys.readouterr().err
    with pytest.raises(LeRobotError, match=r"none of the selected episodes \[5\]"):
        convert(dataset, tmp_path / "c", episodes=[5], progress=False)


def test_converts_a_shared_g1_episode(tmp_path):
    report = convert(G1, tmp_path / "g1", episodes=[1], size=16, image="raw", progress=False)
    assert report.rows == 393 and 50 < report.frozen < 200 and report.images == 393 - report.frozen
    topics = read_back(tmp_path / "g1")
    assert len(topics["/joint_states"][0][1].position) == 26
    assert topics["/joint_trajectory"][0][1].joint_names[0] == "kLeftShoulderPitch"
