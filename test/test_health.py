"""The node's diagnostics logic (astra_ros/ros/health.py) driven by a fake clock."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from astra_ros.ros.health import (
    FrameLossDetector,
    FrequencyStatus,
    HealthConfig,
    Level,
    NodeHealth,
    RecentEvents,
    RecentProblems,
    Status,
    TimeStampStatus,
    merge,
    problem_stream,
)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def feed(status: FrequencyStatus, clock: FakeClock, hz: float, seconds: float) -> Status:
    """Tick at ``hz`` for ``seconds``, one status() per second (the diagnostics period)."""
    last = None
    for _ in range(int(seconds)):
        for _ in range(int(hz)):
            clock.advance(1.0 / hz)
            status.tick()
        last = status.status()
    return last


def test_frequency_status_follows_the_recent_rate_and_recovers():
    clock = FakeClock()
    freq = FrequencyStatus("image", min_hz=15.0, max_hz=30.0, tolerance=0.1, window=5, clock=clock)
    ok = feed(freq, clock, 15, 6)
    assert ok.level == Level.OK and float(ok.values["image.rate_hz"]) == pytest.approx(15.0)
    slow = feed(freq, clock, 5, 6)  # the window (5 updates) now holds only the slow part
    assert slow.level == Level.WARN and "too low" in slow.message
    assert float(slow.values["image.rate_hz"]) == pytest.approx(5.0)
    fast = feed(freq, clock, 60, 6)
    assert fast.level == Level.WARN and "too high" in fast.message
    assert feed(freq, clock, 28, 6).level == Level.OK
    clock.advance(5.0)
    for _ in range(5):
        silent = freq.status()
    assert silent.level == Level.ERROR and "no messages" in silent.message


def test_frequency_status_tolerance_and_optional_input():
    clock = FakeClock()
    freq = FrequencyStatus("image", min_hz=15.0, tolerance=0.1, window=3, clock=clock)
    assert feed(freq, clock, 14, 4).level == Level.OK  # 14 Hz is within 10 % of 15 Hz
    assert feed(freq, clock, 13, 4).level == Level.WARN
    optional = FrequencyStatus("planned_commands", min_hz=0.0, window=3, clock=clock)
    clock.advance(3.0)
    assert optional.status().level == Level.OK
    with pytest.raises(ValueError, match="min_hz=5"):
        FrequencyStatus("image", min_hz=5.0, max_hz=1.0)


def test_timestamp_status_judges_each_update_interval():
    clock = FakeClock(100.0)
    stamps = TimeStampStatus("image", min_age_s=-0.1, max_age_s=0.5, clock=clock)
    assert stamps.status().level == Level.WARN  # nothing received yet
    stamps.tick(99.8)
    stamps.tick(99.9)
    ok = stamps.status()
    assert ok.level == Level.OK and ok.values["image.stamp_age_max_s"] == "0.200"
    stamps.tick(98.0)  # 2 s old
    late = stamps.status()
    assert late.level == Level.ERROR and "too old" in late.message
    stamps.tick(101.0)  # 1 s in the future
    early = stamps.status()
    assert early.level == Level.ERROR and "future" in early.message
    stamps.tick(0.0)
    zero = stamps.status()
    assert zero.level == Level.ERROR and "zero stamp" in zero.message
    stamps.tick(99.95)
    recovered = stamps.status()
    assert recovered.level == Level.OK
    assert [recovered.values[f"image.stamp_age_{k}_updates"] for k in ("late", "early", "zero")] == [
        "1",
        "1",
        "1",
    ]


def test_recent_events_forget_old_events():
    clock = FakeClock()
    events = RecentEvents(window_s=10.0, clock=clock)
    events.add("a")
    clock.advance(5.0)
    events.add("a", 2)
    events.add("b")
    assert events.counts() == {"a": 3, "b": 1}
    clock.advance(6.0)
    assert events.counts() == {"a": 2, "b": 1}
    clock.advance(10.0)
    assert events.counts() == {}


def test_one_rejection_warns_for_a_window_then_the_node_returns_to_ok():
    clock = FakeClock()
    problems = RecentProblems(window_s=10.0, error_fraction=0.5, clock=clock)
    for _ in range(30):
        problems.message("image")
        clock.advance(0.1)
    assert problems.status().level == Level.OK
    problems.message("image")
    problems.problem("image", "rejected.image_encoding")
    warn = problems.status()
    assert warn.level == Level.WARN
    assert "image: 1 of" in warn.message and "rejected.image_encoding 1" in warn.message
    for _ in range(60):  # 6 s of good images: still inside the window
        problems.message("image")
        clock.advance(0.1)
    assert problems.status().level == Level.WARN
    for _ in range(60):
        problems.message("image")
        clock.advance(0.1)
    assert problems.status().level == Level.OK


def test_most_messages_failing_is_an_error_per_stream():
    clock = FakeClock()
    problems = RecentProblems(window_s=10.0, error_fraction=0.5, clock=clock)
    for i in range(100):
        problems.message("joint_commands")  # a healthy, busier stream does not dilute the images
        if i % 5 == 0:
            problems.message("image")
            problems.problem("image", "dropped.ingest_queue_full")
        clock.advance(0.05)
    error = problems.status()
    assert error.level == Level.ERROR and "image: 20 of 20" in error.message
    assert error.values["recent.image/dropped.ingest_queue_full"] == "20"
    clock.advance(11.0)
    assert problems.status().level == Level.OK


def test_merge_keeps_the_worst_level_and_every_problem():
    merged = merge(
        [
            Status(Level.OK, "a fine", {"a": "1"}),
            Status(Level.WARN, "b slow", {"b": "2"}),
            Status(Level.ERROR, "c old", {"c": "3"}),
        ]
    )
    assert merged.level == Level.ERROR and merged.message == "b slow; c old"
    assert merged.values == {"a": "1", "b": "2", "c": "3"}
    assert merge([Status(Level.OK, "a"), Status(Level.OK, "b")]).message == "a; b"


def stream(period_ns: int, n: int, keep, jitter_ns: int = 0, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    stamps = np.arange(n) * period_ns + 10**12 + rng.integers(-jitter_ns, jitter_ns + 1, n)
    return [int(s) for i, s in enumerate(stamps) if keep(i, rng)]


def test_loss_detector_counts_missing_frames_even_when_most_are_lost():
    period = 66_666_667
    for loss in (0.3, 0.7):
        detector = FrameLossDetector(window=64, clock=FakeClock())
        for stamp in stream(period, 2000, lambda i, rng, p=loss: rng.random() > p, jitter_ns=3_000_000):
            detector.add(stamp)
        missing, expected = detector.missing()
        assert expected > 64
        assert missing / expected == pytest.approx(loss, abs=0.12)


def test_loss_detector_is_quiet_on_a_complete_jittery_stream():
    detector = FrameLossDetector(clock=FakeClock())
    messages = [detector.add(s) for s in stream(33_333_333, 500, lambda i, rng: True, jitter_ns=5_000_000)]
    assert messages == [None] * len(messages)
    assert detector.missing()[0] == 0


def test_loss_detector_message_is_throttled_and_ignores_pauses():
    clock = FakeClock()
    detector = FrameLossDetector(window=32, throttle_s=10.0, max_gap_s=1.0, clock=clock)
    logged = []
    for stamp in stream(50_000_000, 400, lambda i, rng: rng.random() > 0.5):  # half the frames lost
        clock.now = stamp * 1e-9  # the stream runs in real time
        message = detector.add(stamp)
        if message:
            logged.append(message)
    assert len(logged) == 2  # 20 s of stream at most once per 10 s
    missing, expected = (int(n) for n in re.findall(r"\d+", logged[0]))
    assert expected - missing >= detector.min_gaps and 0.3 < missing / expected < 0.7
    assert logged[0] == (
        f"best-effort stream losing frames: {missing} of the last {expected} expected frames missing; "
        "consider image_qos_reliability=reliable"
    )
    quiet = FrameLossDetector(window=32, max_gap_s=1.0, clock=clock)
    stamps = stream(50_000_000, 100, lambda i, rng: True)
    paused = stamps[:50] + [s + 5 * 10**9 for s in stamps[50:]]  # a 5 s pause, not loss
    assert [quiet.add(s) for s in paused] == [None] * len(paused)
    assert quiet.missing() == (0, 32)


def test_loss_figures_come_from_what_arrived_even_around_a_burst():
    """Issue 28: a burst of 38 frames 1 ms apart on a complete 15 Hz stream made the period 1 ms and
    every real gap ~66 missing frames ('2027 of the last 2091 expected frames missing' while 38 had
    arrived). Gaps beyond MAX_RUN periods are a change of rate, not loss: no figures from them."""
    period = 66_666_667
    stamps = stream(period, 40, lambda i, rng: True, jitter_ns=2_000_000)

    def with_burst(n: int) -> list[int]:
        burst = [stamps[-1] + (k + 1) * 1_000_000 for k in range(n)]
        return stamps + burst + [burst[-1] + (k + 1) * period for k in range(30)]

    detector = FrameLossDetector(window=64, clock=FakeClock())
    assert [detector.add(s) for s in with_burst(38)] == [None] * (40 + 38 + 30)
    for n in range(1, 64):  # whichever share of the window the burst fills
        partial = FrameLossDetector(window=64, clock=FakeClock())
        for stamp in with_burst(n):
            partial.add(stamp)
        assert partial.missing()[0] == 0, n


def test_loss_detector_cannot_see_a_regularly_halved_stream():
    """Without sequence numbers, losing every second frame looks like a camera at half the rate."""
    detector = FrameLossDetector(window=32, clock=FakeClock())
    for stamp in stream(50_000_000, 200, lambda i, rng: i % 2 == 0):
        detector.add(stamp)
    assert detector.missing() == (0, 32)


def test_problem_streams_of_the_session_counters():
    assert problem_stream("rejected.image_encoding") == "image"
    assert problem_stream("rejected.imagine_shape") == "imagine"
    assert problem_stream("rejected.joint_names") == "commands"
    assert problem_stream("dropped.ingest_queue_full") == "image"
    assert problem_stream("dropped.superseded") is None  # latest frame wins: by design
    assert problem_stream("dropped.not_warm") is None
    assert problem_stream("count.decimated") is None


def test_observe_feeds_the_increase_of_cumulative_counters():
    clock = FakeClock()
    problems = RecentProblems(window_s=10.0, clock=clock)
    problems.observe({"count.images": 100, "rejected.image_encoding": 5, "count.commands": 40})
    first = problems.status()
    assert first.level == Level.WARN and "image: 5 of 100" in first.message
    clock.advance(11.0)
    problems.observe({"count.images": 150, "rejected.image_encoding": 5, "count.commands": 90})
    assert problems.status().level == Level.OK  # the old 5 do not come back
    clock.advance(11.0)
    problems.observe({"count.images": 150, "count.commands": 92, "rejected.joint_names": 8})
    error = problems.status()
    assert error.level == Level.ERROR and "commands: 8 of 10" in error.message  # 2 accepted + 8 rejected


def test_node_health_levels_inputs_and_frame_loss():
    clock, stamps = FakeClock(), FakeClock(50.0)
    config = HealthConfig(
        diagnostics_period=1.0,
        diagnostics_window=5.0,
        image_min_rate=15.0,
        image_max_rate=0.0,
        command_min_rate=0.0,
        min_stamp_age=-0.1,
        max_stamp_age=0.5,
        max_image_gap=1.0,
        best_effort_images=True,
    )
    health = NodeHealth(config, stamp_clock=stamps, clock=clock)
    rng = np.random.default_rng(0)
    for i in range(200):
        clock.advance(1 / 30)
        stamps.now = 50.0 + (i + 1) / 30
        if rng.random() < 0.5:  # half of a 30 Hz stream arrives
            health.image(int((stamps.now - 0.05) * 1e9))
            health.frame(int((stamps.now - 0.05) * 1e9))
        health.command(int(stamps.now * 1e9))
        if i % 30 == 29:
            statuses = health.statuses({"count.images": i}, history=1 if i < 60 else 8, min_history=2)
    assert set(statuses) == {"node", "image input", "commands input"}
    assert statuses["node"].level == Level.OK
    assert statuses["image input"].level == Level.OK  # ~15 Hz within the tolerance, 50 ms old
    missing, expected = (int(n) for n in statuses["node"].values["image.frames_missing_recent"].split("/"))
    assert 0.3 < missing / expected < 0.7
    why = "no robot state from state_topic within command_staleness=0.5 s before the frame stamp 5 ns"
    counts = {"count.images": 200, "dropped.missing_state": 20}
    dropping = health.statuses(counts, 8, 2, {"dropped.missing_state": why, "dropped.stale_command": "old"})
    assert dropping["node"].message.endswith(f"; dropped.missing_state: {why}")  # recent drops only
    assert dropping["node"].values["dropped.missing_state.reason"] == why
    assert "stale_command" not in dropping["node"].message
    warming = NodeHealth(config, stamp_clock=stamps, clock=clock).statuses({}, history=1, min_history=2)

    assert warming["node"].level == Level.WARN and warming["node"].message == "warming up (1/2)"
    assert warming["image input"].level == Level.ERROR  # nothing received
    settings = SimpleNamespace(
        **{**config.__dict__, "image_min_rate": -1.0, "image_qos_reliability": "reliable"}
    )
    resolved = HealthConfig.from_settings(settings, model_frame_period=0.1)
    assert resolved.image_min_rate == pytest.approx(10.0) and not resolved.best_effort_images
