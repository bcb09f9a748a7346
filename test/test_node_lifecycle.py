"""The node's ROS 2 conventions over real DDS: lifecycle transitions, compressed image input, live
parameters, diagnostics that follow recent behaviour, and a clean exit on SIGINT.

The node runs in its own process (``harness.NodeProcess``), mostly with the model-free copy-last
backend, whose predicted frame is the newest ingested image: this pins what a prediction saw.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from astra_ros.ros.isolation import isolate_ros

isolate_ros()
import rclpy  # noqa: E402
from harness import COPY_LAST_JOINTS, Driver, NodeProcess, make_image, make_joint_state, own_rss_kb, stream  # noqa: E402
from lifecycle_msgs.msg import Transition, TransitionEvent  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from astra_ros.data.compressed import compressed_to_rgb, encode_rgb  # noqa: E402
from astra_ros.data.compressed_bench import camera_like_frame  # noqa: E402
from astra_ros.data.images import resize_to_model  # noqa: E402
from astra_ros.ros.conversions import ns_to_stamp, stamp_to_ns  # noqa: E402
from astra_ros.srv import Imagine  # noqa: E402

BASE = 1_700_000_000 * 1_000_000_000
PERIOD = 33_333_333
NODE = "astra_world_model"
COPY_LAST = {
    "model_path": "copy_last",
    "joint_names": COPY_LAST_JOINTS,
    "prediction_rate": 0.0,
    "image_qos_reliability": "reliable",
    "image_qos_depth": 50,
    "diagnostics_period": 0.2,
    "horizon": 4,
    "min_history": 2,
}
KUKA_JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
ONNX = {
    **COPY_LAST,
    "model_path": "engines/astra_small.onnx",
    "backend": "onnxruntime",
    "joint_names": KUKA_JOINTS,
}


@pytest.fixture(scope="module", autouse=True)
def ros_context(ros_domain):
    rclpy.init()
    yield
    rclpy.try_shutdown()


class Lifecycle:
    """Clients of the node's lifecycle and parameter services."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self.change = driver.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = driver.node.create_client(GetState, f"{NODE}/get_state")
        self.params = driver.node.create_client(SetParameters, f"{NODE}/set_parameters")

    def wait(self, proc: NodeProcess) -> None:
        def ready() -> bool:
            assert proc.proc.poll() is None, proc.output()
            return (
                self.change.service_is_ready()
                and self.get.service_is_ready()
                and self.params.service_is_ready()
            )

        assert self.driver.spin_until(ready, 30), proc.output()

    def state(self) -> str:
        return self.driver.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self.driver.call(
            self.change, ChangeState.Request(transition=Transition(id=transition_id))
        ).success

    def set(self, **values) -> list:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return list(self.driver.call(self.params, request).results)


def image_subscribed(driver: Driver) -> bool:
    return driver.image_pub.get_subscription_count() > 0


def segment_predictions(driver: Driver, start: int, count: int) -> list:
    return [m for m, _ in driver.predictions if start <= stamp_to_ns(m.header.stamp) < start + count * PERIOD]


def main_status(driver: Driver):
    """The newest status of the node itself (the first of its /diagnostics array)."""
    for array in reversed(driver.diagnostics):
        for status in array.status:
            if status.name.endswith(": world model"):
                return status
    return None


def status_after(driver: Driver, predicate, timeout: float = 15.0):
    driver.spin_until(lambda: (s := main_status(driver)) is not None and predicate(s), timeout)
    return main_status(driver)


