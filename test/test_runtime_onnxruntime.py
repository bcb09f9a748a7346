"""OnnxRuntimeBackend: agreement with the torch reference, in-place cache buffers, hash checks, no torch."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_fixtures import copy_model, tiny_checkpoint, tiny_onnx

from astra_ros.runtime.loader import ModelLoadError, load_backend

SHIPPED_ONNX = Path(__file__).resolve().parents[1] / "engines" / "astra_small.onnx"


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
    keys, values = ort.kv_arrays(ort._cache.kv)
    assert np.abs(keys - ref._cache.kv.keys.numpy()).max() < 1e-4
    assert np.abs(values - ref._cache.kv.values.numpy()).max() < 1e-4
    assert ort.history_length == ref.history_length == 4 and ort._cache.written == 5  # newest pending
    video_ref = ref.predict(plan, "joint_velocity", seed=11)
    video_ort = ort.predict(plan, "joint_velocity", seed=11)
    assert video_ort.shape == (3, 4, 32, 32, 3) and video_ort.dtype == np.uint8
    assert len(outs["torch"]) == len(outs["ort"]) == 4 * 2 * 2  # frames x steps x (cond, uncond)
    worst = max(np.abs(a - b).max() for a, b in zip(outs["torch"], outs["ort"], strict=True))
    assert worst < 1e-4
    assert np.abs(video_ref.astype(int) - video_ort.astype(int)).max() <= 1
    assert ort.info.backend == "onnxruntime" and ort.info.joint_names == tuple(f"j{i}" for i in range(7))
    assert ort.info.max_history == 4 and ort.info.frame_period == 0.1


def test_each_candidate_writes_the_pending_frame_with_its_own_first_command():
    frames, commands, plan = scenario(5)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    batches = []
    step = backend._step

    def counting(frame, *args):
        batches.append(frame.shape[0])
        return step(frame, *args)

    backend._step = counting
    for f, c in zip(frames, commands, strict=True):
        backend.ingest(f, c, "joint_velocity")
    assert batches == [1] * 5  # the first frame waited for the second's command; the newest waits
    batches.clear()
    video = backend.predict(plan, "joint_velocity", seed=3)
    assert batches == [3, 3] * 4  # per frame, batched: write the one before with the command, denoise
    assert (video[0, 0] != video[1, 0]).any() and (video[1, 0] != video[2, 0]).any()


def test_first_command_drives_the_first_predicted_frame():
    frames, commands, _ = scenario(6)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    for f, c in zip(frames, commands, strict=True):
        backend.ingest(f, c, "joint_velocity")
    plan = np.zeros((3, 3, 7), np.float32)
    plan[1, 0] = 2.0  # candidate 1 differs from candidate 0 only in its first command
    video = backend.predict(plan, "joint_velocity", seed=3, share_noise=True).astype(int)
    assert np.abs(video[0, 0] - video[1, 0]).max() > 0
    np.testing.assert_array_equal(video[0], video[2])  # equal commands, shared noise: equal frames
    alone = backend.predict(plan[1:2], "joint_velocity", seed=3, share_noise=True).astype(int)
    assert np.abs(alone[0] - video[1]).max() <= 1  # shared noise: independent of the batch
    own = backend.predict(plan, "joint_velocity", seed=3).astype(int)
    assert np.abs(own[0] - own[2]).max() > 0  # per-candidate noise by default


def test_the_same_window_and_seed_give_the_same_frames_whatever_was_called_before():
    frames, commands, plan = scenario(7)

    def window(backend):
        for f, c in zip(frames[:4], commands[:4], strict=True):
            backend.ingest(f, c, "joint_velocity")
        return backend.predict(plan, "joint_velocity", seed=9), backend.predict(plan, "joint_velocity")

    fresh = load_backend(str(tiny_onnx()), "onnxruntime", threads=1, seed=2)
    want = window(fresh)
    used = load_backend(str(tiny_onnx()), "onnxruntime", threads=1, seed=2)
    for f, c in zip(frames[::-1], commands, strict=True):  # another stream, interleaved predictions
        used.ingest(f, c, "joint_velocity")
        used.predict(plan[:1], "joint_velocity")
    used.reset()
    got = window(used)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    fresh.reset()
    np.testing.assert_array_equal(window(fresh)[0], want[0])
    other = load_backend(str(tiny_onnx()), "onnxruntime", threads=1, seed=3)
    assert (window(other)[1] != want[1]).any()  # the backend seed matters when predict has none


def test_a_rollout_in_chunks_gives_one_predict_call_s_frames_while_the_live_stream_moves_on():
    frames, commands, plan = scenario(8)  # plan: 3 candidates x 4 frames
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1, seed=2, steps=2)
    for f, c in zip(frames[:3], commands[:3], strict=True):
        backend.ingest(f, c, "joint_velocity")
    want = [
        backend.predict(plan, "joint_velocity", seed=9),
        backend.predict(plan, "joint_velocity", share_noise=True),
    ]
    rollouts = [
        backend.start_rollout(plan, "joint_velocity", seed=9),
        backend.start_rollout(plan, "joint_velocity", share_noise=True),
    ]
    for f, c in zip(frames[3:], commands[3:], strict=True):  # live frames and predictions in between
        for rollout in rollouts:
            rollout.advance(1)
        backend.ingest(f, c, "joint_velocity")
        backend.predict(plan[:1], "joint_velocity")
    assert [r.frames_done for r in rollouts] == [3, 3] and not any(r.done for r in rollouts)
    assert len([b for b in backend._pool.sets(3) if b.busy]) == 2  # each holds its candidates' cache
    for rollout, video in zip(rollouts, want, strict=True):
        rollout.advance(5)
        assert rollout.done
        np.testing.assert_array_equal(rollout.result(), video)
    assert not any(b.busy for b in backend._pool.sets(3))  # released on the last frame


def test_a_rollout_reads_one_copy_of_the_history_and_keeps_only_its_own_frames_per_candidate():
    """No per-candidate copy of the history: B candidates x H frames hold own rings that grow as they
    fill (1, 2, 4, ... frames, at most min(H, max_history)) and one copy of the live window (oldest
    first); identical candidates stay identical."""
    frames, commands, _ = scenario(6)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    for f, c in zip(frames, commands, strict=True):  # 5 frames written (max_history 4), 1 pending
        backend.ingest(f, c, "joint_velocity")
    plan = np.repeat(np.random.default_rng(0).uniform(-1, 1, (1, 9, 7)).astype(np.float32), 5, axis=0)
    grown = []
    grow = backend._grown
    backend._grown = lambda cache, slots: grown.append(slots) or grow(cache, slots)
    for horizon, sizes in ((3, [2, 3]), (9, [2, 4])):
        rollout = backend.start_rollout(plan[:, :horizon], "joint_velocity", share_noise=True)
        sets = [*backend._pool.sets(1), *backend._pool.sets(5)]
        busy = sorted((b.batch, b.slots, b.shared) for b in sets if b.busy)
        # the live history, the live stream's empty own slot, the candidates' own rings, one history copy
        assert busy == sorted([(1, 4, True), (1, 1, False), (5, 1, False), (1, 4, True)])
        history = rollout._context.history
        assert history.positions.tolist() == [1, 2, 3, 4]  # the window, oldest first
        live = backend.kv_arrays(backend._cache.kv)[0][:, backend._cache.positions.argsort()]
        np.testing.assert_array_equal(backend.kv_arrays(history.kv)[0], live)
        grown.clear()
        backend._pool.max_idle_bytes = 0  # every free set is released at once
        live = backend._pool.nbytes() - backend.kv_bytes(5, 1)  # without the first own ring and the copy
        for _ in range(horizon):
            rollout.advance(1)
            assert backend._pool.nbytes() <= live + backend.kv_bytes(5, horizon)  # the largest two sizes
        assert grown == sizes  # then the ring wraps (horizon 9 > max_history 4)
        video = rollout.result()
        assert (video == video[:1]).all()  # the same history, commands and noise: the same frames
        assert not any(b.busy for b in backend._pool.sets(5))  # released on the last frame
        del history, rollout


def test_cache_is_written_in_place_one_slot_per_frame_and_predict_leaves_it_alone():
    frames, commands, plan = scenario(4)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    buffers = backend._cache.kv.buffers
    pointers = [ov.data_ptr() for _, layers in buffers.payload.rings for ov in layers]
    for host, layers in buffers.payload.rings:  # each layer's OrtValue is a view of the one host ring buffer
        assert [ov.data_ptr() for ov in layers] == [layer.ctypes.data for layer in host]
    for k, (f, c) in enumerate(zip(frames, commands, strict=True)):
        before = backend.kv_arrays(backend._cache.kv)
        backend.ingest(f, c, "joint_velocity")
        after = backend.kv_arrays(backend._cache.kv)
        changed = np.flatnonzero((before[0] != after[0]).any(axis=(0, 2, 3, 4)))  # history slots
        if k == 0:  # the first frame stays pending until the next one brings its command
            assert changed.size == 0
            continue
        slot = (k - 1) % backend.config.max_history  # the ring wraps at max_history 4
        assert changed.tolist() == [slot]  # only the previous frame's slot
        assert backend._cache.kv.buffers is buffers  # the same persistent buffers, written in place
    assert [ov.data_ptr() for _, layers in buffers.payload.rings for ov in layers] == pointers
    live = [a.copy() for a in backend.kv_arrays(backend._cache.kv)]
    backend.predict(plan, "joint_velocity", seed=1)
    backend.predict(plan[:1], "joint_velocity", seed=2)
    for a, b in zip(live, backend.kv_arrays(backend._cache.kv), strict=True):
        np.testing.assert_array_equal(a, b)
    assert backend.history_length == 4
    for sets in (backend._pool.sets(1), backend._pool.sets(3)):
        ptrs = [b.payload.rings[0][1][0].data_ptr() for b in sets]
        # the rollouts' sets are reused, not reallocated (batch 1: the live history, the live
        # stream's empty own slot, a rollout's own rings as they grow to 4 frames (1, 2, 4) and its
        # copy of the history)
        assert len(ptrs) == len(set(ptrs)) and len(ptrs) <= 6
    backend.reset()
    assert backend.history_length == 0 and backend._cache.written == 0
    fresh = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)  # reused buffers hold old frames:
    for b in (backend, fresh):  # the masks hide them
        for f, c in zip(frames[:2], commands[:2], strict=True):
            b.ingest(f, c, "joint_velocity")
    want = fresh.predict(plan, "joint_velocity", seed=5)
    np.testing.assert_array_equal(backend.predict(plan, "joint_velocity", seed=5), want)


def test_a_fixed_batch_export_pads_smaller_batches_and_refuses_larger(tmp_path):
    from astra_ros.export.onnx_export import export

    fixed = tmp_path / "fixed.onnx"
    export(tiny_checkpoint(), fixed, batch=2, threads=1, rollout_frames=3)
    frames, commands, plan = scenario(5)
    backends = [load_backend(str(path), "onnxruntime", threads=1, seed=1) for path in (fixed, tiny_onnx())]
    for backend in backends:
        for f, c in zip(frames, commands, strict=True):
            backend.ingest(f, c, "joint_velocity")
    for b in (1, 2):  # batch 1 runs padded to the graph's 2 rows
        got, want = (backend.predict(plan[:b], "joint_velocity", seed=3) for backend in backends)
        assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="fixed batch of 2"):
        backends[0].predict(plan, "joint_velocity")


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


def test_an_export_with_the_old_cache_interface_is_refused(tmp_path):
    path = copy_model(tmp_path)
    sidecar = path.with_suffix(".json")
    payload = json.loads(sidecar.read_text())
    payload["version"] = 2
    sidecar.write_text(json.dumps(payload))
    with pytest.raises(ModelLoadError, match="version=2; expected 4.*re-export it with `astra-export"):
        load_backend(str(path), "onnxruntime")


def test_deployment_modules_do_not_import_torch():
    path = tiny_onnx()
    code = f"""
