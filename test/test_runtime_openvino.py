"""OpenVinoBackend: agreement with ONNX Runtime in fp32, bf16 rings, the write-only graph, the CPU check."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_fixtures import tiny_onnx

from astra_ros.runtime import cpu
from astra_ros.runtime.loader import ModelLoadError, load_backend


def recording(backend):
    outputs = []
    step = backend._step

    def wrapped(*args):
        out, entries = step(*args)
        if out is not None:
            outputs.append(out.copy())
        return out, entries

    backend._step = wrapped
    return outputs


def scenario(seed=3):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    commands = rng.uniform(-1, 1, (6, 7)).astype(np.float32)
    plan = rng.uniform(-1, 1, (3, 5, 7)).astype(np.float32)
    return frames, commands, plan


def run(backend, frames, commands, plan):
    for f, c in zip(frames, commands, strict=True):  # 6 > max_history 4: the history ring wraps
        backend.ingest(f, c, "joint_velocity")
    return backend.predict(plan, "joint_velocity", seed=11)


def test_openvino_fp32_matches_onnxruntime_step_by_step():
    frames, commands, plan = scenario()
    options = dict(seed=5, steps=2, guidance_scale=1.5, threads=1)
    ort = load_backend(str(tiny_onnx()), "onnxruntime", **options)
    ov = load_backend(str(tiny_onnx()), "openvino", precision="fp32", **options)
    assert ov.info.backend == "openvino" and ov.info.precision == "fp32"
    outs = {"ort": recording(ort), "ov": recording(ov)}
    videos = [run(b, frames, commands, plan) for b in (ort, ov)]
    for got, want in zip(ov.kv_arrays(ov._cache.kv), ort.kv_arrays(ort._cache.kv), strict=True):
        assert np.abs(got - want).max() < 1e-4  # the history written slot by slot
    assert len(outs["ov"]) == len(outs["ort"]) == 5 * 2 * 2  # frames x steps x (cond, uncond)
    assert max(np.abs(a - b).max() for a, b in zip(outs["ov"], outs["ort"], strict=True)) < 1e-4
    assert np.abs(videos[0].astype(int) - videos[1].astype(int)).max() <= 1


@pytest.mark.skipif(not cpu.cpu_features().native_bf16, reason="this CPU has no native bf16 arithmetic")
def test_bf16_stores_the_rings_in_half_the_bytes_and_stays_close_to_fp32():
    frames, commands, plan = scenario(4)
    fp32, bf16 = (
        load_backend(str(tiny_onnx()), "openvino", precision=p, threads=1) for p in ("fp32", "bf16")
    )
    assert bf16.info.precision == "bf16" and bf16._cache.kv.buffers.payload.rings[0].dtype == np.uint16
    assert bf16.kv_bytes(8, 4) * 2 == fp32.kv_bytes(8, 4)
    videos = [run(b, frames, commands, plan).astype(int) for b in (fp32, bf16)]
    keys = [b.kv_arrays(b._cache.kv)[0] for b in (fp32, bf16)]
    assert 0 < np.abs(keys[1] - keys[0]).max() < 0.05 * np.abs(keys[0]).max()  # rounded, not wrong
    assert np.abs(videos[1] - videos[0]).mean() < 2.0  # on the 0..255 scale


def test_context_writes_run_the_write_only_graph():
    backend = load_backend(str(tiny_onnx()), "openvino", precision="fp32", threads=1)
    outputs = {flag: {o.get_any_name() for o in r.model_outputs} for flag, r in backend._requests.items()}
    assert outputs == {True: {"output", "new_keys", "new_values"}, False: {"new_keys", "new_values"}}
    full = load_backend(str(tiny_onnx()), "openvino", precision="fp32", threads=1)
    full._requests[False] = full._requests[True]  # every write through the full step instead
    frames, commands, plan = scenario(5)
    np.testing.assert_array_equal(run(backend, frames, commands, plan), run(full, frames, commands, plan))


def test_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_features", lambda: cpu.CpuFeatures(avx2=True, avx512=True))
    from astra_ros.runtime import openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_features", cpu.cpu_features)
    with pytest.raises(ModelLoadError, match=r"precision='bf16'.*\(avx512\).*expected precision fp32"):
        load_backend(str(tiny_onnx()), "openvino", precision="bf16")
    assert load_backend(str(tiny_onnx()), "openvino").info.precision == "fp32"  # auto: fp32 there


def test_a_fixed_batch_export_is_left_to_onnxruntime(tmp_path, monkeypatch, caplog):
    import json
    import logging

    from runtime_fixtures import copy_model

    from astra_ros.runtime import availability

    path = copy_model(tmp_path)
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "batch": 2}))  # as --batch 2 writes
    with pytest.raises(ModelLoadError, match="fixed batch of 2.*backend onnxruntime"):
        load_backend(str(path), "openvino")
    monkeypatch.setattr(availability, "tensorrt_available", lambda: False)
    monkeypatch.setattr(cpu, "cpu_features", lambda: cpu.CpuFeatures(avx2=True, avx512=True))
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        assert load_backend(str(path), threads=1).info.backend == "onnxruntime"
    assert "openvino fp32: fixed-batch export" in caplog.text
