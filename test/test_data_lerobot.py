"""LeRobot datasets as a data source: v2.1 and v3.0 layouts, frozen frames, commands, the frame
cache, episode selection, the errors for bad datasets, and a few frames of the shared G1 data."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from lerobot_fixtures import CAMERA, JOINTS, episode_content, write_dataset, write_video

from astra_ros.data import lerobot
from astra_ros.data.images import resize_to_model
from astra_ros.data.lerobot import LeRobotError, parse_episodes, read_lerobot
from astra_ros.data.sources import add_data_arguments, detect_format, open_episodes

G1 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "g1_pick_bottle"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lerobot")
    return {v: write_dataset(base / v, v) for v in ("v2.1", "v3.0")}


def read(root: Path, **kw):
    return read_lerobot(root, size=16, cache_dir=None, progress=False, **kw)


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_reads_episodes_drops_frozen_frames_and_pairs_interval_commands(datasets, version):
    episodes, report = read(datasets[version])
    assert [e.episode for e in report.episodes] == [0, 1]
    assert [(e.rows, e.repeats, e.kept) for e in report.episodes] == [(8, 2, 6), (6, 2, 4)]
    ep = episodes[0]
    content = episode_content(0, 8)
    kept = [0, 1, 4, 5, 6, 7]  # rows 2 and 3 repeat row 1
    assert ep.modality == "joint_position" and ep.joint_names == JOINTS
    assert ep.frames.shape == (6, 16, 16, 3) and ep.frames.dtype == np.uint8
    np.testing.assert_array_equal(ep.stamps // 1_000_000, np.array(kept) * 100)  # true timing kept
    np.testing.assert_allclose(ep.states.positions, content["state"][kept])
    # frame 1's interval covers rows 1, 2 and 3: the mean target minus the state at row 1
    expected = content["action"][1:4].mean(0) - content["state"][1]
    np.testing.assert_allclose(ep.commands[1], expected, atol=1e-5)
    np.testing.assert_allclose(ep.commands[0], content["action"][0] - content["state"][0], atol=1e-6)
    assert abs(ep.commands[1, 0] - (0.05 + 0.1)) < 1e-5  # the displacement the targets ask for
    # the frames are the source frames, centre-cropped and resized (up to lossless-coding error)
    error = np.abs(
        ep.frames.astype(int) - np.stack([resize_to_model(f, 16) for f in content["frames"][kept]])
    )
    assert error.mean() < 8
    assert np.all(np.any(ep.frames[1:] != ep.frames[:-1], axis=(1, 2, 3)))  # no zero-change target left
    assert "4 frozen repeats" in report.summary() and "0:2/8" in report.summary()


def test_v2_and_v3_layouts_give_the_same_episodes(datasets):
    a, _ = read(datasets["v2.1"], frozen="keep")
    b, _ = read(datasets["v3.0"], frozen="keep")
    assert [len(e) for e in a] == [len(e) for e in b] == [8, 6]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.stamps, y.stamps)
        np.testing.assert_allclose(x.commands, y.commands)
        assert np.abs(x.frames.astype(int) - y.frames).mean() < 2  # same pixels, coded in one file


def test_keep_policy_and_frame_period(datasets):
    keep, report = read(datasets["v2.1"], frozen="keep")
    assert len(keep[0]) == 8 and report.episodes[0].zero_change == pytest.approx(2 / 7)
    slow, _ = read(datasets["v2.1"], frame_period=0.2)  # every second 10 Hz row at most
    np.testing.assert_array_equal(slow[0].stamps // 100_000_000, [0, 4, 6])  # 2, 3 are repeats


def test_the_frame_cache_is_keyed_by_file_hash_and_size(datasets, tmp_path, monkeypatch):
    first, _ = read_lerobot(datasets["v2.1"], size=16, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*_16_v*.npz"))) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(lerobot, "decode_video", no_decoding)
    again, _ = read_lerobot(datasets["v2.1"], size=16, cache_dir=tmp_path, progress=False)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another key
        read_lerobot(datasets["v2.1"], size=8, cache_dir=tmp_path, progress=False)


def test_episode_selection():
    assert parse_episodes("1-3,5, 3") == [1, 2, 3, 5]
    for bad in ("a", "3-1", "-2"):
        with pytest.raises(LeRobotError, match="--episodes"):
            parse_episodes(bad)


def test_selected_episodes_and_absent_ones_are_reported(datasets):
    episodes, report = read(datasets["v2.1"], episodes=[1, 7])
    assert [e.episode for e in report.episodes] == [1] and report.absent == [7]
    assert "not in the dataset: [7]" in report.summary()
    with pytest.raises(LeRobotError, match=r"none of the selected episodes \[7\]"):
        read(datasets["v2.1"], episodes=[7])


def copy_of(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / "copy"))


def test_errors_name_the_file_and_episode(datasets, tmp_path, monkeypatch):
    root = copy_of(datasets["v2.1"], tmp_path)
    video = root / f"videos/chunk-000/{CAMERA}/episode_000001.mp4"
    data = root / "data/chunk-000/episode_000001.parquet"
    with pytest.raises(LeRobotError, match="episode 0: 6 frames after frame selection .* at least 7"):
        read(root, min_frames=7)
    write_video(video, episode_content(1, 6)["frames"][:5])
    with pytest.raises(LeRobotError, match=r"episode 1: video .*episode_000001.mp4 has 5 frames for 6 rows"):
        read(root)
    video.unlink()
    with pytest.raises(LeRobotError, match=r"episode 1: video .*episode_000001.mp4 is missing"):
        read(root)
    write_video(video, episode_content(1, 6)["frames"])
    table = pq.read_table(data)
    action = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    action[3, 1] = np.nan
    table = table.set_column(table.column_names.index("action"), "action", [list(action)])
    pq.write_table(table.cast(pq.read_schema(data)), data)
    with pytest.raises(
        LeRobotError, match=r"episode 1: .*episode_000001.parquet column 'action' has NaN .* row 3"
    ):
        read(root)
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"h264"})
    with pytest.raises(LeRobotError, match=r"episode 0: .*episode_000000.mp4 is encoded with 'h264'"):
        read(root)


def test_bad_keys_and_versions(datasets, tmp_path):
    with pytest.raises(LeRobotError, match="camera 'nope' is not a video feature"):
        read(datasets["v2.1"], camera="nope")
    with pytest.raises(LeRobotError, match="no feature 'observation.velocity'"):
        read(datasets["v2.1"], state_key="observation.velocity")
    root = copy_of(datasets["v2.1"], tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(LeRobotError, match="codebase_version='v1.6'; expected 'v2.1' or 'v3.0'"):
        read(root)


def test_data_arguments_open_lerobot_roots(datasets, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    args = parser.parse_args(
        ["--data", str(datasets["v3.0"]), "--episodes", "1", "--cache-dir", str(tmp_path)]
    )
    episodes, reports = open_episodes(args, 16, progress=False)
    assert len(episodes) == 1 and reports[0]["format"] == "lerobot v3.0" and reports[0]["repeats"] == 2
    assert "Repeats per episode: 1:2/6" in capsys.readouterr().err
    assert detect_format(str(datasets["v2.1"])) == "lerobot"
    with pytest.raises(ValueError, match="neither meta/info.json"):
        detect_format(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        detect_format(str(tmp_path / "nope"))


def test_reads_the_shared_g1_data():
    episodes, report = read_lerobot(
        G1, episodes=[1], size=16, cache_dir=None, progress=False, frame_period=1 / 15
    )
    (ep,) = episodes
    assert report.version == "v2.1" and report.camera == "observation.images.cam_high"
    assert report.episodes[0].rows == 393 and report.episodes[0].repeats > 50  # the 15 Hz stretches
    assert len(ep.joint_names) == 26 and ep.joint_names[0] == "kLeftShoulderPitch"
    assert ep.commands.shape == (len(ep), 26) and np.isfinite(ep.commands).all()
    assert 150 < len(ep) <= 197 and np.median(np.diff(ep.stamps)) == pytest.approx(66_666_667, abs=1e5)


def test_train_and_eval_take_a_lerobot_root(datasets, tmp_path):
    import torch

    from astra_ros.evaluation.evaluate import main as eval_main
    from astra_ros.model.checkpoint import load_checkpoint
    from astra_ros.training.train import main as train_main

    data = ["--data", str(datasets["v2.1"]), "--cache-dir", str(tmp_path / "cache")]
    tiny = [
        "--preset",
        "tiny",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--val-fraction",
        "0",
        "--precision",
        "fp32",
    ]
    # the tiny preset trains on windows of 5 frames: episode 1 keeps only 4 once its repeats are dropped
    assert train_main([*data, *tiny, "--out", str(tmp_path / "short")]) == 2
    torch.set_num_threads(1)
    assert train_main([*data, "--frozen", "keep", *tiny, "--out", str(tmp_path / "run")]) == 0
    model = load_checkpoint(tmp_path / "run" / "model.pt")
    assert model.meta["modalities"] == ["joint_position"] and model.meta["joint_names"] == list(JOINTS)
    assert model.meta["data"][0]["per_episode"][0]["repeats"] == 2
    window = ["--context", "2", "--horizon", "2", "--no-progress"]
    assert (
        eval_main(
            ["--model", str(tmp_path / "run" / "model.pt"), *data, *window, "--out", str(tmp_path / "e")]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["modality"] == "joint_position" and metrics["windows"] > 0
    assert len(metrics["model"]["psnr"]) == 2 and len(metrics["shuffled_commands"]["psnr"]) == 2


def test_imagine_takes_joint_position_candidates_in_any_joint_order():
    from types import SimpleNamespace

    from astra_ros.ros.conversions import InputError, imagine_actions

    actions = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)  # 1 candidate, 2 steps, 3 joints
    request = SimpleNamespace(
        modality="joint_position", num_candidates=1, horizon=2, action_dim=3,
        actions=actions.reshape(-1).tolist(), joint_names=["j2", "j0", "j1"],
    )  # fmt: skip
    out = imagine_actions(request, ("joint_position",), JOINTS, 8)
    np.testing.assert_allclose(out[0], actions[:, [1, 2, 0]])
    with pytest.raises(InputError, match="expected one of \\['joint_velocity'\\]"):
        imagine_actions(request, ("joint_velocity",), JOINTS, 8)
