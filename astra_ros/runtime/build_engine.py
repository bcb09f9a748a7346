"""``astra-build-engine``: build (or reuse) the cached TensorRT engine of an exported ONNX model.

    astra-build-engine --onnx engines/astra_small.onnx --out-dir engines/cache --precision fp16

The engine and its sidecar go to the cache of ``runtime/engine_cache.py``; ``backend: tensorrt``
(or ``auto``) finds them there. Exits 3 when TensorRT cannot be imported on this machine.
"""

from __future__ import annotations

import argparse
import logging
import sys

from astra_ros.runtime.availability import tensorrt_available
from astra_ros.runtime.engine_cache import PRECISIONS, EngineBuilder, Profile, ensure_engine, sidecar_of
from astra_ros.runtime.sidecar import load_onnx_model
from astra_ros.runtime.tensorrt_backend import TensorRTRuntime


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astra-build-engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--onnx", required=True, help="step graph from astra-export (.json sidecar next to it)")
    p.add_argument("--out-dir", default="engines/cache", help="engine cache directory (never committed)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp16",
        help="TensorRT 10.x: builder flag; 11.x: must match the ONNX types (see README)",
    )
    p.add_argument("--max-batch", type=int, default=16, help="largest batch of the optimization profile")
    p.add_argument("--opt-batch", type=int, default=None, help="batch TensorRT tunes for (default: max)")
    return p


def main(argv: list[str] | None = None, builder: EngineBuilder | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        onnx = load_onnx_model(args.onnx)
        profile = Profile(1, args.opt_batch or args.max_batch, args.max_batch)
    except ValueError as err:
        print(f"astra-build-engine: {err}", file=sys.stderr)
        return 2
    if builder is None:
        if not tensorrt_available():
            print(
                "astra-build-engine: TensorRT is not installed (`import tensorrt` fails), so no engine "
                f"can be built on this machine. Run {args.onnx} with the onnxruntime backend instead "
                "(backend auto falls back to it), or install TensorRT 10.x/11.x on a GPU machine and re-run.",
                file=sys.stderr,
            )
            return 3
        builder = TensorRTRuntime()
    engine = ensure_engine(onnx, args.out_dir, builder, args.precision, profile)
    print(f"engine {engine} (sidecar {sidecar_of(engine)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
