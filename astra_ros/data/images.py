"""ROS image messages -> RGB arrays at model resolution. Torch-free.

Used by the bag reader and by the ROS node on live rclpy messages. Conversion goes through
``rosbags-image`` (which accepts rosbags and rclpy ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage`` objects alike) and OpenCV.

- Colour encodings (rgb8, bgr8, rgba8, bgra8, yuv422/uyvy, yuyv, nv12, nv21, bayer_*, rgb16, ...)
  are converted to rgb8; 16-bit colour is scaled by 255/65535.
- ``mono8``/``mono16``/``8UC1`` are grey, replicated to three channels.
- Depth-like single-channel images (``16UC1``, ``32FC1``, ``64FC1``, ...) are min-max normalised
  per frame to 0..255 grey (NaN/inf -> 0); float images already in [0, 1] are scaled by 255.
- ``8UC3``/``8UC4`` are taken as BGR/BGRA (the cv_bridge convention).
- The row ``step`` is honoured (padded rows are supported) and checked against the data length.

Untrusted input: every failure is an ``ImageFormatError`` whose ``reason`` is a counter key
(``image_empty``, ``image_too_large``, ``image_encoding``, ``image_odd_size``, ``image_step``,
``image_data_length``, ``image_decode``); nothing else escapes. ``max_pixels`` is checked from the
header fields (and from a PNG/JPEG header for compressed data) before anything is decoded.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from rosbags.image import ImageError as _RbImageError
from rosbags.image import image_to_cvimage as _rb_image_to_cvimage
from rosbags.image.image import convert_color as _rb_convert_color
from rosbags.image.image import to_cvtype as _rb_to_cvtype

from astra_ros.data.compressed import MAX_PIXELS, compressed_to_rgb
from astra_ros.data.image_errors import ImageFormatError

__all__ = ["ImageFormatError", "image_message_to_rgb", "resize_to_model"]


YUV422_ENCODINGS = ("uyvy", "yuv422", "yuyv", "yuv422_yuy2")  # two pixels share one U and V: even width
NV_ENCODINGS = ("nv12", "nv21")  # 4:2:0, a half-height UV plane: even width and height


def _is_compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _as_bytes(data: Any) -> np.ndarray:
    """Message ``data`` (bytes, array.array, list or ndarray) -> flat uint8 array (no copy if possible)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _to_uint8_rgb(img: np.ndarray, what: str) -> np.ndarray:
    """Decoded OpenCV image (grey or BGR/BGRA, any depth) -> (H, W, 3) uint8 RGB."""
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageFormatError(f"{what}: decoded dtype {img.dtype}; expected uint8 or uint16")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ImageFormatError(f"{what}: decoded {img.shape[2]} channels; expected 1, 3 or 4")