def test_lifecycle_transitions_predict_only_while_active():
    with NodeProcess({**COPY_LAST, "autostart": False}) as proc:
        driver = Driver()
        life = Lifecycle(driver)
        events: list[TransitionEvent] = []
        driver.node.create_subscription(TransitionEvent, f"{NODE}/transition_event", events.append, 50)
        try:
            life.wait(proc)
            assert driver.spin_until(
                lambda: driver.node.count_publishers(f"/{NODE}/transition_event") > 0, 10
            )
            assert life.state() == "unconfigured"
            assert not driver.call(driver.reset, Trigger.Request()).success  # no state yet
            assert not life.transition(
                Transition.TRANSITION_ACTIVATE
            )  # not available: refused, with a reason
            assert (
                "change_state refused: transition id=3 label='' is not available in state 'unconfigured'"
                in (proc.output())
            )
            assert life.transition(Transition.TRANSITION_CONFIGURE) and life.state() == "inactive"
            assert driver.spin_until(lambda: len(events) >= 2, 10)  # as rcl publishes them
            assert [(e.transition.label, e.start_state.label, e.goal_state.label) for e in events] == [
                ("configure", "unconfigured", "configuring"),
                ("transition_success", "configuring", "inactive"),
            ]
            graph = driver.node.create_client(GetAvailableTransitions, f"{NODE}/get_transition_graph")
            transitions = driver.call(graph, GetAvailableTransitions.Request()).available_transitions
            assert len(transitions) == 25 and transitions[0].goal_state.label == "configuring"
            driver.spin_for(0.5)
            assert not image_subscribed(driver)  # inactive: no subscriptions, nothing can arrive
            assert status_after(driver, lambda s: s.message == "inactive").level == b"\x00"

            assert life.transition(Transition.TRANSITION_ACTIVATE) and life.state() == "active"
            assert driver.spin_until(lambda: image_subscribed(driver), 10)
            stream(driver, 10, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
            assert driver.spin_until(lambda: len(segment_predictions(driver, BASE, 10)) >= 5, 10), (
                proc.output()
            )
            assert segment_predictions(driver, BASE, 10)[0].state_reset

            assert life.transition(Transition.TRANSITION_DEACTIVATE) and life.state() == "inactive"
            assert driver.spin_until(lambda: not image_subscribed(driver), 10)
            before = len(driver.predictions)
            request = Imagine.Request(
                modality="joint_velocity",
                joint_names=COPY_LAST_JOINTS,
                num_candidates=1,
                horizon=1,
                action_dim=7,
            )
            request.actions = [0.0] * 7
            response = driver.call(driver.imagine, request)
            assert not response.success and "not active" in response.error

            assert life.transition(Transition.TRANSITION_ACTIVATE)
            assert driver.spin_until(lambda: image_subscribed(driver), 10)
            start = BASE + 100 * PERIOD
            stream(driver, 10, 30.0, COPY_LAST_JOINTS, start_ns=start)
            assert driver.spin_until(lambda: len(segment_predictions(driver, start, 10)) >= 5, 10), (
                proc.output()
            )
            first = segment_predictions(driver, start, 10)[0]
            assert first.state_reset  # deactivate cleared the causal state
            assert all(stamp_to_ns(s) >= start for s in first.context_stamps)
            assert len(driver.predictions) - before == len(segment_predictions(driver, start, 10))

            assert life.transition(Transition.TRANSITION_DEACTIVATE)
            assert life.transition(Transition.TRANSITION_CLEANUP) and life.state() == "unconfigured"
            assert "model released" in proc.output()
            assert not driver.call(driver.reset, Trigger.Request()).success
        finally:
            driver.close()


def test_cleanup_releases_the_model_memory():
    """Configure and clean up twice with the shipped model: the second cleanup returns the memory
    the second configure took (the first also loads ONNX Runtime's libraries, which stay)."""
    with NodeProcess({**ONNX, "autostart": False}) as proc:
        driver = Driver()
        life = Lifecycle(driver)
        try:
            life.wait(proc)
            rss = []
            for transition in [Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_CLEANUP] * 2:
                assert life.transition(transition), proc.output()
                rss.append(own_rss_kb(proc.proc.pid))
            loaded, released = rss[2] - rss[1], rss[2] - rss[3]
            assert loaded > 10_000, rss  # the 34 MB model's weights
            assert released > 0.75 * loaded, rss
            assert rss[3] < rss[1] + 10_000, rss  # no growth from one cycle to the next (allocator noise)
        finally:
            driver.close()


def test_a_cleanup_during_an_imagine_returns_its_memory():
    """Issue 28: a cleanup during a 16-candidate Imagine kept the old model and the candidates' caches
    alive until the Imagine ended, after the new model was loaded (98-110 MB retained). Now the
    cleanup stops the Imagine (answered, refused), and a deactivate/cleanup/configure/activate
    cycle with one in flight leaves the RSS where a cycle without one does."""
    with NodeProcess({**ONNX, "prediction_rate": 2.0}) as proc:
        driver = Driver()
        life = Lifecycle(driver)
        try:
            life.wait(proc)
            assert driver.wait_connected(proc, 30), proc.output()
            start = [BASE]

            def feed(count: int) -> None:
                start[0] = stream(driver, count, 15.0, KUKA_JOINTS, start_ns=start[0]) + 66_666_667

            def cycle() -> int:
                for transition in (
                    Transition.TRANSITION_DEACTIVATE,
                    Transition.TRANSITION_CLEANUP,
                    Transition.TRANSITION_CONFIGURE,
                    Transition.TRANSITION_ACTIVATE,
                ):
                    assert life.transition(transition), proc.output()
                assert driver.spin_until(lambda: image_subscribed(driver), 10)
                feed(30)
                return own_rss_kb(proc.proc.pid)

            feed(30)
            without = cycle()
            request = Imagine.Request(  # 64 frames: still under way at the cleanup on any CPU
                modality="joint_velocity",
                joint_names=KUKA_JOINTS,
                num_candidates=16,
                horizon=64,
                action_dim=7,
            )
            request.actions = [0.1] * (16 * 64 * 7)
            imagine = driver.imagine.call_async(request)
            feed(8)  # the Imagine is under way
            assert not imagine.done()
            during = cycle()
            # kB; it held ~100 MB more before. 50 MB of slack: with the stage-8 model ONNX Runtime's
            # arenas kept 20.4 MB more after one cycle than the other (once, on a loaded machine)
            assert during < without + 50_000, (without, during)
            assert driver.spin_until(imagine.done, 30)
            assert not imagine.result().success and "cancelled" in imagine.result().error
        finally:
            driver.close()


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compressed_images_predict_like_raw_ones(codec):
    with NodeProcess({**COPY_LAST, "image_transport": "compressed", "max_image_pixels": 200 * 200}) as proc:
        driver = Driver()
        publisher = driver.node.create_publisher(CompressedImage, "image/compressed", 50)
        try:
            assert driver.spin_until(lambda: publisher.get_subscription_count() > 0, 30), proc.output()
            frames = [camera_like_frame(96, 128, seed=i) for i in range(6)]
            for i, frame in enumerate(frames):
                stamp = BASE + i * PERIOD
                driver.joint_pub.publish(make_joint_state(stamp - 1_000_000, COPY_LAST_JOINTS, [0.1] * 7))
                msg = CompressedImage()
                msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp), "camera"
                msg.format, msg.data = encode_rgb(frame, codec)
                publisher.publish(msg)
                driver.spin_for(0.05)
            assert driver.spin_until(
                lambda: any(stamp_to_ns(m.header.stamp) == BASE + 5 * PERIOD for m, _ in driver.predictions),
                10,
            ), proc.output()
            for msg, _ in driver.predictions:
                index = (stamp_to_ns(msg.header.stamp) - BASE) // PERIOD
                raw = resize_to_model(frames[index], 64)  # what the raw image would have given
                got = np.frombuffer(bytes(msg.frames[0].data), np.uint8).reshape(64, 64, 3)
                if codec == "png":
                    np.testing.assert_array_equal(got, raw)
                else:
                    mse = np.mean((got.astype(np.float64) - raw) ** 2)
                    assert 10 * np.log10(255**2 / mse) > 30.0  # JPEG q95, after the area resize

            big = CompressedImage(format=f"rgb8; {codec} compressed bgr8")
            big.header.stamp = ns_to_stamp(BASE + 6 * PERIOD)
            big.data = encode_rgb(camera_like_frame(240, 320), codec)[1]
            publisher.publish(big)
            corrupt = CompressedImage(format=codec, data=encode_rgb(frames[0], codec)[1][:20])
            corrupt.header.stamp = ns_to_stamp(BASE + 7 * PERIOD)
            publisher.publish(corrupt)
            assert driver.spin_until(
                lambda: (
                    driver.latest_diagnostics().get("rejected.image_too_large") == "1"
                    and driver.latest_diagnostics().get("rejected.image_header") == "1"
                ),
                10,
            ), (driver.latest_diagnostics(), proc.output())
            assert "76800 pixels; expected at most 40000" in proc.output()
        finally:
            driver.close()


