"""load_backend: file kinds, errors naming the path and what was expected, and the auto choice."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from astra_ros.runtime import availability, cpu
from astra_ros.runtime.copy_last import CopyLastBackend
from astra_ros.runtime.loader import ModelLoadError, load_backend


def test_missing_unknown_and_directory_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist") as err:
        load_backend(str(tmp_path / "nope.onnx"))
    assert "nope.onnx" in str(err.value) and ".pt" in str(err.value)
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"\0" * 10)
    with pytest.raises(ModelLoadError, match="unknown type '.bin'"):
        load_backend(str(weird))
    with pytest.raises(ModelLoadError, match="not a file"):
        load_backend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="backend='jax'"):
        load_backend(str(weird), "jax")
    with pytest.raises(ModelLoadError, match="unknown load_backend options"):
        load_backend("copy_last", bogus=1)


def test_ModelLoadError_is_a_ValueError():
    assert issubclass(ModelLoadError, ValueError)


def test_copy_last():
    backend = load_backend("copy_last", max_history=5)
    assert isinstance(backend, CopyLastBackend) and backend.info.max_history == 5


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(ModelLoadError, match="broken.pt"):
        load_backend(str(bad))


def test_checkpoint_with_the_wrong_backend_or_history(caplog):
    from runtime_fixtures import tiny_checkpoint

    pt = str(tiny_checkpoint())
    for backend in ("onnxruntime", "tensorrt"):
        with pytest.raises(ModelLoadError, match="astra-export") as err:
            load_backend(pt, backend)
        assert pt in str(err.value)
    with pytest.raises(ModelLoadError, match="max_history=8.*max_history=4"):
        load_backend(pt, max_history=8)
    with pytest.raises(ModelLoadError, match="precision='fp16'"):
        load_backend(pt, precision="fp16")
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        backend = load_backend(
            pt,
            steps=2,
            context_noise=0.1,
            guidance_scale=1.0,
            seed=3,
            max_history=4,
            precision="auto",
            threads=1,
        )
    assert backend.info.backend == "torch" and backend.steps == 2 and backend.context_noise == 0.1
    assert "auto -> torch" in caplog.text


def test_onnx_errors(tmp_path):
    from runtime_fixtures import copy_model

    path = copy_model(tmp_path)
    with pytest.raises(ModelLoadError, match="backend='torch' needs the .pt"):
        load_backend(str(path), "torch")
    with pytest.raises(ModelLoadError, match="max_history=5 .* expected 1..4"):
        load_backend(str(path), max_history=5)
    assert load_backend(str(path), max_history=2, threads=1).history_limit == 2
    sidecar = path.with_suffix(".json")
    payload = json.loads(sidecar.read_text())
    sidecar.write_text("{ not json")
    with pytest.raises(ModelLoadError, match="not JSON"):
        load_backend(str(path))
    sidecar.write_text(json.dumps({**payload, "format": "something else"}))
    with pytest.raises(ModelLoadError, match="format"):
        load_backend(str(path))
    sidecar.unlink()
    with pytest.raises(ModelLoadError, match="no sidecar"):
        load_backend(str(path))
    # model.json naming the file is accepted as the sidecar
    (tmp_path / "model.json").write_text(json.dumps(payload))
    assert load_backend(str(path), "onnxruntime", threads=1).info.backend == "onnxruntime"
    # a corrupt ONNX file whose sidecar matches it: ONNX Runtime's failure becomes a ModelLoadError
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage")
    from astra_ros.hashing import file_sha256

    junk.with_suffix(".json").write_text(json.dumps({**payload, "onnx_sha256": file_sha256(junk)}))
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        load_backend(str(junk), "onnxruntime")


def avx2_only(monkeypatch):
    """Make this machine an AVX2-only CPU without OpenVINO for the loader (auto: ONNX Runtime)."""
    monkeypatch.setattr(cpu, "cpu_features", lambda: cpu.CpuFeatures(avx2=True))
    monkeypatch.setattr(availability, "openvino_available", lambda: False)


def test_auto_falls_back_to_onnxruntime_without_tensorrt(caplog, monkeypatch):
    from runtime_fixtures import tiny_onnx

    if availability.tensorrt_available():
        pytest.skip("TensorRT is importable here; the fallback is tested by simulating its failure below")
    avx2_only(monkeypatch)
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        backend = load_backend(str(tiny_onnx()), threads=1)
    assert backend.info.backend == "onnxruntime"
    assert "auto -> onnxruntime-cpu" in caplog.text and "TensorRT not importable" in caplog.text
    with pytest.raises(ModelLoadError, match="import tensorrt"):
        load_backend(str(tiny_onnx()), "tensorrt")


def test_auto_falls_back_when_tensorrt_fails(caplog, monkeypatch):
    from runtime_fixtures import tiny_onnx

    from astra_ros.runtime import tensorrt_backend

    def broken(*args, **kwargs):
        raise RuntimeError("no CUDA device")

    monkeypatch.setattr(availability, "tensorrt_available", lambda: True)
    monkeypatch.setattr(tensorrt_backend.TensorRTBackend, "from_onnx", classmethod(broken))
    avx2_only(monkeypatch)
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        backend = load_backend(str(tiny_onnx()), threads=1)
    assert backend.info.backend == "onnxruntime"
    assert "no CUDA device" in caplog.text and "falling back to onnxruntime" in caplog.text
    with pytest.raises(RuntimeError, match="no CUDA device"):
        load_backend(str(tiny_onnx()), "tensorrt")


def test_engine_files_need_tensorrt(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    if not availability.tensorrt_available():
        with pytest.raises(ModelLoadError, match="import tensorrt"):
            load_backend(str(engine))
    with pytest.raises(ModelLoadError, match="cannot run the TensorRT engine"):
        load_backend(str(engine), "onnxruntime")


def test_backends_reject_predict_before_ingest():
    backend = load_backend("copy_last")
    with pytest.raises(ValueError):
        backend.predict(np.zeros((1, 2, 7), np.float32), "joint_velocity")


@pytest.mark.parametrize(
    "flags, cpu_class",
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", "amx"),
        ("fpu sse2 avx2 avx512f avx512_vnni avx512_bf16", "avx512_bf16"),
        ("fpu sse2 avx2 avx512f avx512_vnni", "avx512"),
        ("fpu sse2 avx avx2 fma", "avx2"),
        ("fp asimd", "other"),
    ],
)
def test_the_cpu_class_comes_from_the_kernel_s_flags(tmp_path, flags, cpu_class):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    features = cpu.CpuFeatures.from_flags(cpu.read_flags(info))
    assert features.cpu_class == cpu_class
    assert features.native_bf16 == (cpu_class in ("amx", "avx512_bf16"))
    assert cpu.read_flags(tmp_path / "missing") == set() and cpu.CpuFeatures().cpu_class == "other"


def test_every_cpu_class_has_a_row_that_ends_with_onnxruntime_fp32():
    assert set(cpu.AUTO_CPU) == set(cpu.CPU_CLASSES)
    assert all(row[-1] == ("onnxruntime", "fp32") for row in cpu.AUTO_CPU.values())


@pytest.mark.parametrize(
    "features, int8, openvino, want",
    [
        (cpu.CpuFeatures(avx2=True, avx512=True, avx512_bf16=True), False, True, ("openvino", "bf16")),
        (
            cpu.CpuFeatures(avx2=True, avx512=True, avx512_bf16=True, amx_bf16=True),
            False,
            True,
            ("openvino", "bf16"),
        ),
        (cpu.CpuFeatures(avx2=True, avx512=True, avx512_bf16=True), False, False, ("onnxruntime", "fp32")),
        (cpu.CpuFeatures(avx2=True, avx512=True), True, True, ("openvino", "fp32")),
        (cpu.CpuFeatures(avx2=True), True, False, ("onnxruntime", "int8")),
        (cpu.CpuFeatures(avx2=True), False, False, ("onnxruntime", "fp32")),  # no int8 graph in the sidecar
        (cpu.CpuFeatures(), True, True, ("onnxruntime", "fp32")),
    ],
)
def test_auto_takes_the_first_choice_of_the_cpu_class_it_can_run(
    tmp_path, monkeypatch, caplog, features, int8, openvino, want
):
    from runtime_fixtures import copy_model

    path = copy_model(tmp_path)
    if int8:
        from astra_ros.export.onnx_export import int8_graph
        from astra_ros.model.config import AstraConfig

        payload = json.loads(path.with_suffix(".json").read_text())
        payload["graphs"]["int8"] = int8_graph(path, AstraConfig.from_dict(payload["config"]), [1], 1)
        path.with_suffix(".json").write_text(json.dumps(payload))
    monkeypatch.setattr(cpu, "cpu_features", lambda: features)
    monkeypatch.setattr(availability, "tensorrt_available", lambda: False)
    if not openvino:
        monkeypatch.setattr(availability, "openvino_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="astra_ros.runtime.loader"):
        backend = load_backend(str(path), threads=1)
    assert (backend.info.backend, backend.info.precision) == want
    assert f"CPU class {features.cpu_class}" in caplog.text
    if not openvino and features.native_bf16:
        assert "openvino bf16: not installed" in caplog.text
    fp32 = load_backend(str(path), precision="fp32", threads=1)  # an explicit precision keeps its entries
    assert fp32.info.precision == "fp32"
