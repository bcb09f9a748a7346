"""CompressedImage decoding (astra_ros/data/compressed.py): round trips within the codec's error,
format strings, and every bad message refused with a reason, the size before any decoding."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from astra_ros.data import compressed
from astra_ros.data.compressed import (
    CompressedImageError,
    compressed_to_rgb,
    encode_rgb,
    image_header,
    parse_format,
)
from astra_ros.data.compressed_bench import camera_like_frame
from astra_ros.data.images import ImageFormatError

FRAME = camera_like_frame(120, 160)


def message(fmt: str, data: bytes) -> CompressedImage:
    """An rclpy message, as the node receives it (data is an array.array)."""
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def test_png_round_trip_is_exact_and_jpeg_is_within_its_error():
    fmt, data = encode_rgb(FRAME, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_rgb(message(fmt, data)), FRAME)
    fmt, data = encode_rgb(FRAME, "jpeg", quality=95)
    out = compressed_to_rgb(message(fmt, data))
    assert out.shape == FRAME.shape and out.dtype == np.uint8
    assert psnr(out, FRAME) > 30.0  # JPEG q95 with 4:2:0 chroma on sharp colour edges: ~34 dB
    swapped = out[:, :, ::-1]  # channel order matters: a BGR/RGB mix-up is far outside the error
    assert psnr(swapped, FRAME) < 20.0


@pytest.mark.parametrize(
    ("fmt", "codec", "order"),
    [
        ("jpeg", "jpeg", "bgr8"),
        ("png", "png", "bgr8"),
        ("jpg", "jpeg", "bgr8"),
        ("", "", "bgr8"),
        ("rgb8; jpeg compressed bgr8", "jpeg", "bgr8"),
        ("bgr8; png compressed rgb8", "png", "rgb8"),
        ("mono16; png compressed mono16", "png", "mono16"),
    ],
)
def test_format_strings(fmt: str, codec: str, order: str):
    parsed = parse_format(fmt)
    assert (parsed.codec, parsed.data_encoding) == (codec, order)


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        ("16UC1; compressedDepth png", "compressedDepth is not supported"),
        ("tiff", "codec 'tiff' is not supported"),
        ("rgb8; jpeg compressed yuv422", "compressed data encoding 'yuv422'"),
        ("rgb8; jpeg squashed bgr8", "expected 'jpeg', 'png'"),
        ("a; b; c", "expected 'jpeg', 'png'"),
    ],
)
def test_bad_format_strings_are_refused_by_name(fmt: str, words: str):
    with pytest.raises(CompressedImageError, match=words) as err:
        parse_format(fmt)
    assert err.value.reason == "image_format" and fmt in str(err.value)


def test_rgb_ordered_data_grey_alpha_and_16_bit():
    ok, rgb_data = cv2.imencode(".png", FRAME)  # RGB bytes written as they are
    np.testing.assert_array_equal(
        compressed_to_rgb(message("rgb8; png compressed rgb8", rgb_data.tobytes())), FRAME
    )
    grey = FRAME[:, :, 1]
    ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb(message("mono8; jpeg compressed mono8", data.tobytes()))
    assert (
        out.shape == FRAME.shape
        and np.array_equal(out[:, :, 0], out[:, :, 2])
        and psnr(out[:, :, 0], grey) > 35
    )
    bgra = np.dstack([FRAME[:, :, ::-1], np.full(FRAME.shape[:2], 7, np.uint8)])
    ok, data = cv2.imencode(".png", bgra)
    np.testing.assert_array_equal(
        compressed_to_rgb(message("bgra8; png compressed bgra8", data.tobytes())), FRAME
    )
    wide = FRAME.astype(np.uint16) * 257  # 16-bit: scaled back by 255/65535
    ok, data = cv2.imencode(".png", np.ascontiguousarray(wide[:, :, ::-1]))
    np.testing.assert_array_equal(
        compressed_to_rgb(message("bgr16; png compressed bgr16", data.tobytes())), FRAME
    )


def test_headers_give_the_size_without_decoding():
    for codec in ("jpeg", "png"):
        _, data = encode_rgb(FRAME, codec)
        header = image_header(data)
        assert (header.codec, header.width, header.height, header.channels) == (codec, 160, 120, 3)
    _, progressive = cv2.imencode(".jpg", FRAME, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert image_header(progressive.tobytes()).height == 120
    # An APP segment before the frame header is skipped by its length.
    _, plain = encode_rgb(FRAME, "jpeg")
    app = b"\xff\xe1" + (2 + 5000).to_bytes(2, "big") + bytes(5000)
    padded = plain[:2] + app + plain[2:]
    assert compressed_to_rgb(message("jpeg", padded)).shape == FRAME.shape


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; the rest is one tiny IDAT chunk."""
    _, small = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    data = bytearray(small.tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def jpeg_bomb(width: int, height: int) -> bytes:
    _, small = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(small.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize(("fmt", "make"), [("png", png_bomb), ("jpeg", jpeg_bomb)])
def test_oversized_images_are_refused_before_decoding(monkeypatch, fmt, make):
    def no_decoding(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called for an image above max_pixels")

    monkeypatch.setattr(compressed.cv2, "imdecode", no_decoding)
    with pytest.raises(
        CompressedImageError, match=r"60000x50000 = 3000000000 pixels; expected at most"
    ) as err:
        compressed_to_rgb(message(fmt, make(60000, 50000)))
    assert err.value.reason == "image_too_large"
    with pytest.raises(CompressedImageError, match="1920x1080 = 2073600 pixels; expected at most 1000000"):
        compressed_to_rgb(message(fmt, make(1920, 1080)), max_pixels=1_000_000)


def test_bad_data_is_a_clear_rejection():
    _, jpeg = encode_rgb(FRAME, "jpeg")
    _, png = encode_rgb(FRAME, "png")
    cases = {
        "image_empty": message("jpeg", b""),
        "image_header": message("jpeg", b"GIF89a" + bytes(100)),
        "image_format": message("png", jpeg),  # the format string says png, the data is JPEG
        "image_decode": message("png", png[: len(png) // 2]),  # truncated after the header
    }
    for reason, msg in cases.items():
        with pytest.raises(CompressedImageError) as err:
            compressed_to_rgb(msg)
        assert err.value.reason == reason, (reason, str(err.value))
        assert isinstance(err.value, ImageFormatError)  # what the node's image callback catches
    with pytest.raises(CompressedImageError, match="no complete frame header") as err:
        compressed_to_rgb(message("jpeg", jpeg[:40]))
    assert err.value.reason == "image_header"
    with pytest.raises(CompressedImageError, match="header says 0x120"):
        compressed_to_rgb(message("png", png_bomb(0, 120)))


def test_rosbags_style_messages_decode_too():
    _, data = encode_rgb(FRAME, "png")
    for fmt in ("png", "rgb8; png compressed bgr8"):  # both say the data is BGR, as OpenCV writes it
        msg = SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))
        np.testing.assert_array_equal(compressed_to_rgb(msg), FRAME)
