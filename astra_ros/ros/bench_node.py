"""Node latency benchmark (``astra-bench node``) and the out-of-process harness the node tests share.

The node runs in its own process (``python -m astra_ros.ros.node``); this process publishes images
and commands over DDS and receives the predictions. Reported: latency from image stamp to publish
(the node's own measurement, from /diagnostics) and to receipt here, at each input rate, and the
ROS layer's overhead over the bare backend calls (ingest + predict) on the same model.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.ros.isolation import isolate_ros
from astra_ros.ros.settings import SPECS, Settings

COPY_LAST_JOINTS = [f"joint_{i}" for i in range(7)]


def ros_arg(name: str, value: Any) -> str:
    """One ``-p name:=value`` argument whose YAML parses back to the declared type."""
    kind = type(SPECS[name].default) if name in SPECS else type(value)
    if kind is float:
        text = repr(float(value))
    elif kind is bool or isinstance(value, bool):
        text = "true" if value else "false"
    elif kind is list:
        text = "[" + ", ".join(f"'{v}'" for v in value) + "]"
    else:
        text = str(value)
    return f"{name}:={text}"


class NodeProcess:
    """The node in a subprocess with the given parameters; always killed on exit."""

    def __init__(
        self, params: dict[str, Any], extra_args: list[str] | None = None, module: str = "astra_ros.ros.node"
    ):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="astra_node_", suffix=".log", delete=False)
        args = [sys.executable, "-m", module, *(extra_args or []), "--ros-args"]
        for name, value in params.items():
            args += ["-p", ros_arg(name, value)]
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("VmRSS not found")

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: clean rclpy shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def make_image(
    stamp_ns: int, size: int = 64, value: int = 0, encoding: str = "rgb8", frame_id: str = "camera"
):
    from sensor_msgs.msg import Image

    from astra_ros.ros.conversions import ns_to_stamp

    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height = msg.width = size
    msg.encoding = encoding
    msg.step = 3 * size
    msg.data = np.full((size, size, 3), value % 256, np.uint8).tobytes()
    return msg


def make_joint_state(stamp_ns: int, names: list[str], velocities: list[float]):
    from sensor_msgs.msg import JointState

    from astra_ros.ros.conversions import ns_to_stamp

    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.name = list(names)
    msg.velocity = [float(v) for v in velocities]
    return msg


class Driver:
    """Test/bench side: publishers, a PredictedFrames and /diagnostics sink, service clients.

    Uses reliable QoS for images so nothing is lost on the wire (the node's image QoS is chosen by
    the test through ``image_qos_reliability``).
    """

    def __init__(
        self,
        namespace: str = "",
        node_name: str = "astra_world_model",
        reliable_images: bool = True,
        depth: int = 50,
    ):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, JointState
        from std_srvs.srv import Trigger

        from astra_ros.msg import PredictedFrames
        from astra_ros.srv import Imagine

        self.rclpy = rclpy
        self.node = rclpy.create_node("astra_test_driver", namespace=namespace)
        image_qos = QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable_images else ReliabilityPolicy.BEST_EFFORT,
        )
        self.image_pub = self.node.create_publisher(Image, "image", image_qos)
        self.joint_pub = self.node.create_publisher(JointState, "joint_commands", depth)
        self.predictions: list[tuple[Any, int]] = []  # (msg, receipt ns)
        self.predicted_images: list[Any] = []
        self.diagnostics: list[Any] = []
        self.node.create_subscription(
            PredictedFrames,
            "predicted_frames",
            lambda m: self.predictions.append((m, time.time_ns())),
            max(depth, 100),
        )
        self.node.create_subscription(Image, "predicted_image", self.predicted_images.append, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 100)
        self.imagine = self.node.create_client(Imagine, f"{node_name}/imagine")
        self.reset = self.node.create_client(Trigger, f"{node_name}/reset")

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_connected(self, proc: NodeProcess | None = None, timeout: float = 30.0) -> bool:
        def ready() -> bool:
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"node exited with {proc.proc.returncode}:\n{proc.output()}")
            return (
                self.image_pub.get_subscription_count() > 0
                and self.joint_pub.get_subscription_count() > 0
                and self.imagine.service_is_ready()
                and self.reset.service_is_ready()
            )

        return self.spin_until(ready, timeout)

    def call(self, client, request, timeout: float = 20.0):
        future = client.call_async(request)
        self.spin_until(future.done, timeout)
        if not future.done():
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout} s")
        return future.result()

    def latest_diagnostics(self) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith("/"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self) -> None:
        self.node.destroy_node()


def stream(
    driver: Driver,
    count: int,
    rate_hz: float,
    joints: list[str],
    size: int = 64,
    start_ns: int | None = None,
    velocity: Callable[[int], list[float]] | None = None,
) -> int:
    """Publish ``count`` image+command pairs at ``rate_hz`` (0 = as fast as possible); returns the
    last stamp. Commands are stamped 1 ms before their image."""
    period_ns = int(1e9 / rate_hz) if rate_hz > 0 else 33_333_333
    stamp = start_ns if start_ns is not None else time.time_ns()
    next_wall = time.monotonic()
    for i in range(count):
        if start_ns is None and rate_hz > 0:
            stamp = time.time_ns()
        vel = velocity(i) if velocity else [0.1 * ((i // 10) % 3 - 1)] * len(joints)
        driver.joint_pub.publish(make_joint_state(stamp - 1_000_000, joints, vel))
        driver.image_pub.publish(make_image(stamp, size, i))
        driver.rclpy.spin_once(driver.node, timeout_sec=0)
        if rate_hz > 0:
            next_wall += 1.0 / rate_hz
            while (delay := next_wall - time.monotonic()) > 0:
                driver.rclpy.spin_once(driver.node, timeout_sec=min(delay, 0.01))
        if start_ns is not None or rate_hz <= 0:
            stamp += period_ns
    return stamp


# --- benchmark -------------------------------------------------------------------------------------


def _bare_backend_ms(
    settings: Settings, ingest_hz: float, predict_hz: float, seconds: float
) -> dict[str, float]:
    """The worker's two jobs on the bare backend, no ROS. Back to back (60 frames, a prediction after
    each once warm): p50 of one ingest, p50 and p99 of one predict. Paced as the node runs them (an
    ingest every 1/``ingest_hz`` s, a prediction after every ``ingest_hz / predict_hz``-th, idle in
    between): p50 and p99 of ingest + predict. A machine that idles between calls runs them slower
    than back to back, with or without ROS, so the paced figure is the node's baseline."""
    from astra_ros.ros.conversions import command_width
    from astra_ros.ros.node import load_world_model

    backend = load_world_model(settings)
    joints = list(backend.info.joint_names) or COPY_LAST_JOINTS
    width = command_width(settings.modality, joints)
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