def test_live_parameters_change_behaviour_and_bad_values_are_refused():
    with NodeProcess(COPY_LAST) as proc:
        driver = Driver()
        life = Lifecycle(driver)
        try:
            assert driver.wait_connected(proc, 30), proc.output()
            life.wait(proc)

            results = life.set(horizon=2, confidence_decay=0.5, predicted_image_horizon=2)
            assert all(r.successful for r in results), results
            stream(driver, 6, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
            assert driver.spin_until(lambda: len(segment_predictions(driver, BASE, 6)) >= 3, 10), (
                proc.output()
            )
            assert driver.spin_until(lambda: len(driver.predicted_images) == len(driver.predictions), 5)
            for msg in segment_predictions(driver, BASE, 6):
                assert len(msg.frames) == 2 and list(msg.confidence) == [0.5, 0.25]
            republished = [stamp_to_ns(image.header.stamp) for image in driver.predicted_images]
            assert republished == [stamp_to_ns(m.frames[1].header.stamp) for m, _ in driver.predictions]

            assert life.set(prediction_rate=5.0)[0].successful
            start = BASE + 100 * PERIOD
            stream(driver, 30, 30.0, COPY_LAST_JOINTS, start_ns=start)
            assert driver.spin_until(
                lambda: len(segment_predictions(driver, start + 24 * PERIOD, 6)) >= 1, 10
            )
            stamps = [stamp_to_ns(m.header.stamp) for m in segment_predictions(driver, start, 30)]
            assert 3 <= len(stamps) <= 5 and min(np.diff(stamps)) >= 0.99e9 / 5.0  # 30 frames at 30 Hz

            # Commands only at the start; images 2 s later: stale under 0.5 s, in force under 5 s.
            # (The jump to the new timeline is taken on its third frame: two are rejected first.)
            assert all(r.successful for r in life.set(prediction_rate=0.0, stale_command_policy="skip"))
            start = BASE + 1000 * PERIOD
            driver.joint_pub.publish(make_joint_state(start - 2 * 10**9, COPY_LAST_JOINTS, [0.2] * 7))
            for i in range(5):
                driver.image_pub.publish(make_image(start + i * PERIOD, value=i))
            assert driver.spin_until(
                lambda: driver.latest_diagnostics().get("dropped.stale_command") == "3", 10
            )
            assert life.set(command_staleness=5.0)[0].successful
            for i in range(5, 11):
                driver.image_pub.publish(make_image(start + i * PERIOD, value=i))
            assert driver.spin_until(lambda: len(segment_predictions(driver, start, 11)) >= 1, 10), (
                proc.output()
            )
            assert segment_predictions(driver, start, 11)[0].actions.points[0].velocities[0] == pytest.approx(
                0.2
            )

            bad = make_image(start + 20 * PERIOD)
            bad.encoding = "weird42"
            assert life.set(log_throttle_period=0.0)[0].successful
            logged = proc.output().count("rejected (image_encoding)")
            for _ in range(3):
                driver.image_pub.publish(bad)
            assert driver.spin_until(
                lambda: proc.output().count("rejected (image_encoding)") == logged + 3, 10
            )
            assert life.set(log_throttle_period=3600.0)[0].successful
            for _ in range(3):
                driver.image_pub.publish(bad)
            assert driver.spin_until(
                lambda: driver.latest_diagnostics().get("rejected.image_encoding") == "6", 10
            )
            driver.spin_for(0.5)
            assert proc.output().count("rejected (image_encoding)") == logged + 3

            refused = {
                "horizon": (0, "Parameter horizon out of range"),  # the descriptor's IntegerRange
                "predicted_image_horizon": (3, "expected at most horizon=2"),
                "prediction_rate": (-1.0, "Parameter prediction_rate out of range"),
                "stale_command_policy": ("sometimes", "expected one of ['zero', 'hold', 'skip']"),
                "confidence_decay": (1.5, "Parameter confidence_decay out of range"),
                "model_path": ("other.onnx", "read-only"),
            }
            for name, (value, reason) in refused.items():
                (result,) = life.set(**{name: value})
                assert not result.successful and reason in result.reason, (name, result.reason)
            assert life.set(horizon=2)[0].successful  # still the value set before
        finally:
            driver.close()
            assert proc.proc.poll() is None, proc.output()


def test_diagnostics_levels_follow_recent_behaviour_and_return_to_ok():
    params = {**COPY_LAST, "diagnostics_window": 1.0, "max_stamp_age": 5.0}
    with NodeProcess(params) as proc:
        driver = Driver()
        try:
            assert driver.wait_connected(proc, 30), proc.output()
            stream(driver, 20, 30.0, COPY_LAST_JOINTS)  # live stamps
            ok = status_after(driver, lambda s: s.level == b"\x00" and "no problems" in s.message)
            assert ok.level == b"\x00", ok
            assert ok.hardware_id == "copy_last/copy_last/-/none"
            inputs = {s.name.rsplit(": ", 1)[1]: s for s in driver.diagnostics[-1].status}
            assert {"image input", "commands input"} <= set(inputs)
            assert "image: rate" in inputs["image input"].message

            bad = make_image(0)
            bad.encoding = "weird42"
            driver.image_pub.publish(bad)
            warn = status_after(driver, lambda s: s.level == b"\x01")
            assert "rejected.image_encoding 1" in warn.message, warn
            stream(driver, 60, 30.0, COPY_LAST_JOINTS)  # 2 s of good images: a clean window
            assert status_after(driver, lambda s: s.level == b"\x00").level == b"\x00", main_status(driver)

            driver.spin_for(1.5)  # the window forgets the good images
            for _ in range(10):  # every image bad: an error while the window holds them
                driver.image_pub.publish(bad)
            error = status_after(driver, lambda s: s.level == b"\x02")
            assert error.level == b"\x02" and "image: 10 of 10" in error.message, error
            stream(driver, 60, 30.0, COPY_LAST_JOINTS)
            assert status_after(driver, lambda s: s.level == b"\x00").level == b"\x00", main_status(driver)
            assert int(driver.latest_diagnostics()["rejected.image_encoding"]) == 11  # the counts stay
        finally:
            driver.close()


def test_sigint_while_predicting_exits_cleanly():
    with NodeProcess({**ONNX, "horizon": 8}) as proc:
        driver = Driver()
        try:
            assert driver.wait_connected(proc, 60), proc.output()
            stream(driver, 20, 15.0, KUKA_JOINTS)
            assert driver.spin_until(lambda: len(driver.predictions) >= 2, 30), proc.output()
            stream(driver, 5, 0.0, KUKA_JOINTS)  # a burst: the worker is busy at the signal
            proc.proc.send_signal(signal.SIGINT)
            assert proc.wait_exit(30) == 0, proc.output()
        finally:
            driver.close()
        output = proc.output()
        for text in ("worker step failed", "Traceback", "RCLError", "context is invalid"):
            assert text not in output, output


def test_best_effort_images_with_large_gaps_are_reported_in_the_log():
    params = {**COPY_LAST, "image_qos_reliability": "best_effort", "log_throttle_period": 3600.0}
    with NodeProcess(params) as proc:
        driver = Driver()
        try:
            assert driver.wait_connected(proc, 30), proc.output()
            rng = np.random.default_rng(0)
            kept = [i for i in range(120) if rng.random() < 0.4]  # 60 % of the camera's frames lost
            for i in kept:
                stamp = BASE + i * PERIOD
                driver.joint_pub.publish(make_joint_state(stamp - 1_000_000, COPY_LAST_JOINTS, [0.0] * 7))
                driver.image_pub.publish(make_image(stamp, value=i))
                driver.spin_for(0.01)
            message = "best-effort stream losing frames: "
            assert driver.spin_until(lambda: message in proc.output(), 10), proc.output()
            assert proc.output().count(message) == 1  # throttled
            assert "consider image_qos_reliability=reliable" in proc.output()
            missing, expected = (
                int(n) for n in driver.latest_diagnostics()["image.frames_missing_recent"].split("/")
            )
            assert 0.4 < missing / expected < 0.8
        finally:
            driver.close()


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_sim_publisher_publishes_compressed_images(codec):
    node = rclpy.create_node("astra_test_compressed_sink")
    received = []
    node.create_subscription(CompressedImage, "/camera/image_raw/compressed", received.append, 50)
    args = ["--seconds", "1", "--real-time-factor", "4", "--wait-for-subscribers", "1"]
    args += ["--image-transport", "compressed", "--image-codec", codec]
    proc = subprocess.Popen(
        [sys.executable, "-m", "astra_ros.ros.sim_publisher", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
        output = proc.stdout.read()
        assert proc.returncode == 0, output
        assert len(received) >= 10, output  # 15 Hz for one simulated second
        assert received[0].format == f"rgb8; {codec} compressed bgr8"
        rgb = compressed_to_rgb(received[0])
        assert rgb.shape == (64, 64, 3) and rgb.std() > 0  # a rendered scene, not a blank
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
