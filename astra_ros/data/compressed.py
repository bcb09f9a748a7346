"""``sensor_msgs/CompressedImage`` (JPEG, PNG) <-> RGB arrays, with the size checked before decoding.

The format string follows image_transport's ``compressed`` plugin: ``"rgb8; jpeg compressed bgr8"``
(encoding before compression; codec; channel order of the compressed data), or just ``"jpeg"`` /
``"png"`` (BGR data, as ``cv2.imencode`` writes). The image dimensions are read from the PNG IHDR
chunk or the JPEG frame header (a few bytes, no decoding), so a small message that would expand to
a huge image (a decompression bomb) is refused before OpenCV allocates it. Decoding uses
``cv2.imdecode``; 16-bit data is scaled by 255/65535, grey is replicated to three channels, alpha
is dropped. Every failure is a ``CompressedImageError`` whose ``reason`` is the node's counter key.

``python -m astra_ros.data.compressed_bench`` prints the decode cost per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from astra_ros.data.image_errors import ImageFormatError

__all__ = [
    "CODECS",
    "MAX_PIXELS",
    "CompressedFormat",
    "CompressedImageError",
    "compressed_to_rgb",
    "encode_rgb",
    "image_header",
    "parse_format",
]

CODECS = ("jpeg", "png")
MAX_PIXELS = 3840 * 2160
"""Default limit on width * height (4K UHD)."""
DATA_ENCODINGS = ("bgr8", "bgra8", "rgb8", "rgba8", "mono8", "bgr16", "bgra16", "rgb16", "rgba16", "mono16")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: markers without a length field
JPEG_HEADER_SCAN = 256 * 1024  # the frame header must come within this many bytes (bounds the scan)


class CompressedImageError(ImageFormatError):
    """A CompressedImage the node rejects; ``reason`` is its counter key in /diagnostics."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CompressedFormat:
    codec: str  # "jpeg" | "png" | "" (told by the data itself)
    data_encoding: str  # channel order of the compressed data
    original: str  # encoding before compression ("" when the format does not say)


@dataclass(frozen=True)
class Header:
    codec: str
    width: int
    height: int
    channels: int


def parse_format(text: str) -> CompressedFormat:
    """image_transport ``compressed`` format string -> codec and channel order."""
    fmt = str(text).strip()
    expected = "expected 'jpeg', 'png' or image_transport's '<encoding>; <jpeg|png> compressed <encoding>'"
    parts = [p.strip() for p in fmt.split(";")]
    if len(parts) > 2:
        raise CompressedImageError(f"CompressedImage format={fmt!r}; {expected}", "image_format")
    original = parts[0] if len(parts) == 2 else ""
    words = parts[-1].split()
    if words and words[0] == "compressedDepth":
        raise CompressedImageError(
            f"CompressedImage format={fmt!r}: compressedDepth is not supported; {expected}", "image_format"
        )
    if not words:
        codec, data_encoding = "", "bgr8"
    elif len(words) == 1:
        codec, data_encoding = words[0].lower(), "bgr8"
    elif len(words) == 3 and words[1] == "compressed":
        codec, data_encoding = words[0].lower(), words[2]
    else:
        raise CompressedImageError(f"CompressedImage format={fmt!r}; {expected}", "image_format")
    codec = "jpeg" if codec == "jpg" else codec
    if codec and codec not in CODECS:
        raise CompressedImageError(
            f"CompressedImage format={fmt!r}: codec {codec!r} is not supported; {expected}", "image_format"
        )
    if data_encoding not in DATA_ENCODINGS:
        raise CompressedImageError(
            f"CompressedImage format={fmt!r}: compressed data encoding {data_encoding!r}; "
            f"expected one of {list(DATA_ENCODINGS)}",
            "image_format",
        )
    return CompressedFormat(codec, data_encoding, original)