def _measure_node(
    params: dict[str, Any], rate: float, seconds: float, joints: list[str], image_size: int
) -> dict[str, float]:
    """Start the node with ``params``, stream ``seconds`` of camera frames at ``rate``, and read its
    latency (from /diagnostics) and the receipt latency here."""
    with NodeProcess(params) as proc:
        driver = Driver()
        try:
            if not driver.wait_connected(proc, 60):
                raise RuntimeError(f"node did not come up:\n{proc.output()}")
            count = int(seconds * rate)
            stream(driver, count, rate, joints, image_size)
            driver.spin_for(2.0)
            receipt = [(t - stamp_ns(m.header.stamp)) / 1e6 for m, t in driver.predictions]
            diag = driver.latest_diagnostics()
            return dict(
                images=count,
                predictions=len(driver.predictions),
                publish_p50=float(diag.get("latency_p50_ms", "nan")),
                publish_p99=float(diag.get("latency_p99_ms", "nan")),
                outside_p50=float(diag.get("outside_backend_p50_ms", "nan")),
                receipt_p50=float(np.percentile(receipt, 50)) if receipt else float("nan"),
                receipt_p99=float(np.percentile(receipt, 99)) if receipt else float("nan"),
            )
        finally:
            driver.close()


def run_benchmark(
    model_path: str,
    rates: list[float],
    prediction_rate: float | None,
    seconds: float,
    image_size: int,
    threads: tuple[int, ...] = (0,),
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """One node per inference thread count, input rate and round; ``prediction_rate`` None = the input
    rate. Each round measures the bare backend right before its node, so that a slow or fast spell of
    the machine does not land on one side of the comparison only."""
    import rclpy

    isolate_ros()
    from astra_ros.ros.node import load_world_model

    info = load_world_model(Settings.from_values({"model_path": model_path})).info
    joints = list(info.joint_names) or COPY_LAST_JOINTS
    model_hz = 1.0 / info.frame_period if info.frame_period > 0 else float("inf")
    rows = []
    rclpy.init()
    try:
        for n_threads, rate, round_ in itertools.product(threads, rates, range(rounds)):
            settings = Settings.from_values({"model_path": model_path, "inference_threads": n_threads})
            predict_hz = min(rate, prediction_rate or rate)
            bare = _bare_backend_ms(settings, min(rate, model_hz), predict_hz, min(seconds, 10.0))
            params = {
                "model_path": model_path,
                "inference_threads": n_threads,
                "prediction_rate": float(predict_hz),
                "image_qos_reliability": "reliable",
                "image_qos_depth": 10,
                "diagnostics_period": 0.5,
            }
            if not info.joint_names:
                params["joint_names"] = joints
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
                    **_measure_node(params, rate, seconds, joints, image_size),
                )
            )
    finally:
        rclpy.try_shutdown()
    return rows


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def print_table(rows: list[dict[str, Any]], backend: str) -> None:
    print(
        f"astra_world_model latency ({backend}); ms from image stamp; bare = backend ingest + predict p50 "
        "without ROS, measured right before each node, paced as the node runs them (the baseline) and "
        "back to back; worker load = ingests/s x ingest ms + predictions/s x predict ms (over 100%: it "
        "cannot keep up); outside backend = the node's own latency minus its backend calls for that "
        "prediction (conversion, queueing, DDS, publishing)"
    )
    print(
        "| threads | input Hz | prediction Hz | round | worker load | images | predictions | publish p50 "
        "| publish p99 | receipt p50 | receipt p99 | bare paced p50 | bare back to back p50 "
        "| ROS overhead p50 | outside backend p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads'] or 'default'} | {r['rate']:g} | {r['prediction_rate']:g} | {r['round']} "
            f"| {r['load']:.0%} | {r['images']} | {r['predictions']} "
            f"| {r['publish_p50']:.1f} | {r['publish_p99']:.1f} "
            f"| {r['receipt_p50']:.1f} | {r['receipt_p99']:.1f} | {r['bare_p50']:.1f} "
            f"| {r['back_to_back_p50']:.1f} | {overhead(r):+.0%} "
            f"| {r['outside_p50']:.1f} ms ({in_node_share(r):.0%}) |"
        )
    groups: dict[tuple[int, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["threads"], r["rate"]), []).append(r)
    for (n_threads, rate), group in groups.items():
        print(
            f"threads {n_threads or 'default'}, {rate:g} Hz, {len(group)} rounds: ROS overhead p50 median "
            f"{np.median([overhead(r) for r in group]):+.1%} (over back to back "
            f"{np.median([overhead(r, 'back_to_back_p50') for r in group]):+.1%}), outside backend median "
            f"{np.median([in_node_share(r) for r in group]):.1%} of the backend time"
        )


def overhead(row: dict[str, Any], baseline: str = "bare_p50") -> float:
    """Node latency p50 over the bare backend p50 of the same round, minus 1."""
    return row["publish_p50"] / row[baseline] - 1 if row[baseline] > 0 else float("nan")


def in_node_share(row: dict[str, Any]) -> float:
    """The node's time outside its backend calls over the time inside them (p50s, one process)."""
    inside = row["publish_p50"] - row["outside_p50"]
    return row["outside_p50"] / inside if inside > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="astra-bench node", description=__doc__)
    parser.add_argument("--model-path", default=SPECS["model_path"].default)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0], help="camera rates (Hz)")
    parser.add_argument(
        "--prediction-rate", type=float, default=None, help="predictions/s (default: the camera rate)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--image-size", type=int, default=256, help="camera image side (resized by the node)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[0], help="inference_threads values (0 = runtime default)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare + node measurements per setting, interleaved"
    )
    args = parser.parse_args(argv)
    rows = run_benchmark(
        args.model_path,
        args.rates,
        args.prediction_rate,
        args.seconds,
        args.image_size,
        tuple(args.threads),
        args.rounds,
    )
    print_table(rows, args.model_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
