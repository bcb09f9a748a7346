"""astra-export --precisions fp32 int8 --weights fp16: the int8 graph, fp16 weight storage, and how the
loader picks a precision."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from runtime_fixtures import tiny_checkpoint, tiny_onnx

from astra_ros.export.onnx_export import export
from astra_ros.hashing import file_sha256
from astra_ros.runtime.loader import ModelLoadError, load_backend


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("precisions") / "tiny.onnx"
    export(tiny_checkpoint(), out, threads=1, rollout_frames=3, precisions=("fp32", "int8"), weights="fp16")
    return out


def scenario():
    rng = np.random.default_rng(8)
    frames = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    commands = rng.uniform(-1, 1, (5, 7)).astype(np.float32)
    return frames, commands, rng.uniform(-1, 1, (2, 3, 7)).astype(np.float32)


def rollout(path, **options):
    backend = load_backend(str(path), "onnxruntime", threads=1, seed=3, **options)
    frames, commands, plan = scenario()
    for f, c in zip(frames, commands, strict=True):
        backend.ingest(f, c, "joint_velocity")
    return backend, backend.predict(plan, "joint_velocity", seed=5).astype(int)


def test_the_sidecar_records_the_int8_graph_and_the_fp16_weights(exported):
    sidecar = json.loads(exported.with_suffix(".json").read_text())
    int8 = sidecar["graphs"]["int8"]
    path = exported.parent / int8["file"]
    assert int8["file"] == "tiny.int8.onnx" and int8["sha256"] == file_sha256(path)
    assert 0 < int8["max_abs_diff_vs_fp32"] < 1.0
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}  # the weight matmuls run on int8
    assert sidecar["parity"]["passed"] and sidecar["parity"]["random_max_abs_diff"] < 1e-4
    weights = sidecar["weights"]
    assert weights["dtype"] == "fp16" and weights["matrices"] > 10
    assert 0 < weights["max_abs_diff_vs_fp32_weights"] < 1e-2  # rounded weights, computed in fp32
    graph = onnx.load(str(exported)).graph
    halves = [i for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) == weights["matrices"] and all(len(i.dims) >= 2 for i in halves)
    assert exported.stat().st_size < 0.7 * tiny_onnx().stat().st_size
    assert sorted(p.name for p in exported.parent.iterdir()) == ["tiny.int8.onnx", "tiny.json", "tiny.onnx"]


def test_the_loader_runs_the_precision_asked_for(exported):
    fp32, want = rollout(tiny_onnx())
    int8, got = rollout(exported, precision="int8")
    half, near = rollout(exported, precision="fp32")
    assert fp32.info.precision == half.info.precision == "fp32" and int8.info.precision == "int8"
    assert int8.info.model_id.startswith(
        json.loads(exported.with_suffix(".json").read_text())["graphs"]["int8"]["sha256"][:12]
    )
    assert np.abs(near - want).max() <= 2  # fp16-stored weights: the same frames within rounding
    assert 0 < np.abs(got - want).mean() < 8  # int8: close, not equal


def test_a_precision_the_export_lacks_or_a_modified_int8_graph_is_refused(exported, tmp_path):
    with pytest.raises(ModelLoadError, match=r"precision='int8'.*\['fp32'\]"):
        load_backend(str(tiny_onnx()), "onnxruntime", precision="int8")
    with pytest.raises(ModelLoadError, match="precision='bf16'"):
        load_backend(str(exported), "onnxruntime", precision="bf16")
    for name in ("tiny.onnx", "tiny.json", "tiny.int8.onnx"):
        shutil.copy(exported.parent / name, tmp_path / name)
    int8 = tmp_path / "tiny.int8.onnx"
    data = bytearray(int8.read_bytes())
    data[len(data) // 2] ^= 0xFF
    int8.write_bytes(bytes(data))
    load_backend(str(tmp_path / "tiny.onnx"), "onnxruntime")  # fp32 does not read the int8 file
    with pytest.raises(ModelLoadError, match="int8 graph.*sha256"):
        load_backend(str(tmp_path / "tiny.onnx"), "onnxruntime", precision="int8")


def test_export_rejects_unknown_precisions_and_weights(tmp_path):
    with pytest.raises(ValueError, match="precisions"):
        export(tiny_checkpoint(), tmp_path / "m.onnx", precisions=("int8",))
    with pytest.raises(ValueError, match="weights='bf16'"):
        export(tiny_checkpoint(), tmp_path / "m.onnx", weights="bf16")
    assert not list(tmp_path.iterdir())
