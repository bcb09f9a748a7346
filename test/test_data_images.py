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
    with pytest.raises(ImageFormatError, match="could not be decoded"):
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
