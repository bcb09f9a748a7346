"""The robot-state input: model, training windows and objective, backends (dead reckoning), export,
and the session's pairing of joint states with frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astra_ros.data.bags import Episode, JointStates
from astra_ros.data.windows import WindowDataset
from astra_ros.export.onnx_export import export
from astra_ros.model.astra import Actions, AstraWorldModel
from astra_ros.model.checkpoint import Checkpoint, save_checkpoint
from astra_ros.model.config import AstraConfig
from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
from astra_ros.runtime.sidecar import STATE_INPUTS
from astra_ros.runtime.torch_backend import TorchBackend
from astra_ros.training.objective import add_states, split_actions

JOINTS = tuple(f"j{i}" for i in range(7))
PERIOD = 0.1


@pytest.fixture(scope="module")
def state_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    cfg = AstraConfig.preset("tiny", robot_state=True)
    model = AstraWorldModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("state") / "state.pt"
    meta = {"modalities": ["joint_velocity"], "joint_names": list(JOINTS), "frame_period": PERIOD}
    save_checkpoint(path, Checkpoint(cfg, model.state_dict(), meta=meta))
    return str(path)


def frames(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_a_new_state_input_starts_the_model_unchanged_and_then_conditions_it():
    torch.manual_seed(0)
    model = AstraWorldModel(AstraConfig.preset("tiny", robot_state=True))
    a = model.cfg.action_dim
    j = model.cfg.max_joints
    base = Actions(torch.zeros(1, a), torch.ones(1, a), torch.zeros(1, dtype=torch.long))
    with_state = base._replace(state=torch.full((1, j), 0.7), state_mask=torch.ones(1, j))
    assert torch.equal(
        model.conditioning(torch.ones(1), base)[1], model.conditioning(torch.ones(1), with_state)[1]
    )
    with torch.no_grad():
        model.state_embed.mlp[-1].weight.normal_()
    assert not torch.allclose(
        model.conditioning(torch.ones(1), base)[1], model.conditioning(torch.ones(1), with_state)[1]
    )


def test_windows_carry_states_and_the_displacement_each_command_asks_for():
    cfg = AstraConfig.preset("tiny", robot_state=True)
    t = 6
    commands = np.tile(np.arange(1, 8, dtype=np.float32), (t, 1))
    positions = np.cumsum(commands * PERIOD, 0).astype(np.float64)
    stamps = (np.arange(t) * PERIOD * 1e9).astype(np.int64)
    ep = Episode(
        frames(t),
        stamps,
        commands,
        "joint_velocity",
        JOINTS,
        "test",
        JointStates(positions, np.zeros_like(positions)),
    )
    item = WindowDataset([ep], 4, cfg)[1]
    assert np.allclose(item["state"][:, :7], positions[1:5]) and item["state_mask"][:, :7].all()
    assert not item["state_mask"][:, 7:].any()
    assert np.allclose(item["state_delta"][:, :7], commands[1:5] * PERIOD, atol=1e-6)


def test_training_states_are_measured_up_to_a_frame_then_dead_reckoned():
    b, t, j = 2, 5, 3
    state = torch.arange(t, dtype=torch.float32)[None, :, None].expand(b, t, j) * 10
    batch = {"state": state, "state_mask": torch.ones(b, t, j), "state_delta": torch.ones(b, t, j)}
    values = torch.zeros(b, t, 4)
    keep = torch.ones(b, dtype=torch.bool)
    for r in range(t - 1):
        context, target = split_actions(values, torch.ones(b, t, 4), torch.zeros(b, dtype=torch.long))
        context, target = add_states(context, target, batch, r, keep)
        whole = torch.cat([context.state[:, :1], target.state], 1)[0, :, 0]
        expected = [10.0 * k if k <= r else 10.0 * r + (k - r) for k in range(t)]
        assert whole.tolist() == expected
    dropped = add_states(
        *split_actions(values, torch.ones(b, t, 4), torch.zeros(b, dtype=torch.long)),
        batch,
        1,
        torch.tensor([True, False]),
    )
    assert dropped[0].state_mask[0].all() and dropped[1].state_mask[0].all()
    assert not dropped[0].state_mask[1].any() and not dropped[1].state_mask[1].any()


def test_predicted_frames_get_dead_reckoned_states(state_checkpoint):
    backend = TorchBackend.from_checkpoint(state_checkpoint, seed=0)
    assert backend.info.state_dim == 7
    backend.ingest(frames(1)[0], np.zeros(7), "joint_velocity", np.full(7, 0.5))
    actions = np.ones((2, 3, 7), np.float32)
    actions[1] *= -2
    states = backend._reckoned_states(actions, "joint_velocity")
    assert len(states) == 4
    got = np.stack([s[0][:, :7] for s in states], 1)  # (B, H + 1, 7)
    assert np.allclose(got[0, :, 0], [0.5, 0.6, 0.7, 0.8]) and np.allclose(
        got[1, :, 0], [0.5, 0.3, 0.1, -0.1]
    )
    assert all(s[1][:, :7].all() and not s[1][:, 7:].any() for s in states)
    twist_like = backend._reckoned_states(np.ones((1, 2, 6), np.float32), "twist")
    assert twist_like[0][1].any() and not twist_like[1][1].any()  # measured, then unknown


def test_the_state_conditions_predictions_and_bad_states_are_refused(state_checkpoint):
    backend = TorchBackend.from_checkpoint(state_checkpoint, seed=0)
    out = []
    for state in (np.zeros(7), np.full(7, 1.5), None):
        backend.reset()
        for f in frames(3):
            backend.ingest(f, np.zeros(7), "joint_velocity", state)
        out.append(backend.predict(np.zeros((1, 2, 7), np.float32), "joint_velocity"))
    assert not np.array_equal(out[0], out[1]) and not np.array_equal(out[0], out[2])
    with pytest.raises(ValueError, match="expected 7"):
        backend.ingest(frames(1)[0], np.zeros(7), "joint_velocity", np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        backend.ingest(frames(1)[0], np.zeros(7), "joint_velocity", np.full(7, np.nan))


def test_export_takes_the_state_inputs_and_onnxruntime_matches_torch(state_checkpoint, tmp_path):
    out = tmp_path / "state.onnx"
    sidecar = export(state_checkpoint, out, threads=1)
    names = [e["name"] for e in sidecar["inputs"]]
    assert names[-2:] == list(STATE_INPUTS) and sidecar["parity"]["passed"]
    ort_backend = OnnxRuntimeBackend.from_onnx(out, seed=0, threads=1)
    ref = TorchBackend.from_checkpoint(state_checkpoint, seed=0)
    states = np.random.default_rng(1).uniform(-1, 1, (3, 7))
    for backend in (ort_backend, ref):
        for f, s in zip(frames(3), states, strict=True):
            backend.ingest(f, np.full(7, 0.3), "joint_velocity", s)
    plan = np.random.default_rng(2).uniform(-1, 1, (2, 3, 7)).astype(np.float32)
    a, b = ort_backend.predict(plan, "joint_velocity", seed=1), ref.predict(plan, "joint_velocity", seed=1)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_fused_model_writes_each_frame_with_the_state_of_the_frame_it_predicts():
    b, t, j = 1, 4, 3
    state = torch.arange(t, dtype=torch.float32)[None, :, None].expand(b, t, j) * 10
    batch = {"state": state, "state_mask": torch.ones(b, t, j), "state_delta": torch.ones(b, t, j)}
    acts = split_actions(torch.zeros(b, t, 4), torch.ones(b, t, 4), torch.zeros(b, dtype=torch.long))
    context, target = add_states(*acts, batch, 1, torch.ones(b, dtype=torch.bool), ahead=True)
    assert torch.equal(context.state, target.state) and context.state[0, :, 0].tolist() == [10.0, 11.0, 12.0]

    torch.manual_seed(0)
    cfg = AstraConfig.preset("tiny", robot_state=True, fused_step=True)
    meta = {"modalities": ["joint_velocity"], "joint_names": list(JOINTS), "frame_period": PERIOD}
    from astra_ros.runtime.base import model_info

    backend = TorchBackend(AstraWorldModel(cfg), model_info("torch", meta, cfg, "0" * 64), seed=0)
    written = []
    step = backend._step
    backend._step = lambda *args: written.append(args[8][0][0, :7].copy()) or step(*args)
    shots = frames(2)
    backend.ingest(shots[0], np.zeros(7), "joint_velocity", np.full(7, 0.1))
    backend.ingest(shots[1], np.zeros(7), "joint_velocity", np.full(7, 0.7))
    assert np.allclose(written[-1], 0.7)  # frame 0 was written with frame 1's measured state
    backend.predict(np.ones((1, 2, 7), np.float32), "joint_velocity")
    assert np.allclose(written[-2], 0.7 + PERIOD) and np.allclose(written[-1], 0.7 + 2 * PERIOD)
