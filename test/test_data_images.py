"""image_message_to_rgb / resize_to_model on rosbags messages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from astra_ros.data.images import ImageFormatError, image_message_to_rgb, resize_to_model

TS = get_typestore(Stores.ROS2_KILTED)
Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
HEADER = Header(stamp=Time(sec=1, nanosec=0), frame_id="camera")
RGB = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)


def raw(encoding: str, arr: np.ndarray, step: int | None = None, data: np.ndarray | None = None) -> object:
    flat = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    h, w = arr.shape[:2]
    return Image(
        header=HEADER,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=step if step is not None else flat.size // h,
        data=flat if data is None else data,
    )


@pytest.mark.parametrize(
    ("encoding", "arr"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.concatenate([RGB, np.full(RGB.shape[:2] + (1,), 9, np.uint8)], axis=2)),
        ("bgra8", np.concatenate([RGB[..., ::-1], np.full(RGB.shape[:2] + (1,), 9, np.uint8)], axis=2)),
    ],
)
def test_colour_round_trip(encoding: str, arr: np.ndarray) -> None:
    out = image_message_to_rgb(raw(encoding, arr))
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


def test_mono8_and_mono16_are_grey() -> None:
    grey = RGB[..., 1]
    np.testing.assert_array_equal(image_message_to_rgb(raw("mono8", grey)), np.repeat(grey[..., None], 3, 2))
    out16 = image_message_to_rgb(raw("mono16", grey.astype(np.uint16) * 257))
    np.testing.assert_array_equal(out16, np.repeat(grey[..., None], 3, 2))


def test_depth_images_are_normalised() -> None:
    depth = np.linspace(500, 3000, 60, dtype=np.float32).reshape(6, 10)
    for enc, arr in (("16UC1", depth.astype(np.uint16)), ("32FC1", depth)):
        out = image_message_to_rgb(raw(enc, arr))
        assert out.shape == (6, 10, 3)
        assert out.min() == 0 and out.max() == 255
        assert np.all(np.diff(out[..., 0].reshape(-1).astype(int)) >= 0)  # monotone like the depth


def test_row_padding_is_honoured() -> None:
    padded = np.zeros((6, 10 * 3 + 6), np.uint8)
    padded[:, :30] = RGB.reshape(6, 30)
    msg = raw("rgb8", RGB, step=36, data=padded.reshape(-1))
    np.testing.assert_array_equal(image_message_to_rgb(msg), RGB)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_round_trip(ext: str) -> None:
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 90, 30
    ok, buf = cv2.imencode(ext, smooth[..., ::-1])  # OpenCV encodes BGR
    assert ok
    out = image_message_to_rgb(CompressedImage(header=HEADER, format=ext[1:], data=buf.reshape(-1)))
    tol = 0 if ext == ".png" else 3
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - smooth.astype(int)).max() <= tol


def test_unknown_encoding_names_it() -> None:
    with pytest.raises(ImageFormatError, match="encoding='foo'.*expected"):
        image_message_to_rgb(raw("foo", RGB))


def test_data_length_mismatch_names_expected() -> None:
    msg = raw("rgb8", RGB, data=RGB.reshape(-1)[:-3])
    with pytest.raises(ImageFormatError, match=r"data length=177.*expected 180"):
        image_message_to_rgb(msg)


def test_zero_size_and_bad_compressed() -> None:
    empty = Image(
        header=HEADER, height=0, width=4, encoding="rgb8", is_bigendian=0, step=12, data=np.zeros(0, np.uint8)
    )
    with pytest.raises(ImageFormatError, match="zero size"):
        image_message_to_rgb(empty)
    junk = CompressedImage(header=HEADER, format="jpeg", data=np.arange(20, dtype=np.uint8))
    with pytest.raises(ImageFormatError, match="expected a PNG signature or a JPEG SOI marker"):
        image_message_to_rgb(junk)
    assert issubclass(ImageFormatError, ValueError)


def test_resize_to_model_centre_crops() -> None:
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white, the sides black
    out = resize_to_model(img, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out.min() == 255
    with pytest.raises(ImageFormatError):
        resize_to_model(np.zeros((4, 4), np.uint8), 8)


def fields(encoding: str, height: int, width: int, step: int, size: int) -> object:
    """An Image with the given header fields and ``size`` zero bytes (rows*step need not match)."""
    return Image(
        header=HEADER,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.zeros(size, np.uint8),
    )


@pytest.mark.parametrize(
    ("msg", "reason", "needle"),
    [
        (fields("yuv422", 4, 5, 10, 40), "image_odd_size", "width=5"),
        (fields("uyvy", 4, 7, 14, 56), "image_odd_size", "even width"),
        (fields("yuyv", 2, 3, 6, 12), "image_odd_size", "even width"),
        (fields("nv12", 5, 4, 4, 28), "image_odd_size", "even width and height"),
        (fields("nv21", 4, 3, 3, 18), "image_odd_size", "even width and height"),
        (fields("rgb8", 4, 4, 11, 44), "image_step", "step=11"),
        (fields("rgb8", 4, 4, 12, 47), "image_data_length", "expected 48"),
        (fields("weird42", 4, 4, 12, 48), "image_encoding", "weird42"),
        (fields("8UC2", 4, 4, 8, 32), "image_encoding", "2 channels"),
        (fields("rgb8", 0, 4, 12, 0), "image_empty", "zero size"),
        (fields("rgb8", 2**31, 2**31, 3 * 2**31, 0), "image_too_large", "max_image_pixels"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_bad_image_is_an_image_format_error_with_its_reason(msg, reason, needle) -> None:
    with pytest.raises(ImageFormatError, match=needle) as err:
        image_message_to_rgb(msg, max_pixels=2**23)
    assert err.value.reason == reason


def test_even_chroma_subsampled_sizes_still_convert() -> None:
    assert image_message_to_rgb(fields("yuv422", 4, 6, 12, 48)).shape == (4, 6, 3)
    assert image_message_to_rgb(fields("nv12", 4, 6, 6, 36)).shape == (4, 6, 3)


def test_too_large_is_rejected_from_the_header_before_decoding() -> None:
    side = 4096  # a 4096x4096 32FC1 depth image: 64 MiB that must not be normalised
    msg = fields("32FC1", side, side, 4 * side, 4 * side * side)
    with pytest.raises(ImageFormatError, match="4096x4096 = 16777216 pixels") as err:
        image_message_to_rgb(msg, max_pixels=2**23)
    assert err.value.reason == "image_too_large"
    small = fields("32FC1", 8, 8, 32, 256)
    assert image_message_to_rgb(small, max_pixels=64).shape == (8, 8, 3)  # at the limit: converted


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_image_size_is_read_from_its_header(ext: str) -> None:
    ok, buf = cv2.imencode(ext, np.zeros((40, 30, 3), np.uint8))
    assert ok
    msg = CompressedImage(header=HEADER, format=ext[1:], data=buf.reshape(-1))
    assert image_message_to_rgb(msg, max_pixels=1200).shape == (40, 30, 3)
    with pytest.raises(ImageFormatError, match="30x40 = 1200 pixels") as err:
        image_message_to_rgb(msg, max_pixels=1199)
    assert err.value.reason == "image_too_large"


def test_random_headers_raise_only_image_format_errors() -> None:
    """Every encoding with odd/even sizes, steps and endianness: converted or an ImageFormatError."""
    rng = np.random.default_rng(1)
    encodings = [
        "rgb8", "bgra8", "mono16", "8UC1", "8SC1", "16UC1", "16SC1", "32SC1", "32FC1", "64FC1", "16UC3",
        "uyvy", "yuv422", "yuyv", "yuv422_yuy2", "nv12", "nv21", "bayer_rggb8", "bayer_gbrg16", "rgb16",
        "rgba16", "8UC2", "", "foo",
    ]  # fmt: skip
    reasons = set()
    for _ in range(3000):
        height, width = (int(v) for v in rng.integers(1, 7, 2))
        step = width * int(rng.integers(1, 9))
        rows = height * 3 // 2 if rng.random() < 0.3 else height
        msg = fields(str(rng.choice(encodings)), height, width, step, rows * step)
        msg.is_bigendian = int(rng.choice([0, 1, 255]))
        msg.data = rng.integers(0, 256, rows * step, dtype=np.uint8)
        try:
            out = image_message_to_rgb(msg, max_pixels=30)
            assert out.shape == (height, width, 3) and out.dtype == np.uint8
            reasons.add("converted")
        except ImageFormatError as err:
            reasons.add(err.reason)
    assert {"converted", "image_odd_size", "image_step", "image_data_length", "image_encoding"} <= reasons
    assert "image_too_large" in reasons
