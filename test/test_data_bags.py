"""read_bag on bags written here with rosbags' Writer (mcap and sqlite3)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from astra_ros.data.bags import DEFAULT_TOPICS, BagError, read_bag

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
NAMES = ("j1", "j2", "j3")
S = 1_000_000_000


def header(t_ns: int) -> object:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=t_ns // S, nanosec=t_ns % S), frame_id="camera"
    )


def image(
    t_ns: int, value: int, size: tuple[int, int] = (8, 12), encoding: str = "rgb8", cut: int = 0
) -> object:
    h, w = size
    data = np.full(h * w * 3, value % 256, np.uint8)
    return T["sensor_msgs/msg/Image"](
        header=header(t_ns),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * 3,
        data=data[: data.size - cut],
    )


def joint_state(t_ns: int, vel: Iterable[float], names: tuple[str, ...] = NAMES) -> object:
    return T["sensor_msgs/msg/JointState"](
        header=header(t_ns),
        name=list(names),
        position=np.zeros(0),
        velocity=np.asarray(list(vel), np.float64),
        effort=np.zeros(0),
    )


def write_bag(
    path: Path,
    images: list[tuple[int, object]],
    commands: list[tuple[int, object]],
    storage: str = "mcap",
    command_type: str = "sensor_msgs/msg/JointState",
    command_topic: str = "/joint_commands",
    image_topic: str = "/camera/image_raw",
) -> Path:
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        ci = w.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=TS)
        cc = w.add_connection(command_topic, command_type, typestore=TS)
        msgs = [(t, ci, m, "sensor_msgs/msg/Image") for t, m in images]
        msgs += [(t, cc, m, command_type) for t, m in commands]
        for t, conn, m, typ in sorted(msgs, key=lambda x: x[0]):
            w.write(conn, t, TS.serialize_cdr(m, typ))
    return path


def ms(x: float) -> int:
    return int(round(x * 1e6))


def standard_bag(path: Path, storage: str = "mcap") -> Path:
    """Commands every 100 ms from t=1.0 s to 2.0 s (value = index), images every 50 ms from 0.95 s,
    an image at 2.40 s (stale: last command at 2.0 s), then a second run after a 3 s gap."""
    cmds = [(ms(1000 + 100 * i), joint_state(ms(1000 + 100 * i), [i, 10 * i, -i])) for i in range(11)]
    cmds += [(ms(5000 + 100 * i), joint_state(ms(5000 + 100 * i), [50 + i, 0, 0])) for i in range(6)]
    imgs = [(ms(950 + 50 * i), image(ms(950 + 50 * i), i)) for i in range(22)]  # 0.95 .. 2.00
    imgs.append((ms(2400), image(ms(2400), 99)))
    imgs += [(ms(5020 + 50 * i), image(ms(5020 + 50 * i), 100 + i)) for i in range(10)]  # 5.02 .. 5.47
    return write_bag(path, imgs, cmds, storage=storage)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_zero_order_hold_staleness_and_episode_split(tmp_path: Path, storage: str) -> None:
    episodes, report = read_bag(standard_bag(tmp_path / "bag", storage), size=4)
    assert report.images == 33 and report.commands == 17
    assert report.drops["no_command"] == 1  # 0.95 s, before the first command
    assert report.drops["stale_command"] == 1  # 2.40 s, 0.4 s after the last command
    assert report.episodes == 2 and [len(e) for e in episodes] == [21, 10]
    assert report.frames_kept == 31
    assert report.frame_period == pytest.approx(0.05)
    first = episodes[0]
    assert first.frames.shape == (21, 4, 4, 3) and first.frames.dtype == np.uint8
    assert first.joint_names == NAMES and first.modality == "joint_velocity"
    # image at 1.00 + 0.05 k holds command floor(k / 2) (stamp <= image stamp)
    np.testing.assert_array_equal(first.commands[:, 0], [k // 2 for k in range(21)])
    np.testing.assert_array_equal(first.commands[:, 1], [10 * (k // 2) for k in range(21)])
    np.testing.assert_array_equal(first.frames[:, 0, 0, 0], np.arange(1, 22))
    assert first.stamps[0] == ms(1000) and first.stamps.dtype == np.int64
    np.testing.assert_array_equal(episodes[1].commands[:, 0], 50 + (np.arange(10) * 50 + 20) // 100)
    assert "dropped 2" in report.summary() and "stale_command 1" in report.summary()


def test_staleness_threshold_is_configurable(tmp_path: Path) -> None:
    _, report = read_bag(standard_bag(tmp_path / "bag"), size=4, max_staleness=0.5)
    assert report.drops["stale_command"] == 0
    assert report.episodes == 2  # the 2.40 s frame joins the first episode (0.40 s gap < 0.5 s)
    episodes, report = read_bag(standard_bag(tmp_path / "bag2"), size=4, episode_gap=0.3, max_staleness=0.5)
    assert report.episodes == 2 and report.drops["short_episode"] == 1  # the lone 2.40 s frame


def test_joint_name_order_and_mismatch(tmp_path: Path) -> None:
    cmds = [(ms(1000), joint_state(ms(1000), [1, 2, 3]))]
    cmds.append((ms(1100), joint_state(ms(1100), [30, 10, 20], names=("j3", "j1", "j2"))))
    imgs = [(ms(1000 + 50 * i), image(ms(1000 + 50 * i), i)) for i in range(4)]
    bag = write_bag(tmp_path / "bag", imgs, cmds)
    episodes, _ = read_bag(bag, size=4)
    np.testing.assert_array_equal(episodes[0].commands, [[1, 2, 3], [1, 2, 3], [10, 20, 30], [10, 20, 30]])
    episodes, _ = read_bag(bag, size=4, joint_names=["j2", "j1"])
    np.testing.assert_array_equal(episodes[0].commands[-1], [20, 10])
    assert episodes[0].joint_names == ("j2", "j1")
    cmds.append((ms(1120), joint_state(ms(1120), [1, 2], names=("j1", "jx"))))
    with pytest.raises(BagError, match=r"/joint_commands.*\['j1', 'jx'\]"):
        read_bag(write_bag(tmp_path / "bad", imgs, cmds), size=4)


def test_twist_and_twist_stamped(tmp_path: Path) -> None:
    V3 = T["geometry_msgs/msg/Vector3"]
    tw = T["geometry_msgs/msg/Twist"](linear=V3(x=0.5, y=0, z=0), angular=V3(x=0, y=0, z=-0.25))
    imgs = [(ms(1000 + 60 * i), image(ms(1000 + 60 * i), i)) for i in range(5)]
    bag = write_bag(
        tmp_path / "tw",
        imgs,
        [(ms(990), tw)],
        command_type="geometry_msgs/msg/Twist",
        command_topic="/cmd_vel",
    )
    episodes, report = read_bag(bag, modality="twist", size=4, max_staleness=1.0)
    assert report.command_topic == DEFAULT_TOPICS["twist"]
    np.testing.assert_array_equal(episodes[0].commands[0], [0.5, 0, 0, 0, 0, -0.25])
    ts = T["geometry_msgs/msg/TwistStamped"](header=header(ms(990)), twist=tw)
    bag = write_bag(
        tmp_path / "ts",
        imgs,
        [(ms(990), ts)],
        command_type="geometry_msgs/msg/TwistStamped",
        command_topic="/cmd_vel",
    )
    episodes, _ = read_bag(bag, modality="twist", size=4, max_staleness=1.0)
    assert len(episodes[0]) == 5 and episodes[0].commands.shape == (5, 6)


def test_zero_header_stamp_falls_back_to_bag_time(tmp_path: Path) -> None:
    imgs = [(ms(1000 + 50 * i), image(0 if i == 2 else ms(1000 + 50 * i), i)) for i in range(4)]
    bag = write_bag(tmp_path / "bag", imgs, [(ms(1000), joint_state(ms(1000), [1, 1, 1]))])
    episodes, report = read_bag(bag, size=4)
    assert report.stamp_fallbacks == 1
    assert episodes[0].stamps[2] == ms(1100)


def test_missing_image_topic(tmp_path: Path) -> None:
    bag = write_bag(
        tmp_path / "bag", [], [(ms(1000), joint_state(ms(1000), [1, 1, 1]))], image_topic="/other/image"
    )
    with pytest.raises(BagError, match=r"topic /camera/image_raw: no image topic.*/other/image"):
        read_bag(bag)
    with pytest.raises(BagError, match="image topic has no messages"):
        read_bag(bag, image_topic="/other/image")


def test_unknown_encoding_names_topic_and_encoding(tmp_path: Path) -> None:
    imgs = [(ms(1000), image(ms(1000), 1, encoding="foo"))]
    bag = write_bag(tmp_path / "bag", imgs, [(ms(1000), joint_state(ms(1000), [1, 1, 1]))])
    with pytest.raises(BagError, match=r"/camera/image_raw.*encoding='foo'.*not supported"):
        read_bag(bag)


def test_data_length_mismatch(tmp_path: Path) -> None:
    imgs = [(ms(1000), image(ms(1000), 1)), (ms(1050), image(ms(1050), 1, cut=5))]
    bag = write_bag(tmp_path / "bag", imgs, [(ms(1000), joint_state(ms(1000), [1, 1, 1]))])
    with pytest.raises(BagError, match=r"/camera/image_raw: image message #1.*data length=283.*expected 288"):
        read_bag(bag)


def test_size_change_is_an_error(tmp_path: Path) -> None:
    imgs = [(ms(1000), image(ms(1000), 1)), (ms(1050), image(ms(1050), 1, size=(12, 8)))]
    bag = write_bag(tmp_path / "bag", imgs, [(ms(1000), joint_state(ms(1000), [1, 1, 1]))])
    with pytest.raises(BagError, match=r"image message #1.*8x12; expected 12x8"):
        read_bag(bag)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag(tmp_path: Path, storage: str) -> None:
    bag = standard_bag(tmp_path / "bag", storage)
    (storage_file,) = [p for p in bag.iterdir() if p.name != "metadata.yaml"]
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match=r"bag .*bag.*(truncated|corrupt)"):
        read_bag(bag, size=4)


def test_missing_path_and_bad_modality(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        read_bag(tmp_path / "nope")
    with pytest.raises(BagError, match="modality='discrete'"):
        read_bag(tmp_path / "nope", modality="discrete")