import importlib, importlib.util, sys, numpy as np
backends = ("onnxruntime_backend", "openvino_backend", "tensorrt_backend")
for name in (*backends, "engine_cache", "build_engine", "kv_pool", "sidecar", "cpu"):
    if importlib.util.find_spec("astra_ros.runtime." + name):
        importlib.import_module("astra_ros.runtime." + name)
import astra_ros.runtime.loader as loader
for backend in ("auto", "onnxruntime", "openvino"):
    b = loader.load_backend({str(path)!r}, backend, threads=1, precision="fp32")
    b.ingest(np.zeros((32, 32, 3), np.uint8), np.zeros(7, np.float32), "joint_velocity")
    assert b.predict(np.zeros((2, 2, 7), np.float32), "joint_velocity").shape == (2, 2, 32, 32, 3)
    print(b.info.backend)
bad = [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
print("TORCH" if bad else "CLEAN")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:] == ["onnxruntime", "openvino", "CLEAN"]


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="denormals are flushed on x86-64 only (runtime/denormals.py)",
)
def test_the_thread_that_runs_the_graph_flushes_denormals_and_other_threads_do_not():
    """Subnormal floats (a softmax's tiny weights) are many times slower on x86: the backend sets
    flush-to-zero on the thread that steps it, and on no other."""
    import threading

    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    tiny = np.full(16, 1e-20, np.float32)  # squared: 1e-40, a subnormal float32
    seen = {}

    def worker(step: bool) -> None:
        before = float((tiny * tiny)[0])
        if step:
            backend.ingest(np.zeros((32, 32, 3), np.uint8), np.zeros(7, np.float32), "joint_velocity")
        seen[step] = (before, float((tiny * tiny)[0]))

    for step in (True, False):
        thread = threading.Thread(target=worker, args=(step,))
        thread.start()
        thread.join()
    assert seen[True] == (pytest.approx(1e-40, rel=1e-3), 0.0)
    assert seen[False] == (pytest.approx(1e-40, rel=1e-3),) * 2
    options = backend.session.get_session_options()
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"  # ORT's own threads


