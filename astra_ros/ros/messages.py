"""The world-model node's output messages, built from the session's results: a live ``Prediction``
becomes ``PredictedFrames``, an ``Imagined`` batch the frames of an ``Imagine`` response.

Stamps and ``frame_id`` are copied from the newest ingested image (never ``now()``); predicted frame
``i`` (from 0) is stamped ``i + 1`` model time steps after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import Image

from astra_ros.msg import PredictedFrames
from astra_ros.ros.conversions import commands_to_trajectory, ns_to_duration, ns_to_stamp, rgb_to_image
from astra_ros.runtime.session import Frame, Imagined, Prediction


def future_images(frames: np.ndarray, newest: Frame) -> list[Image]:
    """(H, S, S, 3) predicted frames -> Images stamped 1..H model time steps after ``newest``."""
    return [
        rgb_to_image(frame, newest.stamp_ns + (i + 1) * newest.step_ns, newest.frame_id)
        for i, frame in enumerate(frames)
    ]


def predicted_frames(
    prediction: Prediction, modality: str, joint_order: Sequence[str], model_id: str, confidence_decay: float
) -> PredictedFrames:
    """The ``predicted_frames`` message of one live prediction (confidence ``decay ** (i + 1)``)."""
    newest, frames = prediction.newest, prediction.frames
    msg = PredictedFrames()
    msg.header.stamp = ns_to_stamp(newest.stamp_ns)
    msg.header.frame_id = newest.frame_id
    msg.context_stamps = [ns_to_stamp(ns) for ns in prediction.context_stamps]
    msg.time_step = ns_to_duration(newest.step_ns)
    msg.frames = future_images(frames, newest)
    msg.confidence = [float(confidence_decay ** (i + 1)) for i in range(len(frames))]
    msg.actions = commands_to_trajectory(
        prediction.actions, modality, joint_order, newest.stamp_ns, newest.frame_id, newest.step_ns
    )
    msg.modality = modality
    msg.command_policy = prediction.policy
    msg.rollout_id = prediction.rollout_id
    msg.state_reset = prediction.state_reset
    msg.model_id = model_id
    return msg


def predicted_image(msg: PredictedFrames, horizon: int) -> Image:
    """The ``predicted_image`` of a prediction: its frame ``horizon`` (1-based; the last if fewer)."""
    return msg.frames[min(horizon, len(msg.frames)) - 1]


def imagined_images(imagined: Imagined) -> list[Image]:
    """An Imagine response's ``frames``: candidate-major, each candidate's horizon in order."""
    return [image for candidate in imagined.frames for image in future_images(candidate, imagined.newest)]


def imagine_confidence(confidence_decay: float, candidates: int, horizon: int) -> list[float]:
    """An Imagine response's ``confidence``: per candidate, the mean of ``decay ** h``, h = 1..horizon."""
    return [float(np.mean(confidence_decay ** np.arange(1, horizon + 1)))] * candidates
