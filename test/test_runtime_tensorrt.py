"""TensorRT backend and engine cache logic behind the seam, with a fake runtime that runs the ONNX
graph in ONNX Runtime on numpy "device memory". Only the real engine build/run (last test) needs
TensorRT; it is skipped when `import tensorrt` fails (every machine without a GPU + TensorRT)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from runtime_fixtures import copy_model, tiny_checkpoint

from astra_ros.runtime import availability, build_engine, loader
from astra_ros.runtime.engine_cache import Profile, ensure_engine, read_engine, sidecar_of
from astra_ros.runtime.sidecar import (
    ENTRY_OUTPUTS,
    RING_INPUTS,
    ModelLoadError,
    layer_inputs,
    load_onnx_model,
)
from astra_ros.runtime.tensorrt_backend import TensorRTBackend

ENV = {"tensorrt_version": "10.9.0", "gpu_name": "FakeGPU H100", "compute_capability": "9.0"}
MAGIC = b"FAKE-ENGINE\n"


class FakeRuntime:
    """Implements the TensorRTRuntime seam: memory is bytearrays, execution is ONNX Runtime."""

    def __init__(self, env=None):
        self.env = dict(env or ENV)
        self.builds: list[tuple[str, Profile]] = []
        self.executions: list[dict[str, int]] = []
        self.mem: dict[int, bytearray] = {}
        self._next = 1 << 16

    def environment(self):
        return dict(self.env)

    def build(self, onnx, precision, profile):
        self.builds.append((precision, profile))
        return MAGIC + str(onnx.path).encode()

    def load(self, engine):
        assert engine.startswith(MAGIC)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        return ort.InferenceSession(engine[len(MAGIC) :].decode(), so, providers=["CPUExecutionProvider"])

    def malloc(self, nbytes):
        ptr = self._next
        self._next += (nbytes + 255) // 256 * 256 + 256
        self.mem[ptr] = bytearray(nbytes)
        return ptr

    def free(self, ptr):
        del self.mem[ptr]

    def htod(self, ptr, array):
        data = np.ascontiguousarray(array).tobytes()
        buf, off = self._locate(ptr)
        assert off + len(data) <= len(buf), "copy past the allocation"
        buf[off : off + len(data)] = data

    def dtoh(self, array, ptr):
        buf, off = self._locate(ptr)
        assert off + array.nbytes <= len(buf), "read past the allocation"
        array[...] = np.frombuffer(bytes(buf[off : off + array.nbytes]), array.dtype).reshape(array.shape)

    def _locate(self, address):
        for base, buf in self.mem.items():
            if base <= address < base + len(buf):
                return buf, address - base
        raise AssertionError(f"address {address:#x} is not inside an allocation")

    def copy_rows(self, dst, dst_pitch, src, src_pitch, width, rows):
        dbuf, doff = self._locate(dst)
        sbuf, soff = self._locate(src)
        assert doff + (rows - 1) * dst_pitch + width <= len(dbuf), "copy past the destination"
        assert soff + (rows - 1) * src_pitch + width <= len(sbuf), "copy past the source"
        for r in range(rows):
            d, s_ = doff + r * dst_pitch, soff + r * src_pitch
            dbuf[d : d + width] = sbuf[s_ : s_ + width]

    def synchronize(self):
        pass

    def execute(self, session, shapes, addresses):
        self.executions.append(dict(addresses))
        types = {"tensor(float)": np.float32, "tensor(int64)": np.int64}
        feeds = {}
        for i in session.get_inputs():
            arr = np.empty(shapes[i.name], types[i.type])
            self.dtoh(arr, addresses[i.name])
            feeds[i.name] = arr
        names = [o.name for o in session.get_outputs()]
        for name, value in zip(names, session.run(names, feeds), strict=True):
            self.htod(addresses[name], value)


@pytest.fixture
def onnx_model(tmp_path):
    return load_onnx_model(copy_model(tmp_path))


def test_engine_is_built_once_then_reused(onnx_model, tmp_path, caplog):
    fake = FakeRuntime()
    out = tmp_path / "engines"
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        engine = ensure_engine(onnx_model, out, fake, "fp16", Profile(1, 8, 8))
    assert len(fake.builds) == 1 and "no cached engine" in caplog.text and "built" in caplog.text
    sidecar = json.loads(sidecar_of(engine).read_text())
    assert sidecar["key"] == {
        "onnx_sha256": onnx_model.sha256,
        **ENV,
        "precision": "fp16",
        "profile": {"min_batch": 1, "opt_batch": 8, "max_batch": 8},
    }
    assert sidecar["model"]["config"]["max_history"] == 4 and "build_seconds" in sidecar
    data, payload = read_engine(engine)
    assert data.startswith(MAGIC) and payload["engine_sha256"] == sidecar["engine_sha256"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        assert ensure_engine(onnx_model, out, fake, "fp16", Profile(1, 8, 8)) == engine
    assert len(fake.builds) == 1 and "using cached engine" in caplog.text


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tensorrt_version": "10.10.0"}, "tensorrt_version"),
        ({"gpu_name": "FakeGPU Orin"}, "gpu_name"),
        ({"compute_capability": "8.7"}, "compute_capability"),
    ],
)
def test_an_engine_with_another_key_is_rebuilt_never_used(onnx_model, tmp_path, caplog, change, field):
    out = tmp_path / "engines"
    ensure_engine(onnx_model, out, FakeRuntime(), "fp16")
    other = FakeRuntime({**ENV, **change})
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        engine = ensure_engine(onnx_model, out, other, "fp16")
    assert len(other.builds) == 1
    assert "cache key changed" in caplog.text and field in caplog.text and "built" in caplog.text
    assert json.loads(sidecar_of(engine).read_text())["key"][field] == change[field]


def test_profile_and_precision_are_part_of_the_key(onnx_model, tmp_path, caplog):
    fake = FakeRuntime()
    out = tmp_path / "engines"
    a = ensure_engine(onnx_model, out, fake, "fp16", Profile(1, 4, 4))
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        b = ensure_engine(onnx_model, out, fake, "fp16", Profile(1, 16, 16))
    assert a == b and len(fake.builds) == 2 and "profile" in caplog.text
    c = ensure_engine(onnx_model, out, fake, "fp32", Profile(1, 16, 16))
    assert c != b and len(fake.builds) == 3 and fake.builds[-1][0] == "fp32"
    with pytest.raises(ValueError, match="precision='int8'"):
        ensure_engine(onnx_model, out, fake, "int8")


def test_a_corrupt_or_orphaned_engine_is_detected_and_rebuilt(onnx_model, tmp_path, caplog):
    fake = FakeRuntime()
    out = tmp_path / "engines"
    engine = ensure_engine(onnx_model, out, fake)
    engine.write_bytes(engine.read_bytes()[:-3] + b"xyz")
    with pytest.raises(ModelLoadError, match="corrupt"):
        read_engine(engine)
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        ensure_engine(onnx_model, out, fake)
    assert len(fake.builds) == 2 and "corrupt" in caplog.text
    read_engine(engine)  # valid again
    sidecar_of(engine).unlink()
    with pytest.raises(ModelLoadError, match="no sidecar"):
        read_engine(engine)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.engine_cache"):
        ensure_engine(onnx_model, out, fake)
    assert len(fake.builds) == 3 and "no sidecar" in caplog.text


def test_an_engine_from_another_machine_is_refused(onnx_model, tmp_path):
    engine = ensure_engine(onnx_model, tmp_path, FakeRuntime())
    with pytest.raises(ModelLoadError, match="gpu_name"):
        TensorRTBackend.from_engine(engine, runtime=FakeRuntime({**ENV, "gpu_name": "Other"}))


def recording(backend):
    outputs = []
    step = backend._step

    def wrapped(*args):
        out, entries = step(*args)
        if out is not None:  # a denoising step (context writes return keys/values only)
            outputs.append(out.copy())
        return out, entries

    backend._step = wrapped
    return outputs


def test_tensorrt_backend_logic_matches_torch_and_never_aliases_cache_buffers(onnx_model, tmp_path):
    fake = FakeRuntime()
    trt = TensorRTBackend.from_onnx(
        onnx_model, tmp_path / "engines", "fp32", max_batch=4, runtime=fake, seed=2, steps=2
    )
    ref = loader.load_backend(str(tiny_checkpoint()), "torch", seed=2, steps=2)
    assert trt.info.backend == "tensorrt" and trt.info.precision == "fp32" and trt.info.max_history == 4
    outs = {"trt": recording(trt), "torch": recording(ref)}
    rng = np.random.default_rng(0)
    live = trt._cache.kv.buffers
    for _ in range(6):  # max_history 4: the ring wraps
        frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        command = rng.uniform(-1, 1, 7).astype(np.float32)
        trt.ingest(frame, command, "joint_velocity")
        ref.ingest(frame, command, "joint_velocity")
        assert trt._cache.kv.buffers is live  # one persistent set, written slot by slot
    for got, want in zip(trt.kv_arrays(trt._cache.kv), ref._cache.kv[:2], strict=True):
        assert np.abs(got - want.numpy()).max() < 1e-4  # the strided slot copies landed right
    plan = rng.uniform(-1, 1, (3, 3, 7)).astype(np.float32)
    video = trt.predict(plan, "joint_velocity", seed=4)
    assert np.abs(video.astype(int) - ref.predict(plan, "joint_velocity", seed=4).astype(int)).max() <= 1
    assert max(np.abs(a - b).max() for a, b in zip(outs["trt"], outs["torch"], strict=True)) < 1e-4
    assert fake.executions
    cache_names = [n for name in RING_INPUTS for n in layer_inputs(name, 2)]
    for addresses in fake.executions:
        ins = {addresses[n] for n in cache_names}
        outs_ = {addresses[n] for n in (*ENTRY_OUTPUTS, "output")}
        assert not ins & outs_ and len(ins) == 8 and len(outs_) == 3  # (own, history) x 2 layers x (k, v)
    io = {n: ptr for n, ptr in fake.executions[0].items() if n not in (*cache_names, *ENTRY_OUTPUTS)}
    assert all({n: a[n] for n in io} == io for a in fake.executions)  # persistent I/O buffers
    with pytest.raises(ValueError, match="1..4"):
        trt.predict(np.zeros((5, 2, 7), np.float32), "joint_velocity")
    trt.close()
    assert fake.mem == {}


def test_loader_picks_tensorrt_first_when_available(tmp_path, monkeypatch, caplog):
    from astra_ros.runtime import tensorrt_backend

    fake = FakeRuntime()
    path = copy_model(tmp_path)
    monkeypatch.setattr(availability, "tensorrt_available", lambda: True)
    monkeypatch.setattr(tensorrt_backend, "TensorRTRuntime", lambda: fake)
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        backend = loader.load_backend(str(path), engine_cache_dir=str(tmp_path / "cache"))
    assert backend.info.backend == "tensorrt" and "auto -> tensorrt" in caplog.text
    assert backend.info.precision == "fp16"  # auto precision on TensorRT
    engine = next((tmp_path / "cache").glob("*.engine"))
    assert loader.load_backend(str(engine)).info.backend == "tensorrt"
    assert loader.load_backend(str(engine), max_history=3).info.backend == "tensorrt"  # newest 3 frames
    with pytest.raises(ModelLoadError, match="max_history=99"):
        loader.load_backend(str(engine), max_history=99)


def test_build_engine_cli_without_tensorrt(tmp_path, capsys):
    path = copy_model(tmp_path)
    if availability.tensorrt_available():
        pytest.skip("TensorRT is importable here")
    rc = build_engine.main(["--onnx", str(path), "--out-dir", str(tmp_path / "e")])
    assert rc == 3
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "onnxruntime" in err
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def test_build_engine_cli_with_a_builder(tmp_path, capsys):
    path = copy_model(tmp_path)
    fake = FakeRuntime()
    rc = build_engine.main(
        ["--onnx", str(path), "--out-dir", str(tmp_path / "e"), "--precision", "fp32", "--max-batch", "8"],
        builder=fake,
    )
    assert rc == 0 and fake.builds == [("fp32", Profile(1, 8, 8))]
    assert (tmp_path / "e" / "tiny-fp32.engine").is_file()
    assert build_engine.main(["--onnx", str(tmp_path / "none.onnx")], builder=fake) == 2
    assert "does not exist" in capsys.readouterr().err


def test_real_tensorrt_engine(tmp_path):
    """Runs only where TensorRT and a GPU exist: build, load and compare with ONNX Runtime."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed: the real engine build is skipped")
    model = load_onnx_model(copy_model(tmp_path))
    backend = TensorRTBackend.from_onnx(model, tmp_path / "engines", "fp32", max_batch=4)
    ref = loader.load_backend(str(model.path), "onnxruntime")
    frame = np.full((32, 32, 3), 100, np.uint8)
    for b in (backend, ref):
        b.ingest(frame, np.zeros(7, np.float32), "joint_velocity")
    plan = np.zeros((2, 2, 7), np.float32)
    diff = backend.predict(plan, "joint_velocity", seed=1).astype(int) - ref.predict(
        plan, "joint_velocity", seed=1
    ).astype(int)
    assert np.abs(diff).max() <= 2
    assert Path(backend.info.model_id)


