"""The astra_world_model node in its own process, driven over DDS from this process (real rclpy).

The node runs the model-free copy-last backend (``model_path: copy_last``), so a predicted frame
equals the newest ingested image: this pins which frame a prediction came from.
"""

from __future__ import annotations

import numpy as np
import pytest

from astra_ros.ros.isolation import isolate_ros

isolate_ros()
import rclpy  # noqa: E402
from harness import COPY_LAST_JOINTS, Driver, NodeProcess, make_image, make_joint_state, stream  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from astra_ros.ros.conversions import stamp_to_ns  # noqa: E402
from astra_ros.srv import Imagine  # noqa: E402

BASE = 1_700_000_000 * 1_000_000_000
PERIOD = 33_333_333
BASE_PARAMS = {
    "model_path": "copy_last",
    "joint_names": COPY_LAST_JOINTS,
    "prediction_rate": 0.0,
    "image_qos_reliability": "reliable",
    "image_qos_depth": 50,
    "diagnostics_period": 0.2,
    "horizon": 4,
    "min_history": 2,
}


@pytest.fixture(scope="module", autouse=True)
def ros_context(ros_domain):
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def node_and_driver(request):
    params = {**BASE_PARAMS, **getattr(request, "param", {})}
    with NodeProcess(params) as proc:
        driver = Driver()
        try:
            assert driver.wait_connected(proc, 30), proc.output()
            yield proc, driver
        finally:
            driver.close()
            assert proc.proc.poll() is None, f"node died:\n{proc.output()}"


def diag_when(driver: Driver, predicate, timeout: float = 10.0) -> dict[str, str]:
    """The first diagnostics published after ``predicate`` held: a snapshot taken while an image
    callback was between its counters (images counted, decimation not yet) has settled by then."""
    driver.spin_until(lambda: predicate(driver.latest_diagnostics()), timeout)
    seen = len(driver.diagnostics)
    driver.spin_until(lambda: len(driver.diagnostics) > seen, 2.0)
    return driver.latest_diagnostics()


def imagine_request(batch: int, horizon: int, names=COPY_LAST_JOINTS, values=None) -> Imagine.Request:
    width = len(names)
    actions = values if values is not None else [0.1] * (batch * horizon * width)
    return Imagine.Request(
        modality="joint_velocity",
        joint_names=list(names),
        num_candidates=batch,
        horizon=horizon,
        action_dim=width,
        actions=actions,
    )


