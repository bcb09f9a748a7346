"""``astra-export``: the streaming step of a checkpoint as one ONNX graph, a sidecar, and a parity check.

One graph = ``AstraWorldModel.step`` with its causal state as explicit inputs and outputs:

inputs  ``frame``, ``previous`` (B,C,S,S) f32, ``level`` (B,) f32, ``actions`` / ``action_mask`` (B,A) f32,
        ``modality`` (B,) int64, ``cache_keys_L`` / ``cache_values_L`` (B,heads,M*N,head_dim) f32 for
        each layer L, ``cache_valid`` (B,M) f32, ``rope_cos`` / ``rope_sin`` (B,head_dim/2) f32, and
        for models with ``robot_state`` ``state`` / ``state_mask`` (B,max_joints) f32
outputs ``output`` (B,C,S,S), ``new_keys`` / ``new_values`` (depth,B,heads,N,head_dim)

The cache is a ring buffer of ``M = max_history`` frame slots whose keys are stored rotated at their
absolute frame index; the caller computes the rope tables of the step's frame index in float64
(``astra_ros.model.rope``) and writes ``new_keys`` / ``new_values`` of a context frame into the next
slot (the write position is host state). A denoising step ignores them. The graph never copies the
cache: each layer's buffer is its own input, and attention over [cache; frame] is one softmax written
in two parts instead of a concatenation. Exported with the dynamo exporter. The batch axis is dynamic unless
``--batch N`` fixes it.

The sidecar ``<name>.json`` records the config, the checkpoint ``meta`` (modalities, joint names,
frame period), I/O names/shapes/dtypes, the opset, the ONNX sha256, the checkpoint sha256 and the
parity results, so the runtime needs nothing else; ``graphs`` names the graphs of other precisions
(``--precisions fp32 int8``: ``<name>.int8.onnx``) with their sha256, ``weights`` how the fp32 graph
stores its weights (``--weights fp16``: weight matrices as float16, computed in float32).

Parity: ONNX Runtime vs PyTorch on random inputs and on a real 20-frame streaming rollout
(TorchBackend vs OnnxRuntimeBackend, same seed: the outputs of the denoising steps and the
keys/values of the context writes, which run the write-only graph of ``runtime.write_graph``); the
export fails (exit 1, files removed) when the max abs difference exceeds ``--tolerance`` (1e-3).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from astra_ros.files import atomic_write
from astra_ros.hashing import file_sha256
from astra_ros.model.actions import JOINT_POSITION_SCALE
from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
from astra_ros.model.checkpoint import CheckpointError, load_checkpoint
from astra_ros.model.config import AstraConfig
from astra_ros.model.rope import rope_tables
from astra_ros.runtime.sidecar import (
    CACHE_INPUTS,
    GRAPH_OUTPUTS,
    HISTORY_INPUTS,
    RING_INPUTS,
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    SLOT_TOKENS,
    STATE_INPUTS,
    graph_inputs,
    layer_inputs,
    resolve_shape,
)

log = logging.getLogger("astra_ros.export")

ROLLOUT_FRAMES = 20
EXPORT_PRECISIONS = ("fp32", "int8")
INT8_QUANTIZATION = "dynamic: MatMul weights int8 per output channel (reduce_range), activations at run time"
DEFAULT_OPSET = 20  # Gelu became an operator in 20; decomposed it cost ONNX Runtime 6-15% of a step


class StepGraph(nn.Module):
    """``AstraWorldModel.step`` on flat tensors (the exported signature), one ring tensor per layer."""

    def __init__(self, model: AstraWorldModel):
        super().__init__()
        self.model = model

    def forward(
        self,
        frame,
        previous,
        level,
        actions,
        action_mask,
        modality,
        cache_keys: tuple[torch.Tensor, ...],
        cache_values: tuple[torch.Tensor, ...],
        history_keys: tuple[torch.Tensor, ...],
        history_values: tuple[torch.Tensor, ...],
        cache_valid,
        history_valid,
        rope_cos,
        rope_sin,
        state=None,
        state_mask=None,
    ):
        actions = Actions(actions, action_mask, modality, state, state_mask)
        cache = KVCache(cache_keys, cache_values, cache_valid)
        history = KVCache(history_keys, history_values, history_valid)
        return tuple(
            self.model.step(frame, previous, level, actions, cache, rope_cos, rope_sin, history=history)
        )


def graph_args(named: dict[str, Any], depth: int) -> tuple[Any, ...]:
    """``StepGraph`` arguments from tensors named as the graph's inputs (per-layer rings grouped)."""
    rings = (tuple(named[n] for n in layer_inputs(name, depth)) for name in RING_INPUTS)
    host = [named[n] for n in ("frame", "previous", "level", "actions", "action_mask", "modality")]
    rest = [
        named[n]
        for n in ("cache_valid", "history_valid", "rope_cos", "rope_sin", *STATE_INPUTS)
        if n in named
    ]
    return (*host, *rings, *rest)


