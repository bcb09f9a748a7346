"""Streaming session benchmark (``astra-bench node``): the node's engine against the bare backend.

A ``StreamSession`` (the node's queue, worker, decimation and accounting, no ROS) is fed camera
frames at each input rate in real time; reported: its latency from frame stamp to the prediction
callback (where the node publishes), the predictions per second it kept up, the due frames whose
prediction a newer one superseded and the frames the queue dropped, and its time outside the backend
calls, against the bare backend calls (ingest + predict) paced the same way on the same model. The
ROS layer around it (conversion, DDS, publishing) is measured by the node itself:
``latency_p50_ms`` and ``outside_backend_p50_ms`` on /diagnostics.

``--imagine B H``: instead, the live predictions during one Imagine of B candidates x H frames, the
Imagine holding the backend for its whole call (as before issue 19) against ``imagine_chunk``
frames at a time (``StreamSession``): the longest pause of live predictions, their latency.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from typing import Any

import numpy as np

from astra_ros.ros.conversions import command_width
from astra_ros.ros.settings import SPECS, Settings, load_world_model
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.runtime.session import Prediction, SessionConfig, StreamSession

DEFAULT_JOINTS = [f"joint_{i}" for i in range(7)]  # joint_velocity width for a model that names none


def _command_width(settings: Settings, backend: WorldModelBackend) -> int:
    return command_width(settings.modality, backend.info.joint_names or settings.joint_names)


def _bare_backend_ms(
    settings: Settings, ingest_hz: float, predict_hz: float, seconds: float
) -> dict[str, float]:
    """The worker's two jobs on the bare backend, no ROS. Back to back (60 frames, a prediction after
    each once warm): p50 of one ingest, p50 and p99 of one predict. Paced as the node runs them (an
    ingest every 1/``ingest_hz`` s, a prediction after every ``ingest_hz / predict_hz``-th, idle in
    between): p50 and p99 of ingest + predict. A machine that idles between calls runs them slower
    than back to back, with or without ROS, so the paced figure is the node's baseline."""
    backend = load_world_model(settings)
    width = _command_width(settings, backend)
    size = backend.info.image_size
    rng = np.random.default_rng(0)
    plan = np.zeros((1, settings.horizon, width), np.float32)

    def ingest() -> float:
        frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        started = time.perf_counter()
        backend.ingest(frame, np.zeros(width, np.float32), settings.modality)
        return (time.perf_counter() - started) * 1e3

    def predict(seed: int) -> float:
        started = time.perf_counter()
        backend.predict(plan, settings.modality, steps=settings.denoising_steps, seed=seed)
        return (time.perf_counter() - started) * 1e3

    ingests, predicts, paced = [], [], []
    for i in range(60):
        ingests.append(ingest())
        if backend.history_length >= settings.min_history:
            predicts.append(predict(i))
    every = max(1, round(ingest_hz / predict_hz))
    next_at = time.monotonic()
    for i in range(max(every, int(seconds * ingest_hz))):
        took = ingest()
        if i % every == every - 1:
            paced.append(took + predict(i))
        next_at += 1.0 / ingest_hz
        time.sleep(max(0.0, next_at - time.monotonic()))
    return dict(
        ingest_p50=float(np.median(ingests)),
        predict_p50=float(np.median(predicts)),
        paced_p50=float(np.median(paced)),
        paced_p99=float(np.percentile(paced, 99)),
    )


def _measure_session(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """Feed a StreamSession ``seconds`` of frames at ``rate`` Hz (stamped now) and read its stats."""
    backend = load_world_model(settings)
    width = _command_width(settings, backend)
    size = backend.info.image_size
    session = StreamSession(backend, SessionConfig.from_settings(settings), lambda p: None, width)
    rng = np.random.default_rng(0)
    count = int(seconds * rate)
    next_at = time.monotonic()
    try:
        for _ in range(count):
            stamp = time.time_ns()
            session.submit_command(stamp - 1_000_000, np.zeros(width, np.float32))
            session.image_received()
            session.submit(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), stamp)
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        session.wait_idle(30.0)
        stats = session.stats()
    finally:
        session.close()
    return dict(
        images=count,
        predictions=stats.counts.get("count.predictions", 0),
        superseded=stats.counts.get("dropped.superseded", 0),
        queue_full=stats.counts.get("dropped.ingest_queue_full", 0),
        session_p50=stats.latency_p50_ms,
        session_p99=stats.latency_p99_ms,
        outside_p50=stats.outside_backend_p50_ms,
    )