def test_end_to_end_predictions_imagine_and_reset(node_and_driver):
    proc, driver = node_and_driver
    count = 30
    stream(driver, count, 30.0, COPY_LAST_JOINTS, size=96, start_ns=BASE)
    stamps = {BASE + i * PERIOD: i for i in range(count)}
    diag = diag_when(
        driver, lambda d: int(d.get("count.images", 0)) == count and d.get("queue_length") == "0"
    )
    driver.spin_until(lambda: len(driver.predictions) >= int(diag.get("count.predictions", 1)), 5)
    assert int(diag["count.images"]) == count and int(diag["count.commands"]) == count
    predicted = int(diag["count.predictions"])
    skipped = int(diag.get("dropped.superseded", 0)) + int(diag.get("dropped.not_warm", 0))
    assert predicted + skipped == count  # every frame due (prediction_rate 0): predicted, superseded or cold
    assert len(driver.predictions) == predicted >= 10
    assert len(driver.predicted_images) == predicted
    assert 0 <= float(diag["outside_backend_p50_ms"]) <= float(diag["latency_p50_ms"])
    assert float(diag["ingest_p50_ms"]) >= 0 and float(diag["predict_p50_ms"]) >= 0  # the worker's calls

    rollout_ids = [m.rollout_id for m, _ in driver.predictions]
    assert rollout_ids == list(range(rollout_ids[0], rollout_ids[0] + predicted))
    assert driver.predictions[0][0].state_reset and not any(m.state_reset for m, _ in driver.predictions[1:])
    for msg, _ in driver.predictions:
        stamp = stamp_to_ns(msg.header.stamp)
        index = stamps[stamp]  # stamped from an input image, never now()
        assert msg.header.frame_id == "camera" and msg.model_id == "copy_last/-/none"
        assert msg.modality == "joint_velocity" and msg.command_policy == "hold_last"
        step = msg.time_step.sec * 10**9 + msg.time_step.nanosec
        assert abs(step - PERIOD) <= 1
        assert len(msg.frames) == 4 and len(msg.confidence) == 4 and len(msg.actions.points) == 4
        assert list(msg.actions.joint_names) == COPY_LAST_JOINTS
        assert np.all(np.diff(msg.confidence) < 0) and 0 < msg.confidence[-1] < msg.confidence[0] <= 1
        for h, frame in enumerate(msg.frames):
            assert stamp_to_ns(frame.header.stamp) == stamp + (h + 1) * step
            assert (frame.height, frame.width, frame.encoding, len(frame.data)) == (
                64,
                64,
                "rgb8",
                64 * 64 * 3,
            )
            assert frame.data[0] == index % 256  # copy-last: the newest ingested image
        context = [stamp_to_ns(s) for s in msg.context_stamps]
        assert context[-1] == stamp and context == sorted(context) and 2 <= len(context) <= 8
        velocities = msg.actions.points[0].velocities
        # hold_last: the mean command over the interval that ended at this image (data.pairing):
        # command i-1 for all but the last 1 ms, command i (stamped 1 ms before image i) for that
        # 1 ms; without command i when it is still in flight (the topics are independent); the
        # command in force at the first image; zero before any command
        held = [0.1 * ((i // 10) % 3 - 1) for i in (index, index - 1) if i >= 0]
        allowed = [*held, 0.0] + ([(held[1] * (PERIOD - 10**6) + held[0] * 10**6) / PERIOD] if index else [])
        assert len(velocities) == 7 and min(abs(velocities[0] - a) for a in allowed) < 1e-6, (
            velocities,
            allowed,
        )
    image = driver.predicted_images[-1]
    assert stamp_to_ns(image.header.stamp) == stamp_to_ns(driver.predictions[-1][0].frames[0].header.stamp)

    response = driver.call(driver.imagine, imagine_request(3, 5))
    assert response.success, response.error
    assert len(response.frames) == 15 and len(response.confidence) == 3
    assert all(f.data[0] == (count - 1) % 256 for f in response.frames)
    newest = BASE + (count - 1) * PERIOD
    assert stamp_to_ns(response.frames[6].header.stamp) == newest + 2 * PERIOD  # candidate 1, horizon 2

    response = driver.call(driver.reset, Trigger.Request())
    assert response.success
    diag = diag_when(driver, lambda d: d.get("cache_fill", "").startswith("0/"))
    assert int(diag["reset.service"]) == 1
    response = driver.call(driver.imagine, imagine_request(1, 2))
    assert not response.success and "not warm" in response.error

    before = len(driver.predictions)
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=BASE + 100 * PERIOD)
    driver.spin_until(lambda: len(driver.predictions) > before, 10)
    first = driver.predictions[before][0]
    assert first.state_reset
    assert all(stamp_to_ns(s) >= BASE + 100 * PERIOD for s in first.context_stamps)


@pytest.mark.parametrize("node_and_driver", [{"frame_period": 2 * PERIOD / 1e9}], indirect=True)
def test_camera_faster_than_the_model_is_decimated_to_its_frame_period(node_and_driver):
    proc, driver = node_and_driver
    count = 20
    stream(driver, count, 30.0, COPY_LAST_JOINTS, size=96, start_ns=BASE)
    diag = diag_when(
        driver, lambda d: int(d.get("count.images", 0)) == count and d.get("queue_length") == "0"
    )
    assert int(diag["count.decimated"]) == count // 2  # every second image is between model frames
    assert driver.spin_until(lambda: len(driver.predictions) > 0, 5), proc.output()
    msg = driver.predictions[-1][0]
    step = msg.time_step.sec * 10**9 + msg.time_step.nanosec
    assert abs(step - 2 * PERIOD) <= 1  # the model's time step, not the camera's
    context = [stamp_to_ns(s) for s in msg.context_stamps]
    assert all((s - BASE) % (2 * PERIOD) == 0 for s in context) and np.all(np.diff(context) == 2 * PERIOD)
    assert "frame_period=66.6667 ms" in proc.output()


def test_time_jump_and_gap_reset_state(node_and_driver):
    proc, driver = node_and_driver
    stream(driver, 10, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
    driver.spin_until(lambda: len(driver.predictions) > 0, 10)
    cases = [("jump_back", BASE - 30 * 10**9), ("gap", BASE + 60 * 10**9)]
    for reason, start in cases:

        def first_of_segment(s=start):
            return next(
                (m for m, _ in driver.predictions if s <= stamp_to_ns(m.header.stamp) < s + 5 * PERIOD), None
            )

        stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=start)
        assert driver.spin_until(lambda: first_of_segment() is not None, 10), proc.output()
        msg = first_of_segment()
        assert msg.state_reset and stamp_to_ns(msg.context_stamps[0]) >= start
        diag = diag_when(driver, lambda d, r=reason: d.get(f"reset.{r}") == "1")
        assert diag.get(f"reset.{reason}") == "1"
    assert "resetting the causal state" in proc.output()


def test_bad_input_is_rejected_counted_and_logged(node_and_driver):
    proc, driver = node_and_driver
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
    t = BASE + 10 * PERIOD

    unknown = make_image(t, encoding="rgb8")
    unknown.encoding = "weird42"
    short = make_image(t)
    short.data = bytes(100)
    empty = make_image(t)
    empty.height = empty.width = empty.step = 0
    empty.data = b""
    for msg in (unknown, short, empty):
        driver.image_pub.publish(msg)
    driver.image_pub.publish(make_image(BASE + 1))  # out of order (older than the newest)
    driver.joint_pub.publish(make_joint_state(t, ["x", "y"], [0.0, 0.0]))  # wrong names
    driver.joint_pub.publish(make_joint_state(t, COPY_LAST_JOINTS, [0.0] * 3))  # wrong count
    driver.joint_pub.publish(make_joint_state(t, COPY_LAST_JOINTS, [float("nan")] * 7))
    driver.joint_pub.publish(make_joint_state(t, COPY_LAST_JOINTS, [float("inf")] * 7))
    bad = driver.call(driver.imagine, imagine_request(2, 3, values=[0.0] * 5))
    assert not bad.success and "len(actions)=5" in bad.error
    bad = driver.call(driver.imagine, imagine_request(1, 2, names=["a"] * 7))
    assert not bad.success and "joint_names" in bad.error

    expected = {
        "image_encoding": 1,
        "image_data_length": 1,
        "image_empty": 1,
        "image_out_of_order": 1,
        "joint_names": 1,
        "joint_count": 1,
        "command_non_finite": 2,
        "imagine_shape": 1,
        "imagine_joint_names": 1,
    }

    def all_counted(d: dict[str, str]) -> bool:
        return all(d.get(f"rejected.{k}") == str(v) for k, v in expected.items())

    diag = diag_when(driver, all_counted)
    assert {k: int(diag.get(f"rejected.{k}", 0)) for k in expected} == expected, str(diag)
    before = len(driver.predictions)
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=t + PERIOD)
    assert driver.spin_until(lambda: len(driver.predictions) > before, 10), "node stopped predicting"
    log = proc.output()
    for reason in expected:
        assert f"rejected ({reason})" in log
    assert "weird42" in log and "NaN or inf" in log


def test_astra_ros_run_starts_from_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "astra_world_model:\n  ros__parameters:\n    model_path: engines/astra_small.onnx\n    horizon: 3\n"
        "    prediction_rate: 0\n    image_qos_reliability: reliable\n    image_qos_depth: 20\n"
    )
    overrides = {"model_path": "copy_last", "joint_names": COPY_LAST_JOINTS}
    with NodeProcess(overrides, module="astra_ros.ros.run", extra_args=["--params", str(params)]) as proc:
        driver = Driver()
        try:
            assert driver.wait_connected(proc, 30), proc.output()
            stream(driver, 6, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
            assert driver.spin_until(lambda: len(driver.predictions) > 0, 10), proc.output()
            assert len(driver.predictions[-1][0].frames) == 3  # from the YAML
        finally:
            driver.close()
    assert "backend=copy_last" in proc.output()  # the -p override won over the YAML


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"model_path": "{tmp}/missing.pt"}, "missing.pt"),
        ({"model_path": "{tmp}/corrupt.pt"}, "corrupt.pt"),
        ({"model_path": "{tmp}/wrong_kind.onnx"}, "wrong_kind.onnx"),
        ({"horizon": 0}, "horizon"),
        ({"backend": "cuda"}, "backend='cuda'"),
        ({"model_path": "copy_last", "min_history": 50}, "min_history=50"),
        ({"model_path": "copy_last", "command_type": "joystick"}, "command_type='joystick'"),
    ],
    ids=["missing", "corrupt", "wrong_kind", "horizon", "backend", "min_history", "command_type"],
)
def test_refuses_to_start_with_a_clear_error(tmp_path, params, needle):
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02not a checkpoint" * 10)
    (tmp_path / "wrong_kind.onnx").write_text("model_path: this is yaml, not onnx\n")
    params = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in params.items()}
    with NodeProcess(params) as proc:
        rc = proc.wait_exit(60)
        out = proc.output()
    assert rc == 2, out
    assert "cannot start" in out and needle in out
    assert "Traceback" not in out


