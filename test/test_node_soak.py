"""Soak: 10 000 frames as fast as this machine sustains through the node's streaming session.

Drives ``StreamSession`` in this process (no DDS: test_node_ros.py checks the node's wiring) and
checks that memory (VmRSS) grows by less than 5% after warm-up and that every frame is accounted
for: images and commands all taken in; each prediction due is made, superseded by a newer frame
(latest-wins, also when its frame was dropped from the full ingestion queue) or came before
warm-up; every prediction reaches the callback.
"""

from __future__ import annotations

import time

import numpy as np
from harness import COPY_LAST_JOINTS, own_rss_kb, session_config

from astra_ros.runtime.session import StreamSession

FRAMES = 10_000
WARMUP = 2_000
BASE = 1_700_000_000 * 1_000_000_000
PERIOD = 33_333_333


def test_soak_10000_frames_memory_and_accounting():
    backend, config = session_config(prediction_rate=10.0, horizon=4)  # image time: every 3rd frame due
    rollout_ids: list[int] = []  # not the predictions: holding 3000 of them would grow the RSS
    session = StreamSession(
        backend, config, lambda p: rollout_ids.append(p.rollout_id), command_width=len(COPY_LAST_JOINTS)
    )
    images = [np.full((64, 64, 3), i, np.uint8) for i in range(256)]
    rss_warm = None
    started = time.monotonic()
    try:
        for i in range(FRAMES):
            stamp = BASE + i * PERIOD
            session.submit_command(stamp - 1_000_000, np.full(7, 0.01 * (i % 7), np.float32))
            session.image_received()
            session.submit(images[i % 256], stamp, "camera")
            if i % 64 == 63:  # a burst of 64 frames overflows the 32-frame queue now and then
                assert session.wait_idle(60), f"worker stalled at frame {i}"
            if i == WARMUP:
                rss_warm = own_rss_kb()
        assert session.wait_idle(60)
        elapsed = time.monotonic() - started
        stats = session.stats()
        rss_end = own_rss_kb()
    finally:
        session.close()

    counts = stats.counts
    print(
        f"\nsoak: {FRAMES} frames in {elapsed:.1f} s ({FRAMES / elapsed:.0f} Hz sustained); "
        f"RSS {rss_warm} kB after {WARMUP} frames -> {rss_end} kB ({rss_end / rss_warm - 1:+.1%}); {counts}"
    )
    assert counts["count.images"] == FRAMES
    assert counts["count.commands"] == FRAMES
    assert not [k for k in counts if k.startswith("rejected.")]
    due = FRAMES // 3 + 1  # every third frame at 10 Hz prediction rate in 30 Hz image time (first one due)
    # A frame dropped from the full ingestion queue passes its due prediction to the next frame,
    # so every due prediction is made, superseded or before warm-up: exactly.
    kinds = ("count.predictions", "dropped.superseded", "dropped.not_warm")
    assert counts["count.predictions"] > 0
    assert sum(counts.get(k, 0) for k in kinds) == due
    assert rollout_ids == list(range(counts["count.predictions"]))
    assert stats.queue_length == 0
    assert rss_end < 1.05 * rss_warm
