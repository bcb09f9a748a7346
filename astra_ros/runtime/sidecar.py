"""ONNX step graphs and their ``model.json`` sidecars, verified before use. Torch-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astra_ros.hashing import file_sha256
from astra_ros.model.config import AstraConfig

SIDECAR_FORMAT = "astra_ros.onnx_step"
SIDECAR_VERSION = 4
# 2: ring-buffer cache with rotated keys, rope inputs; 3: one cache input per layer; 4: the history the
# streams share enters once (batch 1, history_* inputs) next to each stream's own ring (cache_*)
VERSION_CHANGES = {
    3: "one key/value ring per stream; version 4 adds the shared history (history_keys_L, history_values_L, "
    "history_valid) and gives each stream a ring of its own frames only",
}

# The step graph's tensors (astra_ros.export.onnx_export writes them in graph_inputs() order).
HOST_INPUTS = (  # fed from numpy at every step
    "frame",
    "previous",
    "level",
    "actions",
    "action_mask",
    "modality",
    "cache_valid",
    "history_valid",
    "rope_cos",
    "rope_sin",
)
STATE_INPUTS = ("state", "state_mask")  # models with a robot-state input only: (B, max_joints) f32
CACHE_INPUTS = ("cache_keys", "cache_values")  # each stream's own ring (B rows), bound where it lives
HISTORY_INPUTS = ("history_keys", "history_values")  # the ring every stream shares (1 row)
RING_INPUTS = (*CACHE_INPUTS, *HISTORY_INPUTS)
ENTRY_OUTPUTS = ("new_keys", "new_values")  # the step's own frame, stored into a ring slot by the host
GRAPH_OUTPUTS = ("output", *ENTRY_OUTPUTS)


SLOT_TOKENS = "slot_tokens"  # symbolic size of a stream's own ring: its slots x tokens per frame


def resolve_shape(
    shape: list[Any], config: AstraConfig, batch: int, slots: int, history_slots: int
) -> tuple[int, ...]:
    """A sidecar shape with its symbolic sizes replaced: ``batch``, ``slots`` (frames in each stream's
    own ring), ``slot_tokens`` (slots x tokens per frame), ``history_slots`` (frames of the shared
    history a step reads)."""
    sizes = {
        "batch": batch,
        "slots": slots,
        SLOT_TOKENS: slots * config.tokens_per_frame,
        "history_slots": history_slots,
    }
    return tuple(int(sizes.get(d, d)) for d in shape)


def layer_inputs(ring: str, depth: int) -> tuple[str, ...]:
    """The graph inputs of one ring buffer, one per layer: ``cache_keys_0`` .. ``cache_keys_{depth-1}``.

    Separate inputs (views of one host buffer) because slicing a stacked input costs ONNX Runtime a
    copy of the whole cache at every step.
    """
    return tuple(f"{ring}_{layer}" for layer in range(depth))


def host_inputs(robot_state: bool) -> tuple[str, ...]:
    """The inputs fed from numpy at every step, in the order backends pass them."""
    return (*HOST_INPUTS, *STATE_INPUTS) if robot_state else HOST_INPUTS


def graph_inputs(depth: int, robot_state: bool = False) -> tuple[str, ...]:
    rings = (n for name in RING_INPUTS for n in layer_inputs(name, depth))
    return (*HOST_INPUTS[:6], *rings, *host_inputs(robot_state)[6:])


class ModelLoadError(ValueError):
    """A model file is missing, corrupt, of the wrong kind, or does not match its recorded hash."""


@dataclass(frozen=True)
class OnnxModel:
    """An exported step graph whose bytes match the sha256 its sidecar records."""

    path: Path
    sidecar: Path
    payload: dict[str, Any]
    config: AstraConfig
    meta: dict[str, Any]
    sha256: str

    @property
    def precisions(self) -> tuple[str, ...]:
        """The graphs this export holds: ``fp32`` (this file) and those in the sidecar's ``graphs``."""
        return ("fp32", *sorted(self.payload.get("graphs") or {}))

    def graph(self, precision: str) -> tuple[Path, str]:
        """(path, sha256) of the step graph of ``precision``, its bytes checked against the sidecar."""
        if precision == "fp32":
            return self.path, self.sha256
        entry = (self.payload.get("graphs") or {}).get(precision)
        if entry is None:
            raise ModelLoadError(
                f"precision={precision!r} but {self.sidecar} records the precisions {list(self.precisions)}; "
                f"expected one of them (astra-export --precisions fp32 {precision} adds it)"
            )
        try:
            name, expected = str(entry["file"]), str(entry["sha256"])
        except (KeyError, TypeError) as err:
            raise ModelLoadError(f"sidecar {self.sidecar} graphs.{precision} is incomplete: {err}") from err
        if Path(name).name != name:
            raise ModelLoadError(
                f"sidecar {self.sidecar} graphs.{precision}.file={name!r}; expected a file name next to it"
            )
        path = self.path.parent / name
        if not path.is_file():
            raise ModelLoadError(f"{precision} graph {path} named by {self.sidecar} does not exist")
        sha = file_sha256(path)
        if sha != expected:
            raise ModelLoadError(
                f"{precision} graph {path} has sha256 {sha[:16]}...; its sidecar {self.sidecar} expects "
                f"{expected[:16]}... (file modified or corrupt: re-run astra-export)"
            )
        return path, sha

    @property
    def batch(self) -> int | None:
        """Fixed graph batch, or None for a dynamic batch axis."""
        b = self.payload.get("batch", "dynamic")
        return None if b == "dynamic" else int(b)


