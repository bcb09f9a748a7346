"""read_bag on bags written here with rosbags' Writer (mcap and sqlite3)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from astra_ros.data.bags import DEFAULT_TOPICS, BagError, read_bag
from astra_ros.data.pairing import DEFAULT_POLICY, STALENESS_S, CommandBuffer

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
def test_interval_mean_staleness_and_episode_split(tmp_path: Path, storage: str) -> None:
    episodes, report = read_bag(standard_bag(tmp_path / "bag", storage), size=4)
    assert report.images == 33 and report.commands == 17
    assert sum(report.drops.values()) == 0  # the default policy (zero) keeps every frame
    assert report.fills["missing_command"] == 1  # 0.95 s: no command during [0.95, 1.00)
    assert report.fills["stale_command"] == 0  # 2.00 -> 2.40 s: the 2.0 s command is 0.45 s old at most
    assert report.episodes == 2 and [len(e) for e in episodes] == [23, 10]
    assert report.frame_period == pytest.approx(0.05)
    first = episodes[0]
    assert first.frames.shape == (23, 4, 4, 3) and first.frames.dtype == np.uint8
    assert first.joint_names == NAMES and first.modality == "joint_velocity"
    assert first.states is None and first.segmentation is None  # not recorded in this bag
    # frame 1.00 + 0.05 k: [t, t + 0.05) lies inside command floor(k / 2)'s 100 ms
    np.testing.assert_array_equal(first.commands[:22, 0], [0] + [k // 2 for k in range(21)])
    np.testing.assert_array_equal(first.commands[:22, 1], [0] + [10 * (k // 2) for k in range(21)])
    assert first.commands[22, 0] == 10  # the last frame: one frame period from 2.40 s
    np.testing.assert_array_equal(first.frames[:, 0, 0, 0], [*range(22), 99])
    assert first.stamps[0] == ms(950) and first.stamps.dtype == np.int64
    # 5.02 + 0.05 k: the commands at 5.0 + 0.1 j split some intervals 30/20 ms
    # 5.02 + 0.05 k: the commands at 5.0 + 0.1 j split every other interval 30/20 ms
    expected = [50, 50.4, 51, 51.4, 52, 52.4, 53, 53.4, 54, 54.4]
    np.testing.assert_allclose(episodes[1].commands[:, 0], expected, rtol=1e-6)
    assert "filled by the stale-command policy: missing_command 1" in report.summary()


def test_staleness_limit_and_policies(tmp_path: Path) -> None:
    episodes, report = read_bag(standard_bag(tmp_path / "bag"), size=4, max_staleness=0.25)
    assert report.fills["stale_command"] == 2 and report.episodes == 2
    # 2.00 s: the 2.0 s command (10) is in force for 0.25 of the 0.40 s to the next frame, then zero
    assert episodes[0].commands[21, 0] == pytest.approx(10 * 0.25 / 0.40)
    assert episodes[0].commands[22, 0] == 0
    episodes, report = read_bag(tmp_path / "bag", size=4, max_staleness=0.25, stale_policy="hold")
    assert episodes[0].commands[21, 0] == 10 and episodes[0].commands[22, 0] == 10
    episodes, report = read_bag(tmp_path / "bag", size=4, max_staleness=0.25, stale_policy="skip")
    assert report.drops["missing_command"] == 1 and report.drops["stale_command"] == 2
    assert [len(e) for e in episodes] == [20, 10] and episodes[0].stamps[0] == ms(1000)
    assert "dropped 3" in report.summary()
    _, report = read_bag(tmp_path / "bag", size=4, episode_gap=0.3, stale_policy="skip")
    assert report.episodes == 2 and report.drops["short_episode"] == 1  # the lone 2.40 s frame
    with pytest.raises(BagError, match=r"stale_command_policy='drop'; expected one of \['zero'"):
        read_bag(tmp_path / "bag", stale_policy="drop")


def fast_command_bag(path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """15 Hz frames; 30 Hz commands 10 ms after a frame phase, a new value every command."""
    frame_t = 1_000_000_000 + 66_666_667 * np.arange(12)
    cmd_t = 1_010_000_000 + 33_333_333 * np.arange(24)
    values = np.stack([np.sin(0.7 * np.arange(24)), np.arange(24) % 5, -np.arange(24) * 0.1], axis=1)
    imgs = [(int(t), image(int(t), i)) for i, t in enumerate(frame_t)]
    cmds = [(int(t), joint_state(int(t), v)) for t, v in zip(cmd_t, values, strict=True)]
    return write_bag(path, imgs, cmds), frame_t, cmd_t, values.astype(np.float32)


def integrate(cmd_t: np.ndarray, values: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """Oracle: the zero-order hold sampled every microsecond over [t0, t1), zero before the first."""
    grid = np.arange(t0, t1, 1000)
    index = np.searchsorted(cmd_t, grid, side="right") - 1
    held = np.where((index >= 0)[:, None], values[np.maximum(index, 0)], 0.0)
    return held.astype(np.float64).mean(axis=0)


def test_commands_faster_than_frames_give_the_time_weighted_mean(tmp_path: Path) -> None:
    bag, frame_t, cmd_t, values = fast_command_bag(tmp_path / "fast")
    (episode,), report = read_bag(bag, size=4)
    assert len(episode) == 12 and report.fills["missing_command"] == 1  # the first 10 ms
    ends = np.append(frame_t[1:], frame_t[-1] + 66_666_667)
    for i, (t0, t1) in enumerate(zip(frame_t, ends, strict=True)):
        np.testing.assert_allclose(episode.commands[i], integrate(cmd_t, values, t0, t1), atol=1e-4)
    # by hand, frame 3: command 5 for 10 ms, command 6 for 33.3 ms, command 7 for 23.3 ms
    hand = (values[5] * 10_000_001 + values[6] * 33_333_333 + values[7] * 23_333_334) / 66_666_668
    np.testing.assert_allclose(episode.commands[3], hand, rtol=1e-5)
    assert np.abs(episode.commands[3] - values[6]).max() > 0.1  # not the command in force at the frame
    # The node's buffer, by the same rule: the interval that ended at frame i is frame i-1's action.
    buffer = CommandBuffer(3, int(STALENESS_S * 1e9), DEFAULT_POLICY, jump_ns=0)
    for t, v in zip(cmd_t, values, strict=True):
        buffer.push(int(t), v)
    for i in range(1, 12):
        paired = buffer.over(int(frame_t[i - 1]), int(frame_t[i]))
        np.testing.assert_array_equal(paired.command, episode.commands[i - 1])


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


def test_joint_states_and_segmentation_are_read_and_checked(tmp_path: Path) -> None:
    imgs = [(ms(1000 + 50 * i), image(ms(1000 + 50 * i), i)) for i in range(3)]
    cmds = [(ms(1000), joint_state(ms(1000), [1, 2, 3]))]
    seg = np.array([[0, 1, 2, 3] * 3] * 8, np.uint8)  # 12 x 8 mono8: link id + 1
    segs = [
        (
            t,
            T["sensor_msgs/msg/Image"](
                header=header(t),
                height=8,
                width=12,
                encoding="mono8",
                is_bigendian=0,
                step=12,
                data=seg.reshape(-1),
            ),
        )
        for t, _ in imgs
    ]

    def states(names: tuple[str, ...]) -> list[tuple[int, object]]:
        out = []
        for i in range(6):
            t = ms(1000 + 25 * i)
            msg = T["sensor_msgs/msg/JointState"](
                header=header(t),
                name=list(names),
                position=np.arange(len(names), dtype=np.float64) + i,
                velocity=np.zeros(0),
                effort=np.zeros(0),
            )
            out.append((t, msg))
        return out

    def bag(path: Path, names: tuple[str, ...]) -> Path:
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {
                topic: w.add_connection(topic, typ, typestore=TS)
                for topic, typ in (
                    ("/camera/image_raw", "sensor_msgs/msg/Image"),
                    ("/joint_commands", "sensor_msgs/msg/JointState"),
                    ("/joint_states", "sensor_msgs/msg/JointState"),
                    ("/camera/segmentation", "sensor_msgs/msg/Image"),
                )
            }
            msgs = [("/camera/image_raw", *m) for m in imgs] + [("/joint_commands", *m) for m in cmds]
            msgs += [("/joint_states", *m) for m in states(names)] + [
                ("/camera/segmentation", *m) for m in segs
            ]
            for topic, t, m in sorted(msgs, key=lambda x: x[1]):
                w.write(conns[topic], t, TS.serialize_cdr(m, conns[topic].msgtype))
        return path

    (episode,), report = read_bag(bag(tmp_path / "ok", ("j0", *reversed(NAMES))), size=4)
    assert report.joint_states == 6 and report.segmentations == 3
    # the state at each frame (every other message), in the command joints' order j1, j2, j3
    np.testing.assert_array_equal(episode.states.positions, [[3, 2, 1], [5, 4, 3], [7, 6, 5]])
    assert np.isnan(episode.states.velocities).all()  # none recorded: unknown, not zero
    assert episode.segmentation.shape == (3, 4, 4) and episode.segmentation.dtype == np.int8
    np.testing.assert_array_equal(episode.segmentation[0, 0], [0, -1, 2, 1])  # centre pixels 1, 4, 7, 10
    with pytest.raises(BagError, match=r"/joint_states: JointState message #0 .*missing \['j3'\]"):
        read_bag(bag(tmp_path / "bad", ("j1", "j2")), size=4)