def test_tensorrt_frees_the_device_buffers_the_pool_releases(onnx_model, tmp_path):
    fake = FakeRuntime()
    trt = TensorRTBackend.from_onnx(onnx_model, tmp_path / "engines", "fp32", max_batch=4, runtime=fake)
    rng = np.random.default_rng(1)
    for _ in range(3):
        frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        trt.ingest(frame, np.zeros(7, np.float32), "joint_velocity")

    def ring_bytes(batch, slots, shared=False):  # keys and values
        return 2 * 4 * int(np.prod(trt._kv_dims(batch, slots, shared)))

    # a batch-1 rollout's sets stay (small): own rings of 1 then 2 frames, a copy of the 2 frames written
    trt._pool.max_idle_bytes = ring_bytes(1, 1) + ring_bytes(1, 2) + ring_bytes(1, 2, shared=True)
    trt.predict(np.zeros((1, 2, 7), np.float32), "joint_velocity")
    steady = dict(fake.mem)
    for batch in (2, 3, 4):
        trt.predict(np.zeros((batch, 2, 7), np.float32), "joint_velocity")
        assert fake.mem.keys() == steady.keys()  # each candidate set freed on the device after the call
    # those, the live history (4 slots) and the live stream's empty own slot
    live = ring_bytes(1, 4, shared=True) + ring_bytes(1, 1)
    assert trt._pool.nbytes() == live + trt._pool.max_idle_bytes
    trt.close()
    assert fake.mem == {}