def test_the_buffer_pool_releases_free_sets_beyond_its_budget_largest_first():
    from astra_ros.runtime.kv_pool import BufferPool, PooledKV

    released = []
    pool = BufferPool(
        lambda b, s, shared: np.zeros(b * s * 500, np.uint8), release=released.append, max_idle_bytes=32_000
    )
    live = PooledKV(pool.acquire(1, 2), 1)
    for batch in (8, 24, 48, 72):
        PooledKV(pool.acquire(batch, 2), batch)  # dropped at once: its set is free again
    assert pool.nbytes() == 1000 * (1 + 8 + 24 + 48 + 72)
    pool.trim()
    assert [p.size for p in released] == [72_000, 48_000]  # 24 + 8 fit the 32 kB of free sets
    assert pool.nbytes() == 1000 * (1 + 8 + 24) and pool.sets(1)[0] is live.buffers  # busy: kept
    kept = pool.sets(8)[0]
    assert pool.acquire(8, 2) is kept  # a free set of the same shape is reused, not reallocated
    assert pool.acquire(8, 1) is not kept  # another number of slots is another shape


def test_predict_with_many_batch_sizes_does_not_keep_their_buffers():
    from astra_ros.runtime.kv_pool import MAX_IDLE_BYTES, payload_nbytes

    frames, commands, _ = scenario(5)
    backend = load_backend(str(tiny_onnx()), "onnxruntime", threads=1)
    backend._pool.max_idle_bytes = 2 * backend.kv_bytes(8, 2)  # the tiny model's sets are small
    for f, c in zip(frames, commands, strict=True):
        backend.ingest(f, c, "joint_velocity")
    live = payload_nbytes(backend._cache.kv.buffers.payload)  # rings and a step's entries
    for batch in (8, 24, 48, 72, 8, 24, 48, 72):
        backend.predict(np.zeros((batch, 2, 7), np.float32), "joint_velocity", seed=batch)
        assert backend._pool.nbytes() <= live + backend._pool.max_idle_bytes
    # the candidates' own rings grow with the batch and the horizon; the copy of the history does not
    row = backend.kv_bytes(2, 2) - backend.kv_bytes(1, 2)
    assert backend.kv_bytes(72, 2) == backend.kv_bytes(1, 2) + 71 * row and MAX_IDLE_BYTES == 32 * 2**20
    assert backend.kv_bytes(72, 9) == backend.kv_bytes(72, 4) > backend.kv_bytes(72, 3)  # max_history 4


def test_memory_returns_after_imagine_batches_of_the_shipped_model():
    from harness import own_rss_kb

    backend = load_backend(str(SHIPPED_ONNX), "onnxruntime")
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    for frame in frames:
        backend.ingest(frame, np.zeros(7, np.float32), "joint_velocity")
    backend.predict(np.zeros((1, 2, 7), np.float32), "joint_velocity")  # warm-up: a live prediction
    start = own_rss_kb()
    for batch in (
        8,
        24,
        48,
        72,
    ):  # horizon 2: the 72 set holds 113 MB (own rings of 2 frames, a step's entries)
        backend.predict(np.zeros((batch, 2, 7), np.float32), "joint_velocity")
    backend.ingest(frames[0], np.zeros(7, np.float32), "joint_velocity")
    backend.predict(np.zeros((1, 2, 7), np.float32), "joint_velocity")  # live again
    grown_mb = (own_rss_kb() - start) / 1024
    assert grown_mb < 50, f"RSS grew by {grown_mb:.0f} MB over Imagine batches 8/24/48/72"
