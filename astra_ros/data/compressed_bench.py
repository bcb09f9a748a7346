"""``python -m astra_ros.data.compressed_bench --bench``: the CompressedImage decode cost per frame.

JPEG and PNG frames (``camera_like_frame``: what compresses like a camera image) decoded by
``data/compressed.py`` and resized to the model size, against the raw rgb8 conversion of the same
frame in the same run.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import cv2
import numpy as np

from astra_ros.bench import median_ms, table
from astra_ros.data.compressed import CODECS, compressed_to_rgb, encode_rgb, image_header
from astra_ros.data.images import image_message_to_rgb, resize_to_model


def camera_like_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A synthetic (H, W, 3) uint8 frame with what compresses like a camera image: smooth shading,
    a few sharp-edged objects and sensor noise (sigma 2)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([60 + 120 * x / width, 80 + 100 * y / height, 150 - 60 * (x + y) / (width + height)], -1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.2) * min(height, width)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def run_bench(repeats: int) -> str:
    """Decode cost per frame against the raw rgb8 conversion of the same frame (same run)."""
    rows = []
    for height, width in ((64, 64), (480, 640), (1080, 1920)):
        rgb = camera_like_frame(height, width)
        raw = SimpleNamespace(
            encoding="rgb8", height=height, width=width, step=3 * width, is_bigendian=0, data=rgb.tobytes()
        )
        raw_ms = median_ms(lambda m=raw: resize_to_model(image_message_to_rgb(m), 64), repeats, 2)
        for codec in CODECS:
            fmt, data = encode_rgb(rgb, codec)
            msg = SimpleNamespace(format=fmt, data=data)
            header_ms = median_ms(lambda d=data: image_header(d), repeats, 2)
            decode_ms = median_ms(lambda m=msg: compressed_to_rgb(m), repeats, 2)
            total_ms = median_ms(lambda m=msg: resize_to_model(compressed_to_rgb(m), 64), repeats, 2)
            rows.append(
                [
                    f"{width}x{height}",
                    codec,
                    f"{len(data) / rgb.nbytes:.3f}",
                    header_ms * 1000,
                    decode_ms,
                    total_ms,
                    raw_ms,
                    total_ms / raw_ms,
                ]
            )
    header = [
        "frame",
        "codec",
        "bytes / raw",
        "header check us",
        "decode to RGB ms",
        "decode + resize to 64 ms",
        "raw rgb8 + resize ms",
        "compressed / raw",
    ]
    return table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m astra_ros.data.compressed_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--bench", action="store_true", help="print the decode cost per frame")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement (median)")
    args = parser.parse_args(argv)
    if not args.bench:
        parser.print_help()
        return 2
    print(
        f"JPEG quality 95 and PNG level 3 (image_transport's defaults), synthetic camera-like frames, "
        f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads; medians of {args.repeats} calls"
    )
    print(run_bench(args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
