"""astra_ros/msg/PredictedFrames round-trips between two real processes over DDS (loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from astra_ros.ros.isolation import isolate_ros

HERE = Path(__file__).resolve().parent
PEER = HERE / "dds_peer.py"
TIMEOUT = 60.0


def _deserialize(data: bytes):
    from rclpy.serialization import deserialize_message

    from astra_ros.msg import PredictedFrames

    return deserialize_message(data, PredictedFrames)


def _stamp(t) -> tuple[int, int]:
    return (t.sec, t.nanosec)


def test_generated_interfaces_import_next_to_library():
    import astra_ros
    from astra_ros.msg import PredictedFrames
    from astra_ros.srv import Imagine

    assert Path(astra_ros.__file__).parent.parent == HERE.parent
    assert hasattr(astra_ros, "__version__")
    req = Imagine.Request(num_candidates=2, horizon=3, action_dim=7)
    assert (req.num_candidates, req.horizon, req.action_dim) == (2, 3, 7)
    assert {"frames", "confidence", "actions", "context_stamps", "rollout_id"} <= set(
        PredictedFrames.get_fields_and_field_types()
    )


def test_predicted_frames_round_trip_between_processes(tmp_path):
    domain = isolate_ros()
    env = dict(os.environ)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["ROS_DOMAIN_ID"] == str(domain)
    sent_file, recv_file = tmp_path / "sent.bin", tmp_path / "received.bin"

    def peer(role: str, path: Path) -> subprocess.Popen:
        args = [sys.executable, str(PEER), role, str(path), "--timeout", str(TIMEOUT)]
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    sub = peer("sub", recv_file)
    pub = None
    try:
        assert sub.stdout.readline().strip() == "ready", sub.stderr.read()
        pub = peer("pub", sent_file)
        sub_out, sub_err = sub.communicate(timeout=TIMEOUT + 30)
        pub_out, pub_err = pub.communicate(timeout=TIMEOUT + 30)
    finally:
        for proc in (sub, pub):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sub.returncode == 0, f"subscriber rc={sub.returncode}: {sub_err}"
    assert pub.returncode == 0, f"publisher rc={pub.returncode}: {pub_err}"

    # Compare messages, not the re-serialized buffers: CDR alignment padding is not zeroed.
    sent, recv = _deserialize(sent_file.read_bytes()), _deserialize(recv_file.read_bytes())

    sys.path.insert(0, str(HERE))
    try:
        from dds_peer import N_FRAMES, make_message
    finally:
        sys.path.remove(str(HERE))
    expected = make_message()
    assert len(recv.frames) == N_FRAMES == 8
    for got, want in zip(recv.frames, expected.frames, strict=True):
        assert (got.height, got.width, got.encoding, got.step) == (64, 64, "rgb8", 192)
        assert bytes(got.data) == bytes(want.data)
        assert _stamp(got.header.stamp) == _stamp(want.header.stamp)
        assert got.header.frame_id == want.header.frame_id
    assert len({bytes(f.data) for f in recv.frames}) == N_FRAMES  # distinct random frames
    assert _stamp(recv.header.stamp) == _stamp(expected.header.stamp) == (1_700_000_123, 456_789_012)
    assert [_stamp(t) for t in recv.context_stamps] == [_stamp(t) for t in expected.context_stamps]
    assert (recv.time_step.sec, recv.time_step.nanosec) == (0, 66_666_667)
    np.testing.assert_array_equal(np.asarray(recv.confidence), np.asarray(expected.confidence))
    assert list(recv.actions.joint_names) == list(expected.actions.joint_names)
    for got, want in zip(recv.actions.points, expected.actions.points, strict=True):
        np.testing.assert_array_equal(np.asarray(got.velocities), np.asarray(want.velocities))
        assert _stamp(got.time_from_start) == _stamp(want.time_from_start)
    assert (recv.modality, recv.command_policy, recv.model_id) == (
        "joint_velocity",
        "hold_last",
        "0123abcd/-/fp32",
    )
    assert recv.rollout_id == 2**40 + 17 and recv.state_reset is True
    assert sent == recv


def test_peer_times_out_without_partner(tmp_path):
    """The bounded wait really fails (so the round-trip test can fail) instead of hanging."""
    domain = isolate_ros()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain % 101 + 1))  # a domain with no publisher
    cmd = [sys.executable, str(PEER), "sub", str(tmp_path / "x.bin"), "--timeout", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "no PredictedFrames" in proc.stderr
    assert not (tmp_path / "x.bin").exists()