def _measure_imagine(
    settings: Settings, batch: int, horizon: int, chunk: int, rate: float, warm_s: float
) -> dict[str, float]:
    """Live frames at ``rate`` Hz (stamped now) into a StreamSession; after ``warm_s`` s one Imagine
    of ``batch`` x ``horizon`` from another thread, rolled out ``chunk`` frames per hold of the
    backend; the frames go on until it returns. Live predictions before and during the Imagine."""
    backend = load_world_model(settings)
    width = _command_width(settings, backend)
    size = backend.info.image_size
    live: list[tuple[float, float]] = []  # (monotonic s when handed over, latency ms)

    def handed_over(p: Prediction) -> None:
        live.append((time.monotonic(), (time.time_ns() - p.newest.stamp_ns) / 1e6))

    config = SessionConfig.from_settings(settings)
    session = StreamSession(backend, config, handed_over, width, imagine_chunk=chunk)
    window: list[float] = []

    def imagine() -> None:
        window.append(time.monotonic())
        session.imagine(np.zeros((batch, horizon, width), np.float32), settings.modality)
        window.append(time.monotonic())

    rng = np.random.default_rng(0)
    thread = threading.Thread(target=imagine, name="bench_imagine")
    started = next_at = time.monotonic()
    try:
        while thread.ident is None or thread.is_alive():
            if thread.ident is None and time.monotonic() - started >= warm_s:
                thread.start()
            stamp = time.time_ns()
            session.submit_command(stamp - 1_000_000, np.zeros(width, np.float32))
            session.submit(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), stamp)
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        thread.join()
        session.wait_idle(30.0)
        counts = session.stats().counts
    finally:
        session.close()
    if len(window) < 2:
        raise RuntimeError("the Imagine failed (its traceback is above)")
    start, end = window
    before = [ms for t, ms in live if t < start]
    during = [(t, ms) for t, ms in live if start <= t <= end]
    pauses = np.diff([start] + [t for t, _ in during] + [end])
    return dict(
        chunk=chunk,
        imagine_s=end - start,
        predictions=len(during),
        max_pause_s=float(pauses.max()),
        p50_before=float(np.median(before)),
        p50_during=float(np.median([ms for _, ms in during])) if during else float("nan"),
        queue_full=counts.get("dropped.ingest_queue_full", 0),
    )


def imagine_benchmark(model_path: str, batch: int, horizon: int, chunk: int, seconds: float) -> None:
    """Print live predictions during one Imagine: whole call under the backend (before) vs chunked."""
    info = load_world_model(Settings.from_values({"model_path": model_path})).info
    rate = 1.0 / info.frame_period if info.frame_period > 0 else 15.0
    settings = Settings.from_values(
        {"model_path": model_path, "joint_names": [] if info.joint_names else DEFAULT_JOINTS}
    )
    rows = [_measure_imagine(settings, batch, horizon, c, rate, seconds) for c in (horizon, chunk)]
    print(
        f"Live predictions during one Imagine of {batch} x {horizon} ({model_path}, {rate:g} Hz camera, "
        f"prediction_rate {settings.prediction_rate:g}, horizon {settings.horizon}); chunk = Imagine "
        f"frames per hold of the backend ({horizon}: the whole call, as before); pause = longest time "
        "without a live prediction during the Imagine; p50 = live latency from frame stamp"
    )
    print(
        "| chunk | Imagine s | live predictions | longest pause s | p50 before ms | p50 during ms "
        "| queue full |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['chunk']} | {r['imagine_s']:.1f} | {r['predictions']} | {r['max_pause_s']:.2f} "
            f"| {r['p50_before']:.0f} | {r['p50_during']:.0f} | {r['queue_full']} |"
        )
    whole, chunked = rows
    print(
        f"chunk {chunk} / whole call: longest pause x{chunked['max_pause_s'] / whole['max_pause_s']:.2f}, "
        f"live p50 during x{chunked['p50_during'] / whole['p50_during']:.2f}, "
        f"Imagine time x{chunked['imagine_s'] / whole['imagine_s']:.2f}"
    )


