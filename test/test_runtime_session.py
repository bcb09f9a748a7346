"""StreamSession without ROS: decimation, due / superseded / reset accounting, rejections, Imagine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from harness import COPY_LAST_JOINTS, session_config

from astra_ros.model.config import AstraConfig
from astra_ros.runtime.base import ModelInfo
from astra_ros.runtime.session import STATE_BUFFER, ImagineRefused, Prediction, StreamSession
from astra_ros.runtime.streaming import StreamingBackend

BASE = 1_700_000_000 * 1_000_000_000
PERIOD = 33_333_333
WIDTH = len(COPY_LAST_JOINTS)


class Recorder:
    def __init__(self, **params):
        backend, config = session_config(**{"prediction_rate": 0.0, "horizon": 3, **params})
        self.predictions: list[Prediction] = []
        self.logs: list[tuple[str, str, bool]] = []
        self.session = StreamSession(
            backend, config, self.predictions.append, WIDTH, log=lambda *a: self.logs.append(a)
        )

    def feed(self, first: int, count: int, start_ns: int = BASE, wait: bool = True) -> None:
        for i in range(first, first + count):
            stamp = start_ns + i * PERIOD
            self.session.submit_command(stamp - 1_000_000, np.full(WIDTH, 0.1 * i, np.float32))
            self.session.submit(np.full((64, 64, 3), i, np.uint8), stamp, "camera")
            if wait:
                assert self.session.wait_idle(10)

    def counts(self) -> dict[str, int]:
        return self.session.stats().counts


@pytest.fixture
def rec():
    recorder = Recorder()
    yield recorder
    recorder.session.close()


def test_predictions_carry_the_newest_frame_its_command_and_context(rec):
    rec.feed(0, 6)
    assert rec.counts()["dropped.not_warm"] == 1  # min_history 2: the first frame cannot predict
    assert [p.rollout_id for p in rec.predictions] == [0, 1, 2, 3, 4]
    assert rec.predictions[0].state_reset and not any(p.state_reset for p in rec.predictions[1:])
    last = rec.predictions[-1]
    assert last.newest.stamp_ns == BASE + 5 * PERIOD and last.newest.frame_id == "camera"
    assert last.frames.shape == (3, 64, 64, 3) and np.all(last.frames == 5)  # copy-last of frame 5
    assert last.policy == "hold_last" and np.allclose(last.actions, 0.5)  # held over the horizon
    assert last.context_stamps == [BASE + i * PERIOD for i in range(6)]
    assert abs(last.newest.step_ns - PERIOD) <= 1


def test_decimation_to_the_model_frame_period():
    rec = Recorder(frame_period=2 * PERIOD / 1e9)
    try:
        rec.feed(0, 10)
        assert rec.counts()["count.decimated"] == 5
        assert rec.session.frame_period_ns == 2 * PERIOD
        assert np.all(np.diff(rec.predictions[-1].context_stamps) == 2 * PERIOD)
        assert abs(rec.predictions[-1].newest.step_ns - 2 * PERIOD) <= 1
    finally:
        rec.session.close()


def test_rate_limit_and_latest_wins_account_for_every_due_frame():
    rec = Recorder(prediction_rate=10.0, ingest_queue_size=4)
    try:
        rec.feed(0, 90, wait=False)  # no waiting: the queue overflows, due predictions pass on
        assert rec.session.wait_idle(10)
        counts = rec.counts()
        made = sum(counts.get(k, 0) for k in ("count.predictions", "dropped.superseded", "dropped.not_warm"))
        assert made == 30  # 10 Hz in 30 Hz image time: every third frame is due
        assert len(rec.predictions) == counts["count.predictions"]
    finally:
        rec.session.close()


def test_timeline_gap_and_jump_reset_and_out_of_order_is_rejected(rec):
    rec.feed(0, 4)
    rec.session.submit(np.zeros((64, 64, 3), np.uint8), BASE + PERIOD, "camera")  # older than newest
    rec.session.submit(np.zeros((64, 64, 3), np.uint8), BASE + PERIOD, "camera")  # twice: throttled
    rec.feed(0, 5, start_ns=BASE + 60 * 10**9)  # gap: taken once 3 frames in a row confirm it
    rec.feed(0, 5, start_ns=BASE - 60 * 10**9)  # jump back, likewise
    counts = rec.counts()
    assert counts["rejected.image_out_of_order"] == 2
    assert counts["rejected.image_unconfirmed_jump"] == 4
    assert counts["reset.gap"] == 1 and counts["reset.jump_back"] == 1
    resets = [p for p in rec.predictions if p.state_reset]
    confirmed = 2 * PERIOD  # the first two frames on a new timeline are rejected
    assert [p.context_stamps[0] for p in resets] == [
        BASE,
        BASE + 60 * 10**9 + confirmed,
        BASE - 60 * 10**9 + confirmed,
    ]
    rejections = [(lvl, throttled) for lvl, text, throttled, _ in rec.logs if "image_out_of_order" in text]
    assert rejections == [("warning", False), ("warning", True)]  # the first of a reason always shows
    assert sum("resetting the causal state" in text for _, text, *_ in rec.logs) == 2


def test_reset_clears_the_state_and_imagine_needs_a_warm_cache(rec):
    rec.feed(0, 5)
    imagined = rec.session.imagine(np.zeros((2, 4, WIDTH), np.float32), "joint_velocity")
    assert imagined.frames.shape == (2, 4, 64, 64, 3) and np.all(imagined.frames == 4)
    assert imagined.newest.stamp_ns == BASE + 4 * PERIOD
    assert rec.counts()["count.imagine"] == 1
    with pytest.raises(ImagineRefused, match="backend refused"):
        rec.session.imagine(np.zeros((2, WIDTH), np.float32), "joint_velocity")  # not (B, H, D)
    assert rec.counts()["rejected.imagine_backend"] == 1
    assert rec.session.reset("service") == 0
    assert rec.session.stats().history == 0 and rec.counts()["reset.service"] == 1
    with pytest.raises(ImagineRefused, match="not warm"):
        rec.session.imagine(np.zeros((1, 2, WIDTH), np.float32), "joint_velocity")
    rec.feed(5, 3)  # an older stamp than before the reset is accepted: the timeline was cleared too
    assert rec.predictions[-1].context_stamps[0] == BASE + 5 * PERIOD


def test_imagine_hands_its_seed_and_shared_noise_to_the_backend(rec, monkeypatch):
    rec.feed(0, 3)
    calls = []
    predict = rec.session.backend.predict
    monkeypatch.setattr(rec.session.backend, "predict", lambda *a: calls.append(a[3:]) or predict(*a))
    rec.session.imagine(np.zeros((2, 4, WIDTH), np.float32), "joint_velocity", seed=7, share_noise=True)
    rec.session.imagine(np.zeros((2, 4, WIDTH), np.float32), "joint_velocity", seed=7)
    assert calls == [(7, True), (7, False)]


def test_commands_missing_stale_and_out_of_order():
    backend, config = session_config(prediction_rate=0.0, stale_command_policy="skip")
    session = StreamSession(backend, config, lambda p: None)
    try:
        assert session.submit(np.zeros((64, 64, 3), np.uint8), BASE) == "dropped"
        session.start_commands(WIDTH)
        assert session.submit_command(BASE, np.zeros(WIDTH, np.float32))
        assert session.submit_command(BASE - 1_000, np.zeros(WIDTH, np.float32))  # late: at its stamp
        assert not session.submit_command(BASE - 10 * 10**9, np.zeros(WIDTH, np.float32))  # 10 s back
        assert session.submit(np.zeros((64, 64, 3), np.uint8), BASE + 10**9) == "dropped"  # stale, skip
        counts = session.stats().counts
        assert counts["dropped.missing_command"] == 1 and counts["dropped.stale_command"] == 1
        assert counts["rejected.command_unconfirmed_jump"] == 1 and counts["count.commands"] == 2
        assert counts["command_fallback.stale_command_skip"] == 1
        assert "stale_command_policy=skip" in session.stats().drop_reasons["dropped.stale_command"]
    finally:
        session.close()


class PositionArm:
    """A joint_position session fed like a position-controlled arm: per frame a target and the
    state at its stamp (every ``states_per_frame`` states between two frames), then the image."""

    def __init__(self, **params):
        self.rec = Recorder(command_modality="joint_position", stale_command_policy="hold", **params)
        self.session = self.rec.session

    def frame(self, i: int, states: bool = True, states_per_frame: int = 1) -> str:
        stamp = BASE + i * PERIOD
        self.session.submit_command(stamp, np.full(WIDTH, 0.1, np.float32))
        if states:
            for k in range(states_per_frame, 0, -1):
                self.session.submit_state(
                    stamp - (k - 1) * PERIOD // states_per_frame, np.zeros(WIDTH, np.float32)
                )
        verdict = self.session.submit(np.full((64, 64, 3), 100, np.uint8), stamp, "camera")
        assert self.session.wait_idle(10)
        return verdict

    def dropped(self) -> dict[str, int]:
        return {k: v for k, v in self.rec.counts().items() if k.startswith("dropped.missing")}


def test_one_stale_or_future_state_never_stops_the_frames():
    """Issue 28: one state stamped 10 s back (it used to clear the states) or 0.4 s ahead (inside
    future_stamp_tolerance; the next real states used to clear it and the history with it)."""
    arm = PositionArm()
    try:
        assert [arm.frame(i) for i in range(3)] == ["queued"] * 3
        assert not arm.session.submit_state(BASE + 2 * PERIOD - 10 * 10**9, np.ones(WIDTH, np.float32))
        assert [arm.frame(i) for i in range(3, 6)] == ["queued"] * 3
        assert arm.session.submit_state(BASE + 6 * PERIOD + 4 * 10**8, np.ones(WIDTH, np.float32))
        assert [arm.frame(i) for i in range(6, 12)] == ["queued"] * 6
        counts = arm.rec.counts()
        assert counts["rejected.state_unconfirmed_jump"] == 1 and not arm.dropped()
        assert counts["count.predictions"] == 11 and not any(k.startswith("reset.") for k in counts)
    finally:
        arm.session.close()


def test_a_dropped_frame_starts_the_next_interval_so_the_stream_recovers():
    """The root cause of issue 28: a dropped frame never moved the interval start on, so once the
    state at that start was gone (here: pushed out of the state buffer by a fast /joint_states
    while the camera paused), every later frame was dropped too. Now one frame is dropped, the
    log and ``drop_reasons`` say why, and the next frame is taken."""
    arm = PositionArm(max_image_gap=5.0)
    try:
        assert [arm.frame(i) for i in range(2)] == ["queued"] * 2
        assert arm.frame(10, states_per_frame=STATE_BUFFER + 10) == "dropped"  # state at frame 1 gone
        assert [arm.frame(i) for i in range(11, 14)] == ["queued"] * 3
        assert arm.dropped() == {"dropped.missing_state": 1}
        why = arm.session.stats().drop_reasons["dropped.missing_state"]
        assert "no robot state" in why and "interval start" in why and "command_staleness=0.5 s" in why
        logged = [text for level, text, *_ in arm.rec.logs if level == "warning"]
        assert any(text.startswith("frame dropped (missing_state): no robot state") for text in logged)
        assert "reset.input_gap" not in arm.rec.counts()  # 0.3 s without frames: no gap
    finally:
        arm.session.close()


def test_frames_dropped_for_longer_than_max_image_gap_reset_the_state():
    """A hole in the history longer than max_image_gap (1 s) resets the state, as an image gap
    would; the first frame after it starts the fresh history at once."""
    arm = PositionArm()
    try:
        assert [arm.frame(i) for i in range(3)] == ["queued"] * 3
        without = [arm.frame(i, states=False) for i in range(3, 61)]  # the state at frame 2 holds 0.5 s
        assert without == ["queued"] * 15 + ["dropped"] * 43
        assert [arm.frame(i) for i in range(61, 63)] == ["queued"] * 2
        counts = arm.rec.counts()
        assert counts["reset.input_gap"] == 1 and arm.dropped() == {"dropped.missing_state": 43}
        first = arm.rec.predictions[-1]
        assert first.state_reset and first.context_stamps == [BASE + 61 * PERIOD, BASE + 62 * PERIOD]
    finally:
        arm.session.close()


def test_a_model_frame_period_longer_than_max_image_gap_is_no_input_gap():
    rec = Recorder(frame_period=1.5, max_image_gap=1.0)  # a slow model: one frame in 45 images
    try:
        rec.feed(0, 140)
        counts = rec.counts()
        assert counts["count.decimated"] == 140 - 4 and not any(k.startswith("reset.") for k in counts)
        assert len(rec.predictions) == 3  # min_history 2: from the second taken frame on
    finally:
        rec.session.close()


def test_the_worker_survives_a_failing_backend(rec):
    rec.feed(0, 3)
    ingest = rec.session.backend.ingest
    rec.session.backend.ingest = lambda *a: (_ for _ in ()).throw(RuntimeError("device lost"))
    rec.feed(3, 1)
    rec.session.backend.ingest = ingest
    rec.feed(4, 2)
    assert rec.counts()["dropped.backend_error"] == 1
    assert any(level == "error" and "device lost" in text for level, text, *_ in rec.logs)
    assert rec.predictions[-1].newest.stamp_ns == BASE + 5 * PERIOD


def test_a_model_without_the_modality_or_too_small_a_cache_is_refused():
    backend, config = session_config(command_type="twist")
    backend.info = type(backend.info)(**{**backend.info.__dict__, "modalities": ("joint_velocity",)})
    with pytest.raises(ValueError, match="modality 'twist'"):
        StreamSession(backend, config, lambda p: None)
    backend, config = session_config(min_history=9)
    with pytest.raises(ValueError, match="min_history=9; expected at most the cache size 8"):
        StreamSession(backend, config, lambda p: None)


def test_imagine_over_the_limits_or_the_memory_budget_is_refused_before_the_backend_runs():
    rec = Recorder(imagine_max_candidates=8, imagine_max_horizon=5, imagine_memory_mb=1.0)
    try:
        rec.feed(0, 3)
        calls = []
        rec.session.backend.predict = lambda *a, **k: calls.append(a)
        for batch, horizon, match in (
            (9, 2, "num_candidates=9; expected at most 8"),
            (1, 6, "horizon=6; expected at most 5"),
            (8, 5, r"needs about 1 MB; expected at most imagine_memory_mb=1"),  # 3 x 8 x 5 x 64 x 64 x 3
        ):
            with pytest.raises(ImagineRefused, match=match):
                rec.session.imagine(np.zeros((batch, horizon, WIDTH), np.float32), "joint_velocity")
        assert calls == []
        counts = rec.counts()
        assert counts["rejected.imagine_limits"] == 2 and counts["rejected.imagine_memory"] == 1
        assert rec.session.imagine_bytes(8, 5) == 3 * 8 * 5 * 64 * 64 * 3  # copy-last has no KV cache
    finally:
        rec.session.close()


def test_an_imagine_out_of_memory_is_refused_and_the_session_goes_on(rec):
    rec.feed(0, 3)
    predict = rec.session.backend.predict

    def exhausted(actions, *args, **kwargs):
        if actions.shape[0] > 1:
            raise MemoryError("cannot allocate 19.5 GiB")
        return predict(actions, *args, **kwargs)

    rec.session.backend.predict = exhausted
    with pytest.raises(ImagineRefused, match="MemoryError"):
        rec.session.imagine(np.zeros((2, 2, WIDTH), np.float32), "joint_velocity")
    assert rec.session.imagine(np.zeros((1, 2, WIDTH), np.float32), "joint_velocity").frames.shape[0] == 1
    rec.feed(3, 2)
    assert rec.predictions[-1].newest.stamp_ns == BASE + 4 * PERIOD


def test_reset_never_waits_for_a_busy_backend(rec):
    rec.feed(0, 4)
    with rec.session._backend_lock:  # a long Imagine (or backend call) in progress
        assert rec.session.reset("service") == 0  # returned while the backend is held
        assert rec.session.stats().history == 0
        assert rec.session.backend.history_length == 4  # not cleared yet: the backend is busy
    assert rec.session.wait_idle(10)  # the worker clears it as soon as the backend is free
    assert rec.session.backend.history_length == 0
    with pytest.raises(ImagineRefused, match="not warm"):
        rec.session.imagine(np.zeros((1, 2, WIDTH), np.float32), "joint_velocity")
    rec.feed(10, 3)
    assert rec.predictions[-1].state_reset or rec.predictions[-2].state_reset
    assert rec.predictions[-1].context_stamps[0] == BASE + 10 * PERIOD
    assert rec.counts()["reset.service"] == 1


def test_each_frame_gets_the_newest_joint_state_at_or_before_its_stamp_within_the_staleness(rec):
    seen: list[np.ndarray | None] = []
    ingest = rec.session.backend.ingest

    def recording(frame, action, modality, state=None):
        seen.append(state)
        ingest(frame, action, modality, state)

    rec.session.backend.ingest = recording
    rec.session.submit_state(BASE - 2_000_000, np.full(WIDTH, 1.0))
    rec.session.submit_state(BASE + PERIOD // 2, np.full(WIDTH, 2.0))  # after frame 0, before frame 1
    rec.feed(0, 2)
    staleness = int(rec.session.config.command_staleness * 1e9)
    rec.feed(0, 1, start_ns=BASE + PERIOD // 2 + staleness + PERIOD)  # the newest state is too old now
    assert [None if s is None else float(s[0]) for s in seen] == [1.0, 2.0, None]
    assert rec.counts()["count.states"] == 2


def test_joint_position_targets_reach_the_backend_relative_to_the_paired_state():
    rec = Recorder(command_modality="joint_position", stale_command_policy="hold")
    ingested, predicted = [], []
    backend = rec.session.backend
    ingest, predict = backend.ingest, backend.predict
    backend.ingest = lambda frame, action, *a: ingested.append(action.copy()) or ingest(frame, action, *a)
    backend.predict = lambda actions, *a, **k: predicted.append(actions.copy()) or predict(actions, *a, **k)
    session = rec.session
    try:
        image = np.zeros((64, 64, 3), np.uint8)
        assert session.submit(image, BASE) == "dropped"  # no target yet: not a zero target
        session.submit_command(BASE, np.full(WIDTH, 1.0, np.float32))
        assert session.submit(image, BASE + PERIOD) == "dropped"  # no robot state
        counts = rec.counts()
        assert counts["dropped.missing_command"] == 1 and counts["dropped.missing_state"] == 1
        for i in range(2, 6):  # target i and state i at image i: the interval to image i holds target i-1
            stamp = BASE + i * PERIOD
            session.submit_command(stamp, np.full(WIDTH, 1.0 + i, np.float32))
            session.submit_state(stamp, np.full(WIDTH, 0.1 * i, np.float32))
            assert session.submit(image, stamp) == "queued"
            assert session.wait_idle(10)
        # first frame after the reset: the target in force at it minus its state; then target i-1 - state i-1
        np.testing.assert_allclose([a[0] for a in ingested], [3.0 - 0.2, 3.0 - 0.2, 4.0 - 0.3, 5.0 - 0.4])
        last = rec.predictions[-1]
        np.testing.assert_allclose(last.actions, 6.0)  # published: the absolute target held
        np.testing.assert_allclose(predicted[-1][0, :, 0], [6.0 - 0.5, 0.0, 0.0])  # held: no further motion

        candidates = np.stack([np.full((2, WIDTH), 5.5, np.float32), np.full((2, WIDTH), 7.0, np.float32)])
        candidates[1, 1] = 8.0
        session.imagine(candidates, "joint_position")
        np.testing.assert_allclose(predicted[-1][:, :, 0], [[5.0, 0.0], [6.5, 1.0]])
    finally:
        session.close()


def test_a_dropped_joint_position_frame_hands_its_start_state_on_and_imagine_needs_a_state():
    rec = Recorder(command_modality="joint_position", stale_command_policy="hold", ingest_queue_size=1)
    try:
        with rec.session._cond:  # (a reentrant lock) the worker cannot take frames: the queue overflows
            for i in range(3):
                stamp = BASE + i * PERIOD
                rec.session.submit_command(stamp, np.full(WIDTH, 1.0 + i, np.float32))
                rec.session.submit_state(stamp, np.full(WIDTH, 0.1 * i, np.float32))
                rec.session.submit(np.zeros((64, 64, 3), np.uint8), stamp)
            (heir,) = rec.session._queue
        # frames 1 and 2 merged into one interval [0, 2): mean target 1.5, relative to state 0
        assert heir.interval_ns == 2 * PERIOD and np.allclose(heir.model_command(), 1.5 - 0.0)
    finally:
        rec.session.close()
    rec = Recorder()  # joint_velocity, no states
    try:
        rec.feed(0, 3)
        with pytest.raises(ImagineRefused, match="joint_position targets need the robot state"):
            rec.session.imagine(np.zeros((1, 2, WIDTH), np.float32), "joint_position")
        assert rec.counts()["rejected.imagine_missing_state"] == 1
    finally:
        rec.session.close()


def test_planned_joint_position_targets_become_steps_from_the_state_then_from_each_target():
    position = {"command_modality": "joint_position", "stale_command_policy": "hold"}
    rec = Recorder(future_command_policy="planned", **position)
    predicted, backend = [], rec.session.backend
    predict = backend.predict
    backend.predict = lambda actions, *a, **k: predicted.append(actions.copy()) or predict(actions, *a, **k)
    try:
        targets = np.array([[1.0], [1.5], [1.25]], np.float32).repeat(WIDTH, axis=1)
        rec.session.submit_plan(0, [0, PERIOD, 2 * PERIOD], targets)  # 0: from each frame, one per step
        for i in range(3):
            stamp = BASE + i * PERIOD
            rec.session.submit_command(stamp, np.full(WIDTH, 0.5, np.float32))
            rec.session.submit_state(stamp, np.full(WIDTH, 0.25, np.float32))
            rec.session.submit(np.zeros((64, 64, 3), np.uint8), stamp)
            assert rec.session.wait_idle(10)
        last = rec.predictions[-1]
        assert last.policy == "planned" and np.allclose(last.actions[:, 0], [1.0, 1.5, 1.25])
        np.testing.assert_allclose(predicted[-1][0, :, 0], [1.0 - 0.25, 0.5, -0.25])
    finally:
        rec.session.close()


class GatedBackend(StreamingBackend):
    """A model-free StreamingBackend (a step outputs zeros) whose Imagine steps (batch > 1) stop at
    ``gate`` twice at the start of each predicted frame: once to say that the Imagine holds the
    backend, once to go on. ``imagined`` counts the Imagine frames begun."""

    def __init__(self):
        cfg = AstraConfig.preset("tiny", sampling_steps=1)
        info = ModelInfo("gated", "gated/-/fp32", cfg.image_size, cfg.max_history, ("joint_velocity",))
        self.gate = threading.Barrier(2, timeout=30)
        self.imagined = 0
        super().__init__(info, cfg)

    def _empty_kv(self, batch, slots):
        return None

    def _empty_history(self, slots):
        return None

    def _gather_history(self, kv, slots):
        return None

    def _grow_kv(self, kv, slots):
        return None

    def _step(self, frame, previous, level, actions, mask, modality, context, rope, state, with_output=True):
        if frame.shape[0] > 1:
            if not with_output:  # a frame's write; its one denoising step follows
                self.imagined += 1
                self.gate.wait()
                self.gate.wait()
        return np.zeros_like(frame), None

    def _store(self, kv, entries, slot):
        pass

    def _store_history(self, kv, entries, slot):
        pass


def test_live_predictions_go_on_between_the_chunks_of_a_long_imagine():
    backend = GatedBackend()
    _, config = session_config(
        prediction_rate=0.0, frame_period=0.0, horizon=2, denoising_steps=1, imagine_max_horizon=64
    )
    progress: list[int] = []  # per live prediction: the Imagine frames begun by then
    session = StreamSession(backend, config, lambda p: progress.append(backend.imagined), WIDTH)
    size, period = backend.info.image_size, 66_666_667  # a 15 Hz camera

    def frame(i: int) -> None:
        stamp = BASE + i * period
        session.submit_command(stamp - 1_000_000, np.zeros(WIDTH, np.float32))
        session.submit(np.full((size, size, 3), i, np.uint8), stamp, "camera")

    try:
        for i in range(3):
            frame(i)
            assert session.wait_idle(10)
        assert len(progress) == 2  # min_history 2: from the second frame on
        progress.clear()
        horizon = 6
        result: list = []
        imagine = threading.Thread(
            target=lambda: result.append(
                session.imagine(np.zeros((3, horizon, WIDTH), np.float32), "joint_velocity")
            )
        )
        imagine.start()
        for h in range(horizon):
            backend.gate.wait()  # the Imagine holds the backend at the start of its frame h
            frame(3 + h)  # a live frame arrives meanwhile
            backend.gate.wait()
        imagine.join(30)
        assert session.wait_idle(10)
        assert result and result[0].frames.shape == (3, horizon, size, size, 3)
        assert result[0].newest.stamp_ns == BASE + 2 * period  # continued from the state at the call
        assert progress == list(range(1, horizon + 1))  # each live frame predicted before the next chunk
        assert session.stats().counts["count.predictions"] == 2 + horizon
    finally:
        session.close()


def test_close_stops_an_imagine_in_flight_so_nothing_holds_the_model():
    """Issue 28: a cleanup during a 16x16 Imagine left the old model and the candidates' caches
    alive until the Imagine ended, after the new model was loaded (98-110 MB retained)."""
    backend = GatedBackend()
    _, config = session_config(prediction_rate=0.0, frame_period=0.0, horizon=2, denoising_steps=1)
    session = StreamSession(backend, config, lambda p: None, WIDTH)
    size = backend.info.image_size
    for i in range(3):
        session.submit_command(BASE + i * PERIOD - 1_000, np.zeros(WIDTH, np.float32))
        session.submit(np.zeros((size, size, 3), np.uint8), BASE + i * PERIOD, "camera")
        assert session.wait_idle(10)
    errors: list[str] = []

    def imagine() -> None:
        try:
            session.imagine(np.zeros((2, 8, WIDTH), np.float32), "joint_velocity")
        except ImagineRefused as err:
            errors.append(str(err))

    thread = threading.Thread(target=imagine)
    thread.start()
    backend.gate.wait()  # the Imagine holds the backend in its first frame
    closer = threading.Thread(target=session.close)
    closer.start()
    with session._cond:  # close() has begun (it waits for the Imagine)
        assert session._cond.wait_for(lambda: session._stop, 10)
    backend.gate.wait()  # the first frame ends; the Imagine sees the close before the next one
    closer.join(30)
    thread.join(30)
    assert not closer.is_alive() and not thread.is_alive()
    assert backend.imagined == 1 and errors == [
        "cancelled: the node was cleaned up or shut down during the Imagine"
    ]
    assert session._imagines == 0