def find_sidecar(onnx_path: Path) -> Path | None:
    """``<name>.json`` next to the ONNX file, else ``model.json`` in the same folder naming this file."""
    own = onnx_path.with_suffix(".json")
    if own.is_file():
        return own
    shared = onnx_path.parent / "model.json"
    if shared.is_file():
        try:
            if json.loads(shared.read_text()).get("onnx_file") == onnx_path.name:
                return shared
        except (OSError, ValueError):
            return shared  # reported as corrupt by read_sidecar
    return None


def read_sidecar(path: Path, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{what} sidecar {path} is unreadable or not JSON ({err})") from err
    if not isinstance(payload, dict):
        raise ModelLoadError(f"{what} sidecar {path} holds {type(payload).__name__}; expected a JSON object")
    return payload


def load_onnx_model(path: str | Path, verify: bool = True) -> OnnxModel:
    """Read and check the sidecar of ``path``; with ``verify`` the ONNX sha256 must match it."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model {path} does not exist; expected a file written by astra-export")
    sidecar = find_sidecar(path)
    if sidecar is None:
        raise ModelLoadError(
            f"ONNX model {path} has no sidecar; expected {path.with_suffix('.json')} "
            "(written by astra-export next to the .onnx)"
        )
    payload = read_sidecar(sidecar, "ONNX")
    if payload.get("format") != SIDECAR_FORMAT:
        raise ModelLoadError(
            f"sidecar {sidecar} has format={payload.get('format')!r}; expected {SIDECAR_FORMAT!r}"
        )
    version = payload.get("version")
    if version != SIDECAR_VERSION:
        change = VERSION_CHANGES.get(version, "an older cache interface") if isinstance(version, int) else ""
        raise ModelLoadError(
            f"sidecar {sidecar} has version={version!r}; expected {SIDECAR_VERSION} (the step graph's "
            f"cache interface changed{': ' + change if change else ''}): re-export it with "
            f"`astra-export --checkpoint <its .pt> --out {path}`"
        )
    try:
        config = AstraConfig.from_dict(payload["config"])
        expected = str(payload["onnx_sha256"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(f"sidecar {sidecar} is incomplete or invalid: {err}") from err
    sha = file_sha256(path) if verify else expected
    if sha != expected:
        raise ModelLoadError(
            f"ONNX model {path} has sha256 {sha[:16]}...; its sidecar {sidecar} expects {expected[:16]}... "
            "(file modified or corrupt: re-run astra-export)"
        )
    return OnnxModel(path, sidecar, payload, config, dict(payload.get("meta") or {}), sha)