def io_spec(cfg: AstraConfig, batch: int | str) -> dict[str, list[dict[str, Any]]]:
    """Names, shapes and dtypes of the step graph. Symbolic sizes (``sidecar.resolve_shape``):
    ``batch`` (when ``batch`` is ``"batch"``), ``slots`` / ``slot_tokens`` (each stream's own ring)
    and ``history_slots`` (the shared history a step reads), each 1..max_history."""
    b, s, c, a = batch, cfg.image_size, cfg.channels, cfg.action_dim
    own = [cfg.heads, b, SLOT_TOKENS, cfg.head_dim]
    shared = ["history_slots", cfg.heads, cfg.tokens_per_frame, cfg.head_dim]
    entries = [cfg.depth, cfg.heads, b, cfg.tokens_per_frame, cfg.head_dim]
    shapes = {
        "frame": ([b, c, s, s], "float32"),
        "previous": ([b, c, s, s], "float32"),
        "level": ([b], "float32"),
        "actions": ([b, a], "float32"),
        "action_mask": ([b, a], "float32"),
        "modality": ([b], "int64"),
        **{n: (own, "float32") for name in CACHE_INPUTS for n in layer_inputs(name, cfg.depth)},
        **{n: (shared, "float32") for name in HISTORY_INPUTS for n in layer_inputs(name, cfg.depth)},
        "cache_valid": ([b, "slots"], "float32"),
        "history_valid": ([1, "history_slots"], "float32"),
        "rope_cos": ([b, cfg.head_dim // 2], "float32"),
        "rope_sin": ([b, cfg.head_dim // 2], "float32"),
        **{n: ([b, cfg.max_joints], "float32") for n in STATE_INPUTS},
        "output": ([b, c, s, s], "float32"),
        "new_keys": (entries, "float32"),
        "new_values": (entries, "float32"),
    }

    def entries(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"name": n, "shape": shapes[n][0], "dtype": shapes[n][1]} for n in names]

    return {"inputs": entries(graph_inputs(cfg.depth, cfg.robot_state)), "outputs": entries(GRAPH_OUTPUTS)}


def random_inputs(
    cfg: AstraConfig, batch: int, seed: int = 0, slots: int = 2, history_slots: int | None = None
) -> dict[str, np.ndarray]:
    """Random step inputs: frames/actions ~ N(0,1), levels U(0,1), own rings of ``slots`` frames and a
    shared history of ``history_slots`` (default max_history) with random keys/values and random
    valid slots, frame indices up to 10^6."""
    rng = np.random.default_rng(seed)
    history_slots = cfg.max_history if history_slots is None else history_slots
    spec = {
        e["name"]: resolve_shape(e["shape"], cfg, batch, slots, history_slots)
        for e in io_spec(cfg, "batch")["inputs"]
    }
    x = {n: rng.standard_normal(spec[n]).astype(np.float32) for n in ("frame", "previous", "actions")}
    x["level"] = rng.uniform(0, 1, batch).astype(np.float32)
    x["action_mask"] = (rng.uniform(0, 1, (batch, cfg.action_dim)) < 0.7).astype(np.float32)
    x["modality"] = rng.integers(0, cfg.modality_rows, batch).astype(np.int64)  # every id, NO_ACTION too
    for name in RING_INPUTS:
        for n in layer_inputs(name, cfg.depth):
            x[n] = rng.standard_normal(spec[n]).astype(np.float32)
    for name in ("cache_valid", "history_valid"):
        x[name] = (rng.uniform(0, 1, spec[name]) < 0.7).astype(np.float32)
    x["rope_cos"], x["rope_sin"] = rope_tables(rng.integers(0, 10**6, batch), cfg.head_dim)
    if cfg.robot_state:
        x["state"] = rng.uniform(-3, 3, (batch, cfg.max_joints)).astype(np.float32)
        x["state_mask"] = (rng.uniform(0, 1, (batch, cfg.max_joints)) < 0.7).astype(np.float32)
    return x


def export_onnx(model: AstraWorldModel, path: Path, batch: int | None, opset: int) -> None:
    """Export the step graph to ``path`` (``batch=None``: dynamic batch axis).

    Uses the dynamo exporter: the TorchScript one (``dynamo=False``) writes invalid Transpose perms
    for ``movedim`` with negative axes in patchify/unpatchify (ONNX Runtime rejects the graph).
    """
    cfg = model.cfg
    # every dynamic size above 1 in the example (torch.export specialises sizes of 1)
    inputs = random_inputs(cfg, batch or 2, slots=2, history_slots=max(2, cfg.max_history))
    example = {k: torch.from_numpy(v) for k, v in inputs.items()}
    # each stream's own ring is sized by the caller (a rollout: its horizon, at most max_history), and
    # a step reads the part of the shared history in its window
    most = max(2, cfg.max_history)
    slots, history = (
        torch.export.Dim("slots", min=1, max=most),
        torch.export.Dim("history_slots", min=1, max=most),
    )
    axes: dict[str, dict[int, Any]] = {n: {} for n in graph_inputs(cfg.depth, cfg.robot_state)}
    axes["cache_valid"][1] = slots
    axes["history_valid"][1] = history
    for n in (n for name in CACHE_INPUTS for n in layer_inputs(name, cfg.depth)):
        axes[n][2] = cfg.tokens_per_frame * slots
    for n in (n for name in HISTORY_INPUTS for n in layer_inputs(name, cfg.depth)):
        axes[n][0] = history
    if batch is None:
        b = torch.export.Dim("batch", min=1, max=4096)
        for n, dims in axes.items():
            if any(n.startswith(f"{ring}_") for ring in CACHE_INPUTS):  # (heads, batch, ...)
                dims[1] = b
            elif not n.startswith("history_"):
                dims[0] = b
    dynamic = graph_args(axes, cfg.depth)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            StepGraph(model.eval()),
            graph_args(example, cfg.depth),
            None,
            input_names=list(graph_inputs(cfg.depth, cfg.robot_state)),
            output_names=list(GRAPH_OUTPUTS),
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    program.save(str(path), external_data=False)


def parity_slots(cfg: AstraConfig, seed: int) -> tuple[int, int]:
    """Slots of the streams' own rings and of the shared history read in the ``seed``-th random parity
    check: (1, max_history) as in a live step, then (max_history, 1) as late in a long rollout."""
    return (cfg.max_history, 1) if seed % 2 else (1, cfg.max_history)


def parity_random(model: AstraWorldModel, onnx_path: Path, batches: list[int], threads: int) -> float:
    """Max abs diff of all outputs, ONNX Runtime vs PyTorch, over random inputs per batch size."""
    import onnxruntime as ort

    from astra_ros.runtime.onnxruntime_backend import session_options

    options = session_options(threads)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    graph = StepGraph(model.eval())
    worst = 0.0
    for seed, batch in enumerate(batches):
        x = random_inputs(model.cfg, batch, seed, *parity_slots(model.cfg, seed))
        got = session.run(list(GRAPH_OUTPUTS), x)
        with torch.inference_mode():
            ref = graph(*graph_args({n: torch.from_numpy(v) for n, v in x.items()}, model.cfg.depth))
        for g, r in zip(got, ref, strict=True):
            worst = max(worst, float(np.abs(g.astype(np.float64) - r.numpy().astype(np.float64)).max()))
    return worst


def round_weights_fp16(model: nn.Module) -> None:
    """Round ``model``'s weight matrices (and 2D buffers) to float16 values in place: the weights of
    a ``--weights fp16`` graph, so its parity check compares the same arithmetic."""
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.ndim >= 2 and tensor.dtype == torch.float32:
                tensor.copy_(tensor.half().float())


def parity_rollout(
    checkpoint: Path, onnx_path: Path, frames: int, threads: int, candidates: int = 2, weights: str = "fp32"
) -> dict[str, float]:
    """A real streaming rollout through both backends (ingest + predict, same seed).

    Ingests ``max_history + 2`` frames (eviction exercised), then predicts ``frames`` frames for
    ``candidates`` command sequences. Reports the max abs diff of every step output and of the
    predicted frames (0..1 scale).
    """
    from astra_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from astra_ros.runtime.torch_backend import TorchBackend

    torch_backend = TorchBackend.from_checkpoint(checkpoint, seed=0)
    if weights == "fp16":
        round_weights_fp16(torch_backend.model)
    ort_backend = OnnxRuntimeBackend.from_onnx(onnx_path, seed=0, threads=threads, verify_parity=False)
    records: dict[str, list[np.ndarray]] = {"torch": [], "onnxruntime": []}
    writes: dict[str, list[np.ndarray]] = {"torch": [], "onnxruntime": []}
    for name, backend in (("torch", torch_backend), ("onnxruntime", ort_backend)):
        step = backend._step

        def recording(*args, _step=step, _out=records[name], _writes=writes[name]):
            out, entries = _step(*args)
            if out is None:  # a context write (the write-only graph on ONNX Runtime): its keys/values
                _writes.append(np.stack([np.asarray(e)[:, : args[0].shape[0]] for e in entries]))
            else:
                _out.append(out.copy())
            return out, entries

        backend._step = recording  # type: ignore[method-assign]
    cfg = torch_backend.config
    modality = (torch_backend.info.modalities or ("joint_velocity",))[0]
    joints = len(torch_backend.info.joint_names) or 7
    dim = {"joint_velocity": joints, "joint_position": joints, "twist": 6, "pose_delta": 7, "discrete": 1}[
        modality
    ]
    rng = np.random.default_rng(1)
    observed = rng.integers(0, 256, (cfg.max_history + 2, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    commands = rng.uniform(-1, 1, (cfg.max_history + 2, dim)).astype(np.float32)
    plan = rng.uniform(-1, 1, (candidates, frames, dim)).astype(np.float32)
    if modality == "discrete":
        commands = rng.integers(0, cfg.num_discrete, commands.shape).astype(np.float32)
        plan = rng.integers(0, cfg.num_discrete, plan.shape).astype(np.float32)
    if modality == "joint_position":  # packed values in [-1, 1] like the other modalities'
        commands, plan = commands / JOINT_POSITION_SCALE, plan / JOINT_POSITION_SCALE
    states = rng.uniform(-2, 2, (len(observed), torch_backend.info.state_dim)).astype(np.float32)
    videos = {}
    for name, backend in (("torch", torch_backend), ("onnxruntime", ort_backend)):
        for frame, command, state in zip(observed, commands, states, strict=True):
            backend.ingest(frame, command, modality, state if state.size else None)
        videos[name] = backend.predict(plan, modality, seed=7)

    def worst(pairs: dict[str, list[np.ndarray]]) -> float:
        return max(float(np.abs(a - b).max()) for a, b in zip(*pairs.values(), strict=True))

    video = np.abs(videos["torch"].astype(np.int32) - videos["onnxruntime"].astype(np.int32)).max() / 255
    return {
        "rollout_steps": len(records["torch"]),
        "rollout_max_abs_diff": worst(records),
        "rollout_writes": len(writes["torch"]),
        "rollout_entries_max_abs_diff": worst(writes),
        "rollout_frames_max_abs_diff": float(video),
    }


def store_weights_fp16(path: Path) -> int:
    """Rewrite the ONNX file ``path`` with its float32 weight matrices stored as float16, each followed
    by a Cast to float32 (ONNX Runtime folds the casts when a session is created, so the graph still
    computes in float32 on rounded weights); biases and other vectors stay float32. -> weights converted."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, converted = [], 0
    for i in reversed(range(len(graph.initializer))):
        item = graph.initializer[i]
        if item.data_type != onnx.TensorProto.FLOAT or len(item.dims) < 2:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(item).astype(np.float16), f"{item.name}.fp16")
        casts.append(onnx.helper.make_node("Cast", [half.name], [item.name], to=onnx.TensorProto.FLOAT))
        del graph.initializer[i]
        graph.initializer.append(half)
        converted += 1
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(model, str(path))
    return converted


def quantize_int8(src: Path, dst: Path) -> None:
    """``dst``: ``src`` with its MatMul weights quantized to int8 (per output channel, activations
    quantized dynamically at run time: ``onnxruntime.quantization.quantize_dynamic``). ``reduce_range``
    (7-bit weights) because CPUs without VNNI multiply u8 x s8 in saturating 16-bit sums."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    del model.graph.value_info[:]  # the exporter's shape annotations fail the quantizer's shape inference
    quantize_dynamic(
        model,
        dst,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
    )


def graph_difference(
    reference: Path, other: Path, cfg: AstraConfig, batches: list[int], threads: int
) -> float:
    """Max abs diff of all outputs of two step graphs (ONNX Runtime) over random inputs."""
    import onnxruntime as ort

    from astra_ros.runtime.onnxruntime_backend import session_options

    options = session_options(threads)
    a, b = (
        ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in (reference, other)
    )
    worst = 0.0
    for seed, batch in enumerate(batches):
        x = random_inputs(cfg, batch, seed, *parity_slots(cfg, seed))
        for g, r in zip(b.run(list(GRAPH_OUTPUTS), x), a.run(list(GRAPH_OUTPUTS), x), strict=True):
            worst = max(worst, float(np.abs(g - r).max()))
    return worst


def precision_path(onnx_path: Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``: where the graph of another precision is written."""
    return onnx_path.with_suffix(f".{precision}.onnx")


def int8_graph(onnx_path: Path, cfg: AstraConfig, batches: list[int], threads: int) -> dict[str, Any]:
    """Quantize the fp32 graph ``onnx_path`` to ``precision_path(onnx_path, "int8")``; -> its sidecar
    ``graphs`` entry."""
    path = precision_path(onnx_path, "int8")
    quantize_int8(onnx_path, path)
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "quantization": INT8_QUANTIZATION,
        "max_abs_diff_vs_fp32": graph_difference(onnx_path, path, cfg, batches, threads),
    }


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


def sidecar_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json`` (the sidecar written next to the ONNX file)."""
    return Path(onnx_path).with_suffix(".json")


def export(
    checkpoint: str | Path,
    out: str | Path,
    max_history: int | None = None,
    batch: int | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-3,
    threads: int = 1,
    rollout_frames: int = ROLLOUT_FRAMES,
    precisions: tuple[str, ...] = ("fp32",),
    weights: str = "fp32",
) -> dict[str, Any]:
    """Export, write the sidecar, run parity. Raises ValueError (files removed) when parity fails.

    ``precisions``: the graphs written (``fp32`` always; ``int8``: ``<name>.int8.onnx``, recorded in
    the sidecar's ``graphs`` with its sha256 and its max abs difference from fp32 on random inputs,
    which no tolerance gates: its planner metrics decide). ``weights="fp16"``: the fp32 graph stores
    its weight matrices as float16 (``store_weights_fp16``: about half the file); parity compares it
    with the PyTorch model on the same rounded weights, and the difference from float32 weights is
    recorded.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    unknown = sorted(set(precisions) - set(EXPORT_PRECISIONS))
    if unknown or "fp32" not in precisions:
        raise ValueError(
            f"--precisions={list(precisions)}; expected fp32 and any of {list(EXPORT_PRECISIONS)}"
        )
    if weights not in ("fp32", "fp16"):
        raise ValueError(f"--weights={weights!r}; expected 'fp32' or 'fp16'")
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.config
    if max_history is not None and max_history != cfg.max_history:
        raise ValueError(
            f"--max-history={max_history} but the checkpoint was trained with max_history={cfg.max_history}; "
            "the cache size is part of the model (attention span): expected the same value"
        )
    if not 7 <= opset <= 23:
        raise ValueError(f"--opset={opset}; expected 7..23 ({DEFAULT_OPSET} recommended)")
    model = ckpt.build_model()
    out.parent.mkdir(parents=True, exist_ok=True)
    sidecar = sidecar_path(out)
    started = time.perf_counter()
    export_onnx(model, out, batch, opset)
    written = [out, sidecar]
    graphs: dict[str, Any] = {}
    batches = [batch] if batch is not None else [1, 3]
    try:
        if "int8" in precisions:
            written.append(precision_path(out, "int8"))
            graphs["int8"] = int8_graph(out, cfg, batches, threads)
        weights_record: dict[str, Any] = {"dtype": weights}
        if weights == "fp16":
            full = out.with_suffix(".fp32-weights.onnx")
            written.append(full)
            shutil.copy(out, full)
            weights_record["matrices"] = store_weights_fp16(out)
            weights_record["max_abs_diff_vs_fp32_weights"] = graph_difference(
                full, out, cfg, batches, threads
            )
            full.unlink()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    onnx_sha = file_sha256(out)
    spec = io_spec(cfg, batch if batch is not None else "batch")
    payload: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "onnx_file": out.name,
        "onnx_sha256": onnx_sha,
        "opset": opset,
        "batch": batch if batch is not None else "dynamic",
        "precision": "fp32",
        "weights": weights_record,
        "graphs": graphs,
        "config": cfg.to_dict(),
        "meta": ckpt.meta,
        "checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
        **spec,
        "exporter": {"torch": torch.__version__, "dynamo": True},
    }
    write_json_atomic(sidecar, payload)  # the rollout parity loads through the sidecar
    try:
        if weights == "fp16":
            round_weights_fp16(model)
        parity: dict[str, Any] = {"random_max_abs_diff": parity_random(model, out, batches, threads)}
        parity.update(parity_rollout(checkpoint, out, rollout_frames, threads, min(2, batch or 2), weights))
        parity["tolerance"] = tolerance
        checked = ("random_max_abs_diff", "rollout_max_abs_diff", "rollout_entries_max_abs_diff")
        worst = max(parity[k] for k in checked)
        parity["passed"] = bool(worst <= tolerance)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    payload["parity"] = parity
    payload["export_seconds"] = round(time.perf_counter() - started, 2)
    if not parity["passed"]:
        for path in written:
            path.unlink(missing_ok=True)
        raise ValueError(f"parity failed: max abs diff {worst:.3g} > tolerance {tolerance:g} ({parity})")
    write_json_atomic(sidecar, payload)
    return payload


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astra-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="astra_ros .pt checkpoint")
    p.add_argument("--out", required=True, help="output .onnx path (sidecar: same name, .json)")
    p.add_argument(
        "--max-history",
        type=int,
        default=None,
        help="cache size in frames; must equal the checkpoint's (checked)",
    )
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help="ONNX opset (20: Gelu is one operator; 18 for runtimes without opset 20)",
    )
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs diff allowed in parity (fp32)")
    p.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads for the parity run")
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32"],
        choices=EXPORT_PRECISIONS,
        help="graphs to write: fp32 (always) and int8 (<name>.int8.onnx, dynamic quantization)",
    )
    p.add_argument(
        "--weights",
        default="fp32",
        choices=("fp32", "fp16"),
        help="storage of the fp32 graph's weight matrices (fp16: about half the file, computed in fp32)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    if args.batch == "dynamic":
        batch = None
    else:
        try:
            batch = int(args.batch)
            if batch < 1:
                raise ValueError
        except ValueError:
            print(
                f"astra-export: --batch={args.batch!r}; expected 'dynamic' or a positive integer",
                file=sys.stderr,
            )
            return 2
    if not args.out.endswith(".onnx"):
        print(f"astra-export: --out={args.out!r}; expected a path ending in .onnx", file=sys.stderr)
        return 2
    try:
        payload = export(
            args.checkpoint,
            args.out,
            args.max_history,
            batch,
            args.opset,
            args.tolerance,
            args.threads,
            precisions=tuple(args.precisions),
            weights=args.weights,
        )
    except CheckpointError as err:
        print(f"astra-export: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"astra-export: {err}", file=sys.stderr)
        return 1
    parity = payload["parity"]
    print(f"wrote {args.out} (sha256 {payload['onnx_sha256'][:12]}) and {sidecar_path(args.out)}")
    print(
        "parity: "
        + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in parity.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