def _normalise_grey(img: np.ndarray) -> np.ndarray:
    """Single-channel depth-like image -> (H, W, 3) uint8 grey, min-max per frame."""
    x = img.astype(np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        grey = np.zeros(x.shape, np.uint8)
    else:
        lo, hi = float(x[finite].min()), float(x[finite].max())
        if img.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        y = np.where(finite, (x - lo) * scale, 0.0)
        grey = np.clip(y + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def _check_pixels(height: int, width: int, max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise ImageFormatError(
            f"{what} is {width}x{height} = {height * width} pixels; expected at most "
            f"max_image_pixels={max_pixels}",
            "image_too_large",
        )


def _compressed_to_rgb(msg: Any, max_pixels: int | None) -> np.ndarray:
    """One CompressedImage decoder for bags and the node: ``astra_ros.data.compressed``."""
    return compressed_to_rgb(msg, MAX_PIXELS if max_pixels is None else max_pixels)


def _raw_to_rgb(msg: Any, max_pixels: int | None) -> np.ndarray:
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(
            f"Image has zero size: height={height}, width={width} (encoding={encoding!r}); expected both > 0",
            "image_empty",
        )
    _check_pixels(height, width, max_pixels, f"Image encoding={encoding!r}")
    try:
        _bits, _fmt, typestr, nchan = _rb_to_cvtype(encoding)
    except _RbImageError:
        raise ImageFormatError(
            f"Image encoding={encoding!r} is not supported; expected a sensor_msgs/image_encodings "
            "value such as rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1, yuv422"
        ) from None
    itemsize = np.dtype(typestr).itemsize
    if encoding in NV_ENCODINGS:
        if height % 2 or width % 2:
            raise ImageFormatError(
                f"Image encoding={encoding!r} is {width}x{height}; expected an even width and height "
                "(4:2:0 chroma, height*3/2 rows)",
                "image_odd_size",
            )
        rows = height * 3 // 2  # Y plane plus interleaved UV plane at half height
        row_bytes = width
    elif encoding in YUV422_ENCODINGS:
        if width % 2:
            raise ImageFormatError(
                f"Image encoding={encoding!r} has width={width}; expected an even width "
                "(two pixels share one U and V)",
                "image_odd_size",
            )
        rows, row_bytes = height, width * 2
    else:
        rows, row_bytes = height, width * nchan * itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f"Image step={step} for width={width} encoding={encoding!r}; expected at least {row_bytes}",
            "image_step",
        )
    buf = _as_bytes(msg.data)
    if buf.size != rows * step:
        raise ImageFormatError(
            f"Image data length={buf.size} for height={height} step={step} encoding={encoding!r}; "
            f"expected {rows * step} (height*step)",
            "image_data_length",
        )
    # Honour row padding: keep the first row_bytes of each row.
    packed = buf.reshape(rows, step)[:, :row_bytes]
    packed = np.ascontiguousarray(packed)
    if encoding in ("nv12", "nv21"):
        view = packed.reshape(rows, width)
        code = cv2.COLOR_YUV2RGB_NV12 if encoding == "nv12" else cv2.COLOR_YUV2RGB_NV21
        return cv2.cvtColor(view, code)

    # The fields rosbags-image reads, with row padding removed (it ignores ``step``).
    tight = SimpleNamespace(
        encoding=encoding,
        height=height,
        width=width,
        is_bigendian=int(bool(msg.is_bigendian)),
        data=packed.reshape(-1),
    )
    img = np.ascontiguousarray(_rb_image_to_cvimage(tight))  # type: ignore[arg-type]
    if nchan == 1 and _fmt.name == "GENERIC" and typestr != "uint8":
        return _normalise_grey(img)
    if _fmt.name == "GENERIC":
        if typestr != "uint8" or nchan not in (1, 3, 4):
            raise ImageFormatError(
                f"Image encoding={encoding!r} ({nchan} channels of {typestr}) cannot be shown as RGB; "
                "expected 1-channel (depth/grey) or 8-bit 1/3/4-channel data"
            )
        return _to_uint8_rgb(np.asarray(img), f"Image encoding={encoding!r}")
    try:
        rgb = _rb_convert_color(img, encoding, "rgb8")
    except _RbImageError as err:
        raise ImageFormatError(f"Image encoding={encoding!r} cannot be converted to rgb8: {err}") from None
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageFormatError(
            f"Image encoding={encoding!r} converted to shape {rgb.shape} {rgb.dtype}; "
            "expected (H, W, 3) uint8"
        )
    return np.ascontiguousarray(rgb)


def image_message_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """``sensor_msgs/Image`` or ``CompressedImage`` (rosbags or rclpy) -> (H, W, 3) uint8 RGB.

    Raises ImageFormatError (a ValueError, with a ``reason``) and nothing else: for unknown
    encodings, zero size, more than ``max_pixels`` pixels (None: no limit), odd sizes a chroma
    subsampled encoding cannot have, a data length that is not height*step, or data that does
    not decode.
    """
    if not _is_compressed(msg) and not hasattr(msg, "encoding"):
        raise ImageFormatError(
            f"message of type {type(msg).__name__} has no 'encoding' or 'format' field; "
            "expected sensor_msgs/Image or sensor_msgs/CompressedImage"
        )
    try:
        if _is_compressed(msg):
            return _compressed_to_rgb(msg, max_pixels)
        return _raw_to_rgb(msg, max_pixels)
    except ImageFormatError:
        raise
    except (cv2.error, struct.error, _RbImageError, ValueError, TypeError, OverflowError, MemoryError) as err:
        raise ImageFormatError(
            f"image could not be converted: {type(err).__name__}: {err}", "image_decode"
        ) from None


def resize_to_model(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then area-resize to (size, size, 3) uint8."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageFormatError(f"resize_to_model got shape {rgb.shape} {rgb.dtype}; expected (H, W, 3) uint8")
    if size <= 0:
        raise ValueError(f"size={size}; expected a positive number of pixels")
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise ImageFormatError(f"resize_to_model got an empty image of shape {rgb.shape}; expected H, W > 0")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interp)
    return np.ascontiguousarray(out)