def test_node_keeps_running_for_imagine_while_predicting(node_and_driver):
    """Imagine is served between predictions and never changes what the live stream predicts."""
    proc, driver = node_and_driver
    stream(driver, 10, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
    driver.spin_until(lambda: len(driver.predictions) > 0, 10)
    for k in range(3):
        response = driver.call(driver.imagine, imagine_request(4, 2))
        assert response.success
        stream(driver, 3, 30.0, COPY_LAST_JOINTS, start_ns=BASE + (10 + 3 * k) * PERIOD)
    driver.spin_until(lambda: stamp_to_ns(driver.predictions[-1][0].header.stamp) == BASE + 18 * PERIOD, 10)
    last = driver.predictions[-1][0]
    assert last.frames[0].data[0] == 2 and not last.state_reset  # the last image of the last burst


def test_every_service_call_is_answered_and_parameters_are_read_only(node_and_driver):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    proc, driver = node_and_driver
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
    driver.spin_until(lambda: len(driver.predictions) > 0, 10)
    big = driver.call(driver.imagine, imagine_request(1000, 2))
    assert not big.success and "num_candidates=1000; expected at most 32" in big.error and not big.frames

    every_call = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    reset = driver.node.create_client(Trigger, "astra_world_model/reset", qos_profile=every_call)
    assert driver.spin_until(reset.service_is_ready, 10)
    futures = [reset.call_async(Trigger.Request()) for _ in range(100)]
    driver.spin_until(lambda: all(f.done() for f in futures), 60)
    assert all(f.done() and f.result().success for f in futures)

    params = driver.node.create_client(SetParameters, "astra_world_model/set_parameters")
    assert driver.spin_until(params.service_is_ready, 10)
    for parameter, reason in ((Parameter("use_sim_time", value=True), "read at start"), (Parameter(
        "max_history", value=2), "read-only")):
        request = SetParameters.Request(parameters=[parameter.to_parameter_msg()])
        result = driver.call(params, request).results[0]
        assert not result.successful and reason in result.reason, result.reason
    diag = diag_when(driver, lambda d: d.get("reset.service") == "100")  # diagnostics keep coming
    assert diag["rejected.imagine_limits"] == "1"
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=BASE + 100 * PERIOD)
    assert driver.spin_until(lambda: len(driver.predictions[-1][0].frames) == 4 and stamp_to_ns(
        driver.predictions[-1][0].header.stamp) == BASE + 104 * PERIOD, 10), proc.output()


@pytest.mark.parametrize("node_and_driver", [{"use_sim_time": True}], indirect=True)
def test_a_clock_with_negative_seconds_does_not_kill_the_node(node_and_driver):
    from rosgraph_msgs.msg import Clock

    proc, driver = node_and_driver
    clock = driver.node.create_publisher(Clock, "/clock", 10)
    assert driver.spin_until(lambda: clock.get_subscription_count() > 0, 10)
    bad = Clock()
    bad.clock.sec = -1

    def failed_once_more() -> bool:  # /clock is best effort: the first one can be lost just after matching
        clock.publish(bad)
        return "callback failed" in proc.output()

    assert driver.spin_until(failed_once_more, 20), proc.output()
    good = Clock()
    good.clock.sec = 1_700_000_000
    clock.publish(good)
    assert driver.call(driver.reset, Trigger.Request()).success
    stream(driver, 5, 30.0, COPY_LAST_JOINTS, start_ns=BASE)
    assert driver.spin_until(lambda: len(driver.predictions) > 0, 10), proc.output()
    assert proc.proc.poll() is None
