"""astra-export: the step graph, its sidecar, and the parity check run by the export itself."""

from __future__ import annotations

import json

import numpy as np
import onnx
from runtime_fixtures import tiny_checkpoint, tiny_onnx

from astra_ros.export.onnx_export import main
from astra_ros.hashing import file_sha256
from astra_ros.runtime.sidecar import GRAPH_OUTPUTS, graph_inputs

GRAPH_INPUTS = graph_inputs(2)  # the tiny model has 2 layers


def test_graph_has_the_streaming_signature_with_dynamic_batch_and_a_shared_history():
    model = onnx.load(str(tiny_onnx()))
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}
    assert list(inputs) == list(GRAPH_INPUTS) and list(outputs) == list(GRAPH_OUTPUTS)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert isinstance(dims(inputs["frame"])[0], str)  # symbolic batch
    assert GRAPH_INPUTS[6:10] == ("cache_keys_0", "cache_keys_1", "cache_values_0", "cache_values_1")
    assert GRAPH_INPUTS[10:14] == ("history_keys_0", "history_keys_1", "history_values_0", "history_values_1")
    own, shared = dims(inputs["cache_keys_1"]), dims(inputs["history_values_0"])
    assert own[0] == 2 and all(isinstance(d, str) for d in own[1:3]) and own[3] == 32  # heads, B, R*N
    assert isinstance(shared[0], str) and shared[1:] == [2, 16, 32]  # slots read, heads, N, head_dim
    assert inputs["modality"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    valid, history_valid = dims(inputs["cache_valid"]), dims(inputs["history_valid"])
    assert isinstance(valid[1], str) and history_valid[0] == 1 and isinstance(history_valid[1], str)
    assert dims(inputs["rope_cos"])[1] == 32 // 2  # head_dim / 2
    assert dims(outputs["new_keys"])[:2] == [2, 2] and dims(outputs["new_keys"])[3] == 16  # depth, heads, N


def test_sidecar_records_everything_the_runtime_needs():
    path = tiny_onnx()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["onnx_sha256"] == file_sha256(path)
    assert sidecar["checkpoint"]["sha256"] == file_sha256(tiny_checkpoint())
    assert sidecar["opset"] == 20 and sidecar["batch"] == "dynamic"
    assert sidecar["config"]["max_history"] == 4 and sidecar["config"]["width"] == 64
    assert sidecar["meta"]["modalities"] == ["joint_velocity"] and len(sidecar["meta"]["joint_names"]) == 7
    names = [e["name"] for e in sidecar["inputs"]]
    assert names == list(GRAPH_INPUTS)
    keys = sidecar["inputs"][GRAPH_INPUTS.index("cache_keys_1")]
    assert keys["shape"] == [2, "batch", "slot_tokens", 32] and keys["dtype"] == "float32"
    shared = sidecar["inputs"][GRAPH_INPUTS.index("history_values_0")]
    assert shared["shape"] == ["history_slots", 2, 16, 32]
    assert [e["name"] for e in sidecar["outputs"]] == list(GRAPH_OUTPUTS)
    assert sidecar["version"] == 4
    parity = sidecar["parity"]
    assert parity["passed"] is True and parity["tolerance"] == 1e-3
    assert parity["random_max_abs_diff"] < 1e-4 and parity["rollout_max_abs_diff"] < 1e-4
    assert parity["rollout_entries_max_abs_diff"] < 1e-4  # the writes ran the write-only graph
    assert parity["rollout_steps"] == 20  # 20 predicted frames x 1 denoising step
    assert parity["rollout_writes"] == 5 + 20  # max_history + 2 ingests (the newest pending), 20 frames
    assert parity["rollout_frames_max_abs_diff"] <= 1 / 255 + 1e-9


def test_onnxruntime_matches_torch_on_random_inputs_at_several_batches():
    import onnxruntime as ort
    import torch

    from astra_ros.export.onnx_export import StepGraph, graph_args, random_inputs
    from astra_ros.model.checkpoint import load_checkpoint

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tiny_onnx()), so, providers=["CPUExecutionProvider"])
    model = load_checkpoint(tiny_checkpoint()).build_model()
    for batch in (1, 5):
        x = random_inputs(model.cfg, batch, seed=10 + batch)
        got = session.run(list(GRAPH_OUTPUTS), x)
        with torch.inference_mode():
            ref = StepGraph(model)(*graph_args({n: torch.from_numpy(v) for n, v in x.items()}, 2))
        assert got[0].shape == (batch, 3, 32, 32)
        for g, r in zip(got, ref, strict=True):
            assert np.abs(g - r.numpy()).max() < 1e-4
        assert np.abs(ref[0].numpy()).max() > 1e-2  # the comparison is not between zeros


