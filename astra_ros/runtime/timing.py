"""Image-time pieces of the streaming session: timeline checks, decimation to the model's frame
period, the prediction rate limit, and rate / latency statistics.

No ROS imports; every stamp is an integer of nanoseconds in the caller's clock.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class Timeline:
    """Classifies each image stamp against the previous accepted one.

    ``ok``; ``first`` (nothing before: the state starts fresh); ``gap`` (forward step larger
    than ``max_gap_ns``) and ``jump_back`` (backwards step larger than ``max_gap_ns``, e.g. a
    bag loop): reset the state and accept; ``out_of_order`` (backwards by at most
    ``max_gap_ns``) and ``duplicate`` (same stamp): reject. ``max_gap_ns`` 0 disables gap
    resets; backwards steps then always reset.
    """

    def __init__(self, max_gap_ns: int):
        self.max_gap_ns = max_gap_ns
        self.last_ns: int | None = None

    def reset(self) -> None:
        self.last_ns = None

    def check(self, stamp_ns: int) -> str:
        last = self.last_ns
        if last is None:
            verdict = "first"
        elif stamp_ns == last:
            return "duplicate"
        elif stamp_ns < last:
            if self.max_gap_ns and last - stamp_ns <= self.max_gap_ns:
                return "out_of_order"
            verdict = "jump_back"
        elif self.max_gap_ns and stamp_ns - last > self.max_gap_ns:
            verdict = "gap"
        else:
            verdict = "ok"
        self.last_ns = stamp_ns
        return verdict


class PeriodEstimator:
    """Median of the recent periods of a stamp sequence (images, or the frames the model took)."""

    def __init__(self, window: int = 64):
        self._periods: deque[int] = deque(maxlen=window)
        self._last: int | None = None

    def reset(self) -> None:
        self._last = None  # keep the periods: the camera rate survives a state reset

    def add(self, stamp_ns: int) -> None:
        if self._last is not None and stamp_ns > self._last:
            self._periods.append(stamp_ns - self._last)
        self._last = stamp_ns

    def median_ns(self, default_ns: int = 0) -> int:
        return int(np.median(self._periods)) if self._periods else default_ns


class FrameGrid:
    """Decimates a camera stream to the model's frame period, without drift.

    Targets advance by ``period_ns`` from the first taken image; an image is taken when it is the
    first at or after its target less half an image period (so the image nearest the target wins).
    A gap longer than a period re-anchors the grid on the image. ``period_ns`` 0 takes every image.
    """

    def __init__(self, period_ns: int):
        self.period_ns = period_ns
        self._target: int | None = None

    def reset(self) -> None:
        self._target = None

    def take(self, stamp_ns: int, image_period_ns: int) -> bool:
        if self.period_ns <= 0:
            return True
        target = stamp_ns if self._target is None else self._target
        if stamp_ns < target - image_period_ns // 2:
            return False
        target += self.period_ns
        self._target = target if target > stamp_ns else stamp_ns + self.period_ns  # re-anchor after a gap
        return True


class LatencyStats:
    """Percentiles over the last ``window`` samples (bounded memory)."""

    def __init__(self, window: int = 1000):
        self._samples: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        self._samples.append(value)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self._samples, float), q)) if self._samples else float("nan")


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds of monotonic time."""

    def __init__(self, window_s: float = 5.0, capacity: int = 4096):
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=capacity)

    def tick(self, now_s: float) -> None:
        self._times.append(now_s)

    def rate(self, now_s: float) -> float:
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(now_s - self._times[0], 1e-9)


def due_for_prediction(stamp_ns: int, last_predicted_ns: int | None, rate_hz: float) -> bool:
    """Rate limit in image time: a frame is due when 1/rate has passed since the last prediction."""
    if rate_hz <= 0 or last_predicted_ns is None or stamp_ns < last_predicted_ns:
        return True
    # 1% slack so a 30 Hz camera at prediction_rate 30 is not rejected by stamp jitter.
    return stamp_ns - last_predicted_ns >= 0.99e9 / rate_hz
