"""The write-only graph: the step graph cut down to the frame's keys/values, derived when it is loaded."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from runtime_fixtures import tiny_checkpoint, tiny_onnx

from astra_ros.export.onnx_export import random_inputs
from astra_ros.runtime.loader import load_backend
from astra_ros.runtime.sidecar import ENTRY_OUTPUTS, load_onnx_model
from astra_ros.runtime.write_graph import prune_to_outputs, write_only_graph


def sessions():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    step = ort.InferenceSession(str(tiny_onnx()), so, providers=["CPUExecutionProvider"])
    write = ort.InferenceSession(write_only_graph(tiny_onnx()), so, providers=["CPUExecutionProvider"])
    return step, write


def test_the_write_only_graph_gives_the_step_graphs_keys_and_values():
    step, write = sessions()
    cfg = load_onnx_model(tiny_onnx()).config
    assert [o.name for o in write.get_outputs()] == list(ENTRY_OUTPUTS)
    for batch in (1, 4):
        x = random_inputs(cfg, batch, seed=batch)
        full = step.run(list(ENTRY_OUTPUTS), x)
        only = write.run(None, {i.name: x[i.name] for i in write.get_inputs()})
        for a, b in zip(full, only, strict=True):
            assert np.abs(a - b).max() <= 1e-5 and np.abs(a).max() > 1e-2


def test_the_write_only_graph_drops_the_last_blocks_attention_mlp_and_the_final_layer():
    full = onnx.load(str(tiny_onnx())).graph
    cut = onnx.load_from_string(write_only_graph(tiny_onnx())).graph
    assert 0 < len(cut.node) < 0.9 * len(full.node)
    kept = {i.name for i in cut.initializer}
    assert {i.name for i in full.initializer} > kept  # weights only the output needs are gone
    assert not any("final" in name or "blocks.1.mlp" in name for name in kept)
    assert any("blocks.1.attn.qkv" in name for name in kept)  # the last layer's keys/values stay
    with pytest.raises(ValueError, match="lack"):
        prune_to_outputs(write_only_graph(tiny_onnx()), ("output",))


def test_backends_with_and_without_the_write_only_graph_predict_the_same_frames():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    commands = rng.uniform(-1, 1, (6, 7)).astype(np.float32)
    plan = rng.uniform(-1, 1, (3, 4, 7)).astype(np.float32)
    from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend

    model = load_onnx_model(tiny_onnx())
    backends = [OnnxRuntimeBackend(model, threads=1, write_only=w, seed=1) for w in (True, False)]
    reference = load_backend(str(tiny_checkpoint()), "torch", seed=1)
    for backend in (*backends, reference):
        for f, c in zip(frames, commands, strict=True):
            backend.ingest(f, c, "joint_velocity")
    (k0, v0), (k1, v1) = (b.kv_arrays(b._cache.kv) for b in backends)
    assert np.abs(k0 - k1).max() <= 1e-5 and np.abs(v0 - v1).max() <= 1e-5
    assert np.abs(k0 - reference._cache.kv.keys.numpy()).max() < 1e-4  # torch writes without output too
    videos = [b.predict(plan, "joint_velocity", seed=4).astype(int) for b in (*backends, reference)]
    assert np.abs(videos[0] - videos[1]).max() <= 1 and np.abs(videos[0] - videos[2]).max() <= 1


def test_one_intra_op_thread_by_default_for_both_graphs_unless_asked():
    from astra_ros.runtime.onnxruntime_backend import DEFAULT_THREADS

    for asked, want in ((None, DEFAULT_THREADS), (0, DEFAULT_THREADS), (2, 2)):
        backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=asked)
        sessions = {graph.session for graph in backend._graphs.values()}
        assert len(sessions) == 2  # the step graph and its write-only variant
        assert {s.get_session_options().intra_op_num_threads for s in sessions} == {want}
    assert DEFAULT_THREADS == 1
