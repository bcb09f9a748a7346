"""OnnxRuntimeBackend: agreement with the torch reference, in-place cache buffers, hash checks, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from runtime_fixtures import copy_model, tiny_checkpoint, tiny_onnx  # noqa: E402

from astra_ros.runtime.loader import ModelLoadError, load_backend  # noqa: E402


def recording(backend):
    outputs = []
    step = backend._step

    def wrapped(*args):
        out, cache = step(*args)
        outputs.append(out.copy())
        return out, cache

    backend._step = wrapped
    return outputs


def scenario(rng_seed=3):
    rng = np.random.default_rng(rng_seed)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    commands = rng.uniform(-1, 1, (6, 7)).astype(np.float32)
    plan = rng.uniform(-1, 1, (3, 4, 7)).astype(np.float32)
    return frames, commands, plan


def test_onnxruntime_and_torch_agree_on_ingest_and_predict():
    from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from astra_ros.runtime.torch_backend import TorchBackend

    frames, commands, plan = scenario()
    ref = load_backend(str(tiny_checkpoint()), "torch", seed=5, steps=2, guidance_scale=1.5)
    ort = load_backend(str(tiny_onnx()), "onnxruntime", seed=5, steps=2, guidance_scale=1.5, threads=1)
    assert isinstance(ref, TorchBackend) and isinstance(ort, OnnxRuntimeBackend)
    outs = {"torch": recording(ref), "ort": recording(ort)}
    for f, c in zip(frames, commands, strict=True):  # 6 > max_history 4: eviction included
        ref.ingest(f, c, "joint_velocity")
        ort.ingest(f, c, "joint_velocity")
    keys, values, length = ort.cache_arrays(ort._cache)
    assert np.abs(keys - ref._cache.keys.numpy()).max() < 1e-4
    assert np.abs(values - ref._cache.values.numpy()).max() < 1e-4
    assert length.tolist() == ref._cache.length.tolist() == [4]
    video_ref = ref.predict(plan, "joint_velocity", seed=11)
    video_ort = ort.predict(plan, "joint_velocity", seed=11)
    assert video_ort.shape == (3, 4, 32, 32, 3) and video_ort.dtype == np.uint8
    assert len(outs["torch"]) == len(outs["ort"]) > 20
    worst = max(np.abs(a - b).max() for a, b in zip(outs["torch"], outs["ort"], strict=True))
    assert worst < 1e-4
    assert np.abs(video_ref.astype(int) - video_ort.astype(int)).max() <= 1
    assert ort.info.backend == "onnxruntime" and ort.info.joint_names == tuple(f"j{i}" for i in range(7))
    assert ort.info.max_history == 4 and ort.info.frame_period == 0.1


def test_cache_stays_in_two_ping_pong_buffers_and_predict_leaves_it_alone():
    frames, commands, plan = scenario(4)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    seen = []
    for f, c in zip(frames, commands, strict=True):
        before = backend._cache.slot
        backend.ingest(f, c, "joint_velocity")
        after = backend._cache.slot
        assert after is not before  # never read and written at the same address
        assert after.payload[0].data_ptr() != before.payload[0].data_ptr()
        seen.append(after)
    assert len({id(s) for s in seen}) == 2  # ping-pong: two persistent slots for batch 1
    live = [a.copy() for a in backend.cache_arrays(backend._cache)]
    backend.predict(plan, "joint_velocity", seed=1)
    backend.predict(plan[:1], "joint_velocity", seed=2)
    for a, b in zip(live, backend.cache_arrays(backend._cache), strict=True):
        np.testing.assert_array_equal(a, b)
    assert backend.history_length == 4
    for slots in (backend._pool.slots(1), backend._pool.slots(3)):
        ptrs = [s.payload[0].data_ptr() for s in slots]
        assert len(ptrs) == len(set(ptrs)) and len(ptrs) <= 3
    backend.reset()
    assert backend.history_length == 0
    assert backend.cache_arrays(backend._cache)[2].tolist() == [0]


def test_a_modified_onnx_file_is_refused(tmp_path):
    path = copy_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256") as err:
        load_backend(str(path), "onnxruntime")
    assert str(path) in str(err.value)


def test_a_failed_parity_record_is_refused(tmp_path):
    path = copy_model(tmp_path)
    sidecar = path.with_suffix(".json")
    payload = json.loads(sidecar.read_text())
    payload["parity"]["passed"] = False
    sidecar.write_text(json.dumps(payload))
    with pytest.raises(ModelLoadError, match="parity"):
        load_backend(str(path), "onnxruntime")


def test_deployment_modules_do_not_import_torch():
    path = tiny_onnx()
    code = f"""
import importlib, importlib.util, sys, numpy as np
for name in ("onnxruntime_backend", "tensorrt_backend", "engine_cache", "pingpong", "sidecar"):
    if importlib.util.find_spec("astra_ros.runtime." + name):
        importlib.import_module("astra_ros.runtime." + name)
import astra_ros.runtime.loader as loader
b = loader.load_backend({str(path)!r}, threads=1)
b.ingest(np.zeros((32, 32, 3), np.uint8), np.zeros(7, np.float32), "joint_velocity")
assert b.predict(np.zeros((2, 2, 7), np.float32), "joint_velocity").shape == (2, 2, 32, 32, 3)
bad = [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
print("TORCH" if bad else "CLEAN", b.info.backend)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CLEAN", "onnxruntime"]
