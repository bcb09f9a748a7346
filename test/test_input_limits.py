"""Bounds on untrusted input (astra_ros/ros/input_limits.py) and the conversions that apply them."""

from __future__ import annotations

import pytest

from astra_ros.ros.input_limits import (
    INT32_MAX_NS,
    MAX_FRAME_ID_LENGTH,
    InputError,
    JumpConfirmation,
    ThrottledLog,
    check_frame_id,
    check_names,
    check_stamp_ns,
    truncate_for_log,
)
from astra_ros.runtime.timing import Timeline

S = 1_000_000_000
MS = 1_000_000


def reason_of(fn, *args) -> str:
    with pytest.raises(InputError) as err:
        fn(*args)
    return err.value.reason


def test_truncate_for_log_bounds_any_text():
    assert truncate_for_log("short", 10) == "short"
    cut = truncate_for_log("x" * 339_000, 300)
    assert len(cut) <= 300 and cut.endswith("more characters]") and "338" in cut


def test_throttled_log_lines_pass_once_per_period_per_key():
    lines, now, period = [], [100.0], [10.0]

    class Logger:
        def info(self, text):
            lines.append(("info", text))

        def warning(self, text):
            lines.append(("warning", text))

        def error(self, text):
            lines.append(("error", text))

    log = ThrottledLog(Logger(), lambda: period[0], clock=lambda: now[0])
    for _ in range(3):
        log("warning", "bad image", True, "rejected.image_encoding")
        log("warning", "bad command", True, "rejected.command_magnitude")
        log("info", "always", False)
    assert lines == [
        ("warning", "bad image"),
        ("warning", "bad command"),
        ("info", "always"),
        ("info", "always"),
        ("info", "always"),
    ]
    now[0] += 9.9
    log("warning", "bad image", True, "rejected.image_encoding")
    period[0] = 5.0  # a live log_throttle_period change applies to the next line
    log("error", "worker failed", True)
    log("error", "worker failed", True)  # the key defaults to the level
    log("warning", "bad command", True, "rejected.command_magnitude")
    assert lines[5:] == [("error", "worker failed"), ("warning", "bad command")]