def _png_header(data: bytes | memoryview) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise CompressedImageError("PNG data has no IHDR chunk after the signature", "image_header")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    colour_type = data[25]
    if colour_type not in PNG_CHANNELS:
        raise CompressedImageError(
            f"PNG colour type {colour_type}; expected one of 0, 2, 3, 4, 6", "image_header"
        )
    return Header("png", width, height, PNG_CHANNELS[colour_type])


def _jpeg_header(data: bytes | memoryview) -> Header:
    pos, end = 2, min(len(data), JPEG_HEADER_SCAN)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise CompressedImageError(
                f"JPEG data: no marker at byte {pos}; the data is corrupt", "image_header"
            )
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_NO_LENGTH:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan or end of image before any frame header
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in JPEG_SOF:
            if pos + 10 > len(data) or length < 8:
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return Header("jpeg", width, height, data[pos + 9])
        if length < 2:
            raise CompressedImageError(
                f"JPEG segment length {length} at byte {pos}; expected >= 2", "image_header"
            )
        pos += 2 + length
    raise CompressedImageError(
        f"JPEG data has no complete frame header (SOF) in its first {end} bytes; truncated or corrupt",
        "image_header",
    )


def image_header(data: bytes | memoryview) -> Header:
    """Codec and dimensions from the header bytes of PNG or JPEG data (nothing is decoded)."""
    if data[:8] == PNG_SIGNATURE:
        return _png_header(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_header(data)
    raise CompressedImageError(
        f"data starts with {data[:8].hex()}; expected a PNG signature or a JPEG SOI marker", "image_header"
    )


def _as_array(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _to_rgb(img: np.ndarray, data_encoding: str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    img = img[:, :, :3]
    if data_encoding.startswith("rgb"):
        return np.ascontiguousarray(img)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def compressed_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (rclpy or rosbags) -> (H, W, 3) uint8 RGB.

    Raises CompressedImageError (an ImageFormatError) for an unsupported format string, data that
    is not the format's codec, more than ``max_pixels`` pixels (checked before decoding), or data
    that does not decode.
    """
    fmt = parse_format(getattr(msg, "format", ""))
    buf = _as_array(msg.data)
    if buf.size == 0:
        raise CompressedImageError(f"CompressedImage format={msg.format!r} has no data", "image_empty")
    header = image_header(memoryview(buf))
    if fmt.codec and header.codec != fmt.codec:
        raise CompressedImageError(
            f"CompressedImage format={msg.format!r} but the data is {header.codec}; expected {fmt.codec}",
            "image_format",
        )
    pixels = header.width * header.height
    if header.width == 0 or header.height == 0:
        raise CompressedImageError(
            f"CompressedImage {header.codec} header says {header.width}x{header.height}; expected > 0",
            "image_empty",
        )
    if pixels > max_pixels:
        raise CompressedImageError(
            f"CompressedImage {header.codec} of {header.width}x{header.height} = {pixels} pixels; "
            f"expected at most {max_pixels}",
            "image_too_large",
        )
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.shape[:2] != (header.height, header.width):
        raise CompressedImageError(
            f"CompressedImage {header.codec} of {header.width}x{header.height}, {buf.size} bytes, "
            "did not decode; the data is truncated or corrupt",
            "image_decode",
        )
    return _to_rgb(img, fmt.data_encoding)


def encode_rgb(
    rgb: np.ndarray, codec: str = "jpeg", quality: int = 95, png_level: int = 3
) -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB -> (format string, data) as image_transport's ``compressed`` publisher
    writes them (BGR data; its default JPEG quality 95 and PNG level 3)."""
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r}; expected one of {list(CODECS)}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"encode_rgb got {rgb.shape} {rgb.dtype}; expected (H, W, 3) uint8")
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, quality] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, png_level]
    )
    ok, data = cv2.imencode(f".{codec}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {codec}")
    return f"rgb8; {codec} compressed bgr8", data.tobytes()