def run_benchmark(
    model_path: str,
    rates: list[float],
    prediction_rate: float | None,
    seconds: float,
    threads: tuple[int, ...] = (0,),
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """One session per inference thread count, input rate and round; ``prediction_rate`` None = the
    input rate. Each round measures the bare backend right before its session, so that a slow or
    fast spell of the machine does not land on one side of the comparison only."""
    info = load_world_model(Settings.from_values({"model_path": model_path})).info
    model_hz = 1.0 / info.frame_period if info.frame_period > 0 else float("inf")
    joints = [] if info.joint_names else DEFAULT_JOINTS
    rows = []
    for n_threads, rate, round_ in itertools.product(threads, rates, range(rounds)):
        predict_hz = min(rate, prediction_rate or rate)
        settings = Settings.from_values(
            {
                "model_path": model_path,
                "inference_threads": n_threads,
                "prediction_rate": float(predict_hz),
                "joint_names": joints,
            }
        )
        bare = _bare_backend_ms(settings, min(rate, model_hz), predict_hz, min(seconds, 10.0))
        rows.append(
            dict(
                threads=n_threads,
                round=round_ + 1,
                rate=rate,
                prediction_rate=predict_hz,
                load=(min(rate, model_hz) * bare["ingest_p50"] + predict_hz * bare["predict_p50"]) / 1e3,
                bare_p50=bare["paced_p50"],
                bare_p99=bare["paced_p99"],
                back_to_back_p50=bare["ingest_p50"] + bare["predict_p50"],
                horizon=settings.horizon,
                seconds=seconds,
                **_measure_session(settings, rate, seconds),
            )
        )
    return rows


def print_table(rows: list[dict[str, Any]], backend: str) -> None:
    print(
        f"StreamSession latency ({backend}); ms from frame stamp to the prediction callback; bare = "
        "backend ingest + predict p50 without the session, measured right before each session, paced "
        "as the session runs them (the baseline) and back to back; worker load = ingests/s x ingest ms "
        "+ predictions/s x predict ms (over 100%: it cannot keep up); outside backend = the session's "
        "latency minus its backend calls for that prediction (queueing, hand-over)"
    )
    print(
        "| threads | input Hz | prediction Hz | round | worker load | images | predictions | superseded "
        "| queue full | session p50 | session p99 | bare paced p50 | bare back to back p50 "
        "| session overhead p50 | outside backend p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads'] or 'default'} | {r['rate']:g} | {r['prediction_rate']:g} | {r['round']} "
            f"| {r['load']:.0%} | {r['images']} | {r['predictions']} | {r['superseded']} | {r['queue_full']} "
            f"| {r['session_p50']:.1f} | {r['session_p99']:.1f} | {r['bare_p50']:.1f} "
            f"| {r['back_to_back_p50']:.1f} | {overhead(r):+.0%} | {r['outside_p50']:.1f} ms |"
        )
    groups: dict[tuple[int, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["threads"], r["rate"]), []).append(r)
    for (n_threads, rate), group in groups.items():
        print(
            f"threads {n_threads or 'default'}, {rate:g} Hz, {len(group)} rounds: "
            f"{group[0]['horizon']}-frame prediction p50 "
            f"{np.median([r['session_p50'] for r in group]):.1f} ms (median of the rounds) at "
            f"{np.median([r['predictions'] / r['seconds'] for r in group]):.1f} predictions/s, "
            f"{sum(r['superseded'] for r in group)} superseded and {sum(r['queue_full'] for r in group)} "
            f"dropped frames; session overhead p50 median {np.median([overhead(r) for r in group]):+.1%} "
            f"(over back to back {np.median([overhead(r, 'back_to_back_p50') for r in group]):+.1%})"
        )


def overhead(row: dict[str, Any], baseline: str = "bare_p50") -> float:
    """Session latency p50 over the bare backend p50 of the same round, minus 1."""
    return row["session_p50"] / row[baseline] - 1 if row[baseline] > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="astra-bench node", description=__doc__)
    parser.add_argument("--model-path", default=SPECS["model_path"].default)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0], help="camera rates (Hz)")
    parser.add_argument(
        "--prediction-rate", type=float, default=None, help="predictions/s (default: the camera rate)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[0], help="inference_threads values (0 = runtime default)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare + session measurements per setting, interleaved"
    )
    parser.add_argument(
        "--imagine", type=int, nargs=2, metavar=("B", "H"), help="live predictions during an Imagine"
    )
    parser.add_argument("--imagine-chunk", type=int, default=1, help="Imagine frames per backend hold")
    args = parser.parse_args(argv)
    if args.imagine:
        imagine_benchmark(args.model_path, *args.imagine, args.imagine_chunk, args.seconds)
        return 0
    rows = run_benchmark(
        args.model_path, args.rates, args.prediction_rate, args.seconds, tuple(args.threads), args.rounds
    )
    print_table(rows, args.model_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
