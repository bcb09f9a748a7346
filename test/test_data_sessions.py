"""Recording sessions (image signatures, boundaries) and the held-out protocol files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from astra_ros.data.lerobot import LeRobotMeta, parse_episodes
from astra_ros.data.sessions import best_shift, boundaries, novelty, signatures
from astra_ros.data.splits import ProtocolError, format_episodes, load_protocol, main

REPO = Path(__file__).resolve().parents[1]
G1 = REPO.parent / "shared" / "data" / "g1_pick_bottle"
G1_PROTOCOL = REPO / "config" / "splits" / "g1_pick_bottle.yaml"
SIZE = 48


def scene(seed: int) -> np.ndarray:
    """A static background, (SIZE + 16)^2, with structure at several scales."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    fine = rng.integers(0, 60, (SIZE + 16, SIZE + 16, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1) + fine


def recording(background: np.ndarray, dy: int, dx: int, seed: int, n: int = 10) -> np.ndarray:
    """An episode: the camera's view of ``background`` at offset (dy, dx), with an 'arm' (a dark
    block) moving through the lower half and an object placed at a per-episode spot."""
    view = background[8 + dy : 8 + dy + SIZE, 8 + dx : 8 + dx + SIZE]
    frames = np.repeat(view[None], n, axis=0).copy()
    rng = np.random.default_rng(seed)
    oy, ox = rng.integers(24, 36), rng.integers(4, 40)
    frames[:, oy : oy + 6, ox : ox + 6] = (250, 200, 40)
    for t in range(n):
        frames[t, 30:40, 2 + 4 * t : 10 + 4 * t] = 30
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_best_shift_recovers_a_camera_offset():
    background = scene(0)[..., 0]
    reference = background[8 : 8 + SIZE, 8 : 8 + SIZE]
    moved = background[8 + 3 : 8 + 3 + SIZE, 8 - 5 : 8 - 5 + SIZE]
    dy, dx, corr = best_shift(moved, reference, 8)
    assert (dy, dx) == (-3, 5) and corr > 0.99


def test_novelty_peaks_at_a_block_boundary():
    sim = np.full((9, 9), 0.2)
    sim[:5, :5] = sim[5:, 5:] = 0.9
    scores = novelty(sim, 3)
    assert int(np.argmax(scores)) + 1 == 5 and scores.max() == pytest.approx(0.7)
    assert np.all(np.delete(scores, 4) < scores.max())


def test_sessions_are_found_where_the_camera_and_the_scene_change():
    first, second = scene(1), scene(2)
    second[: 8 + 20] = scene(3)[: 8 + 20]  # what stands beyond the table changed; the table did not
    second[20:] = first[20:]
    eps = [recording(first, 0, 0, seed=s) for s in range(5)]
    eps += [recording(second, 4, -3, seed=10 + s) for s in range(5)]
    ids = list(range(20, 30))
    signs, medians, similarity = signatures(eps, ids, reference=3, max_shift=6)
    assert medians.shape == (10, SIZE, SIZE, 3) and similarity.shape == (10, 10)
    assert boundaries(signs) == [5]
    assert {tuple(s.camera_offset) for s in signs[5:]} == {(0, 0)}  # the reference session
    assert {tuple(s.camera_offset) for s in signs[:5]} == {(4, -3)}
    assert [s.episode for s in signs] == ids and signs[0].first_corr == 1.0
    # objects placed elsewhere in each episode, same camera and scene: one session
    placed = [recording(first, 0, 0, seed=s) for s in range(10)]
    assert boundaries(signatures(placed, ids, reference=3, max_shift=6)[0]) == []


def test_format_episodes_inverts_parse_episodes():
    for text in ("1-2,4-5,7-8,10-17", "4,11,16,21", "0-40", "3"):
        assert format_episodes(parse_episodes(text)) == text
    assert format_episodes([5, 1, 2, 2, 3]) == "1-3,5"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text(text)
    return path


def test_protocol_errors_name_the_problem(tmp_path):
    base = "episodes: 0-9\nsessions: {A: 0-4, B: 5-9}\n"
    with pytest.raises(ProtocolError, match="held out by both later and near"):
        load_protocol(write(tmp_path, base + "heldout: {later: 5-9, near: '2,5'}\n"))
    with pytest.raises(ProtocolError, match=r"takes part of session\(s\) \['B'\]"):
        load_protocol(write(tmp_path, base + "heldout: {later: 7-9}\nwhole_sessions: [later]\n"))
    with pytest.raises(ProtocolError, match="do not cover episodes 0-9"):
        load_protocol(write(tmp_path, "episodes: 0-9\nsessions: {A: 0-3, B: 5-9}\nheldout: {}\n"))
    with pytest.raises(ProtocolError, match=r"outside episodes 0-9"):
        load_protocol(write(tmp_path, base + "heldout: {later: 8-12}\n"))
    text = base + "heldout: {later: 5-9, near: '2'}\nwhole_sessions: [later]\n"
    protocol = load_protocol(write(tmp_path, text))
    assert protocol.train == (0, 1, 3, 4) and protocol.session_of(7) == "B"
    with pytest.raises(ProtocolError, match="no split 'test'"):
        protocol.select("test")


def test_the_g1_protocol_holds_out_the_latest_session_and_trains_on_the_rest(capsys):
    protocol = load_protocol(G1_PROTOCOL)
    last = list(protocol.sessions)[-1]
    assert set(protocol.heldout["later"]) == set(protocol.sessions[last])
    meta = LeRobotMeta.open(G1)
    present = {i for i in meta.episodes if meta.data_file(i).is_file()}
    later = present & set(protocol.heldout["later"])
    neighbour = present & set(protocol.heldout["neighbour"])
    train = present & set(protocol.train)
    assert len(later) >= 5 and len(neighbour) >= 3
    assert train | later | neighbour == present  # every present episode has a role
    # each neighbouring episode has a training episode of its own session on both sides
    for i in neighbour:
        session = protocol.sessions[protocol.session_of(i)]
        assert any(j < i and j in train for j in session) and any(j > i and j in train for j in session)
    # the committed measurement found the same sessions
    measured = json.loads((REPO / "docs" / "results" / "g1_sessions.json").read_text())["sessions"]
    assert [parse_episodes(s) for s in measured] == [
        sorted(present & set(ids)) for ids in protocol.sessions.values()
    ]
    assert main([str(G1_PROTOCOL), "later"]) == 0
    assert capsys.readouterr().out.strip() == format_episodes(protocol.heldout["later"])


def test_the_command_line_writes_signatures_and_a_plot(tmp_path):
    from lerobot_fixtures import write_dataset

    from astra_ros.data.sessions import main as sessions_main

    root = write_dataset(tmp_path / "lerobot", episodes={0: 8, 1: 8, 2: 8, 3: 8})
    out = tmp_path / "out"
    argv = ["--data", str(root), "--cache-dir", str(tmp_path / "c"), "--size", "32"]
    assert sessions_main([*argv, "--json", str(out / "s.json"), "--plot", str(out / "s.png")]) == 0
    result = json.loads((out / "s.json").read_text())
    assert [e["episode"] for e in result["episodes"]] == [0, 1, 2, 3]
    assert [i for text in result["sessions"] for i in parse_episodes(text)] == [0, 1, 2, 3]
    assert (out / "s.png").stat().st_size > 0