def test_export_rejects_a_different_max_history(tmp_path, capsys):
    ckpt = str(tiny_checkpoint())
    rc = main(["--checkpoint", ckpt, "--out", str(tmp_path / "m.onnx"), "--max-history", "8"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "max-history=8" in err and "max_history=4" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_reports_a_bad_checkpoint_and_bad_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "bad.pt" in capsys.readouterr().err
    ckpt = str(tiny_checkpoint())
    assert main(["--checkpoint", ckpt, "--out", str(tmp_path / "m.onnx"), "--batch", "x"]) == 2
    assert "--batch='x'" in capsys.readouterr().err
    assert main(["--checkpoint", ckpt, "--out", str(tmp_path / "m.bin")]) == 2


def test_warp_head_exports_with_a_grid_sample_and_passes_parity(tmp_path):
    import torch

    from astra_ros.export.onnx_export import export
    from astra_ros.model.astra import AstraWorldModel
    from astra_ros.model.checkpoint import Checkpoint, save_checkpoint
    from astra_ros.model.config import AstraConfig

    torch.manual_seed(0)
    cfg = AstraConfig.preset("tiny", output_head="warp", robot_state=True)
    model = AstraWorldModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    meta = {"modalities": ["joint_velocity"], "joint_names": [f"j{i}" for i in range(7)], "frame_period": 0.1}
    save_checkpoint(tmp_path / "warp.pt", Checkpoint(cfg, model.state_dict(), meta=meta))
    export(tmp_path / "warp.pt", tmp_path / "warp.onnx", threads=1)
    parity = json.loads((tmp_path / "warp.json").read_text())["parity"]
    assert parity["passed"] and parity["random_max_abs_diff"] < 1e-4
    assert "GridSample" in {node.op_type for node in onnx.load(str(tmp_path / "warp.onnx")).graph.node}


def test_kinematics_exports_and_passes_parity(tmp_path):
    import onnxruntime as ort
    import torch

    from astra_ros.export.onnx_export import StepGraph, export, graph_args, random_inputs
    from astra_ros.model.astra import AstraWorldModel
    from astra_ros.model.checkpoint import Checkpoint, save_checkpoint
    from astra_ros.model.config import AstraConfig
    from astra_ros.sim.kuka import JOINT_NAMES, kinematics_description

    torch.manual_seed(0)
    cfg = AstraConfig.preset("tiny", robot_state=True, kinematics=kinematics_description())
    model = AstraWorldModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # the rollout's states cover the 7 chain joints, so the parity rollout runs the projection
    meta = {"modalities": ["joint_velocity"], "joint_names": list(JOINT_NAMES), "frame_period": 0.1}
    save_checkpoint(tmp_path / "fk.pt", Checkpoint(cfg, model.state_dict(), meta=meta))
    export(tmp_path / "fk.pt", tmp_path / "fk.onnx", threads=1)
    sidecar = json.loads((tmp_path / "fk.json").read_text())
    parity = sidecar["parity"]
    assert parity["passed"] and parity["random_max_abs_diff"] < 1e-4 and parity["rollout_max_abs_diff"] < 1e-4
    assert sidecar["config"]["kinematics"] == cfg.kinematics  # the runtime gets the numbers
    # every chain joint known (the random parity inputs mostly mask one): ONNX Runtime follows the state
    session = ort.InferenceSession(str(tmp_path / "fk.onnx"), providers=["CPUExecutionProvider"])
    x = random_inputs(cfg, 2)
    x["state_mask"][:] = 1.0
    moved = {**x, "state": x["state"] + np.float32(0.3)}
    outputs = [session.run(["output"], inputs)[0] for inputs in (x, moved)]
    with torch.inference_mode():
        graph = StepGraph(model.eval())
        expected = graph(*graph_args({n: torch.from_numpy(v) for n, v in x.items()}, cfg.depth))[0]
    assert np.abs(outputs[0] - expected.numpy()).max() < 1e-4
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