def test_stamps_must_fit_int32_with_the_reserve_and_not_lead_the_clock():
    now = 1_700_000_000 * S
    assert check_stamp_ns(now, "image", now, S // 2, 65 * S) == now
    assert reason_of(check_stamp_ns, -1, "image", now, S // 2) == "image_stamp_range"
    near = (2**31 - 10) * S  # predicted stamps 65 s later would wrap to -2^31
    assert reason_of(check_stamp_ns, near, "image", near, S // 2, 65 * S) == "image_stamp_range"
    assert check_stamp_ns(INT32_MAX_NS - 65 * S, "image", 0, 0, 65 * S) == INT32_MAX_NS - 65 * S
    assert reason_of(check_stamp_ns, now + 900 * MS, "image", now, S // 2) == "image_stamp_future"
    assert check_stamp_ns(now + 400 * MS, "image", now, S // 2) == now + 400 * MS
    assert check_stamp_ns(now, "command", 0, 0) == now  # sim time before the first /clock: not checked
    assert reason_of(check_stamp_ns, now + S, "command", now, 0) == "command_stamp_future"


def test_frame_id_and_joint_names_are_bounded():
    assert check_frame_id("camera", "image") == "camera"
    with pytest.raises(InputError, match=f"262144 characters.*expected at most {MAX_FRAME_ID_LENGTH}") as err:
        check_frame_id("f" * 256 * 1024, "image")
    assert err.value.reason == "image_frame_id" and len(str(err.value)) < 300
    assert reason_of(check_names, [f"j{i}" for i in range(5000)], "JointState") == "joint_names_limit"
    assert reason_of(check_names, ["a", "n" * 100_000], "JointState") == "joint_names_limit"


def gate(stamps: list[int], max_gap_ns: int = S) -> list[str]:
    """The node's order: the confirmation gate, then the timeline; verdicts per stamp."""
    timeline, jumps, out = Timeline(max_gap_ns), JumpConfirmation(3), []
    for stamp in stamps:
        if not jumps.accept(stamp, timeline.last_ns, timeline.max_gap_ns):
            out.append("unconfirmed")
        else:
            out.append(timeline.check(stamp))
    return out


def test_a_jump_is_taken_after_three_frames_on_the_new_timeline():
    period = 66 * MS
    loop = [k * period for k in range(3)] + [-100 * S + k * period for k in range(4)]
    assert gate(loop) == ["first", "ok", "ok", "unconfirmed", "unconfirmed", "jump_back", "ok"]
    resumed = [0, period, 5 * S, 5 * S + period, 5 * S + 2 * period]
    assert gate(resumed) == ["first", "ok", "unconfirmed", "unconfirmed", "gap"]


def test_a_second_camera_with_an_old_clock_never_resets_the_state():
    period = 66 * MS
    stamps = []
    for k in range(50):
        stamps += [100 * S + k * period, k * period]  # the real camera, then the old clock
    verdicts = gate(stamps)
    assert set(verdicts[0::2]) <= {"first", "ok"} and set(verdicts[1::2]) == {"unconfirmed"}
    # two old-clock frames in a row are not yet enough
    assert gate([100 * S, 0, period, 100 * S + period]) == ["first", "unconfirmed", "unconfirmed", "ok"]


def test_sample_timelines_confirm_only_a_jump_back():
    """Commands and states (``backward_only``): a stream that pauses resumes at once, a sample far
    back is rejected until three in a row confirm the new timeline (a bag loop)."""
    jumps, newest = JumpConfirmation(3, backward_only=True), 10 * S
    assert jumps.accept(newest + 60 * S, newest, S)  # a pause of a minute: no jump
    assert [jumps.accept(newest - 10 * S + k * MS, newest, S) for k in range(3)] == [False, False, True]
    assert jumps.accept(newest - S // 2, newest, S)  # late, within max_image_gap: no jump


def test_joint_state_and_twist_magnitude_limits():
    from geometry_msgs.msg import Twist

    from astra_ros.ros.conversions import joint_state_to_command, twist_to_command

    names = ["a", "b"]
    assert joint_state_to_command(names, [1.0, -10.0], names, 10.0).tolist() == [1.0, -10.0]
    for velocity, reason in (
        (1e30, "command_magnitude"),
        (1e4, "command_magnitude"),
        (1e39, "command_magnitude"),
    ):
        assert reason_of(joint_state_to_command, names, [0.0, velocity], names, 10.0) == reason
    assert reason_of(joint_state_to_command, names, [0.0, float("nan")], names, 10.0) == "command_non_finite"
    twist = Twist()
    twist.linear.x = 1e30
    with pytest.raises(InputError, match="max_command_magnitude=10") as err:
        twist_to_command(twist, 10.0)
    assert err.value.reason == "command_magnitude"
    many = [f"wrong_{i}" for i in range(5000)]
    with pytest.raises(InputError) as err:
        joint_state_to_command(many, [0.0] * 5000, names, 10.0)
    assert err.value.reason == "joint_names_limit" and len(str(err.value)) < 300


def test_imagine_with_huge_actions_is_refused_with_the_reason():
    from astra_ros.ros.conversions import imagine_actions
    from astra_ros.srv import Imagine

    request = Imagine.Request(
        modality="twist", num_candidates=2, horizon=2, action_dim=6, actions=[1e30] * 24
    )
    with pytest.raises(InputError, match="max_command_magnitude") as err:
        imagine_actions(request, ("twist",), (), 64, 10.0)
    assert err.value.reason == "imagine_magnitude"
    request.actions = [0.5] * 24
    assert imagine_actions(request, ("twist",), (), 64, 10.0).shape == (2, 2, 6)


def test_out_of_range_stamps_never_reach_the_wire():
    from astra_ros.ros.conversions import ns_to_stamp, stamp_to_ns

    assert stamp_to_ns(ns_to_stamp(INT32_MAX_NS)) == INT32_MAX_NS
    for ns in (INT32_MAX_NS + 1, -1):
        with pytest.raises(ValueError, match="int32 seconds"):
            ns_to_stamp(ns)


def test_image_to_model_checks_stamp_frame_id_and_size_before_pixels():
    from harness import make_image

    from astra_ros.ros.conversions import image_to_model

    now = 1_700_000_000 * S
    stamp, rgb = image_to_model(make_image(now, 32, 7), 16, 2**23, now, S // 2, 65 * S)
    assert stamp == now and rgb.shape == (16, 16, 3) and int(rgb[0, 0, 0]) == 7
    huge = make_image(now + 5 * S, 32)
    huge.header.frame_id = "f" * 300
    assert reason_of(image_to_model, huge, 16, 2**23, now, S // 2, 0) == "image_stamp_future"
    huge.header.stamp = make_image(now).header.stamp
    assert reason_of(image_to_model, huge, 16, 2**23, now, S // 2, 0) == "image_frame_id"
    assert reason_of(image_to_model, make_image(now, 32), 16, 1000, now, S // 2, 0) == "image_too_large"
    odd = make_image(now, 32)
    odd.encoding, odd.width, odd.step, odd.data = "yuv422", 5, 10, bytes(320)
    assert reason_of(image_to_model, odd, 16, 2**23, now, S // 2, 0) == "image_odd_size"
