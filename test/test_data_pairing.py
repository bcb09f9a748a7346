"""The action rule (astra_ros.data.pairing): zero-order hold, interval means, staleness, policies."""

from __future__ import annotations

import numpy as np
import pytest

from astra_ros.data.pairing import CommandBuffer, plan_means

MS = 1_000_000


def test_zero_order_hold_uses_newest_command_at_or_before_stamp():
    buf = CommandBuffer(2, staleness_ns=100 * MS, policy="zero", jump_ns=1000 * MS)
    buf.push(0, np.array([1, 1]))
    buf.push(50 * MS, np.array([2, 2]))
    assert buf.at(49 * MS).command.tolist() == [1, 1]
    assert buf.at(50 * MS).command.tolist() == [2, 2]
    paired = buf.at(120 * MS)
    assert paired.command.tolist() == [2, 2] and paired.fallback is None


@pytest.mark.parametrize("policy, expected", [("zero", [0.0, 0.0]), ("hold", [2.0, 2.0]), ("skip", None)])
def test_stale_command_policy(policy, expected):
    buf = CommandBuffer(2, staleness_ns=100 * MS, policy=policy, jump_ns=1000 * MS)
    buf.push(0, np.array([2, 2]))
    paired = buf.at(101 * MS)
    assert paired.fallback == "stale_command"
    assert (paired.command.tolist() if paired.command is not None else None) == expected


def test_missing_command_and_command_before_any_is_not_held():
    buf = CommandBuffer(3, staleness_ns=MS, policy="hold", jump_ns=1000 * MS)
    assert buf.at(5).fallback == "missing_command"
    assert buf.at(5).command.tolist() == [0, 0, 0]
    buf.push(10 * MS, np.ones(3))
    assert buf.at(5 * MS).command.tolist() == [0, 0, 0]  # the only command is in the future


def test_late_samples_are_inserted_at_their_stamp_and_a_jump_back_clears():
    buf = CommandBuffer(1, staleness_ns=MS, policy="hold", jump_ns=1000 * MS)
    buf.push(2000 * MS, np.ones(1))  # ahead of the others (a future stamp)
    buf.push(1500 * MS, np.full(1, 2.0))  # late, within jump_ns: at its place, nothing held up
    assert len(buf) == 2 and buf.newest_stamp == 2000 * MS
    assert buf.at(1700 * MS).command.tolist() == [2.0] and buf.at(2000 * MS).command.tolist() == [1.0]
    buf.push(0, np.full(1, 3.0))  # jump back: bag loop
    assert len(buf) == 1 and buf.at(0).command.tolist() == [3.0]
    with pytest.raises(ValueError, match="shape"):
        buf.push(1, np.ones(2))
    full = CommandBuffer(1, staleness_ns=MS, policy="hold", jump_ns=1000 * MS, capacity=3)
    for stamp in (10, 20, 30, 40, 5):  # the oldest go first, a late one older than all at once
        full.push(stamp * MS, np.full(1, float(stamp)))
    assert len(full) == 3 and [full.at(t * MS).command[0] for t in (20, 30, 40)] == [20.0, 30.0, 40.0]
    assert full.at(15 * MS).fallback == "missing_command"


def test_interval_mean_weights_each_command_by_its_time_in_force():
    buf = CommandBuffer(1, staleness_ns=100 * MS, policy="zero", jump_ns=1000 * MS)
    buf.push(0, np.array([1.0]))
    buf.push(30 * MS, np.array([4.0]))
    buf.push(60 * MS, np.array([-2.0]))
    paired = buf.over(10 * MS, 70 * MS)  # 20 ms of 1, 30 ms of 4, 10 ms of -2
    assert paired.fallback is None
    assert paired.command[0] == pytest.approx((20 * 1 + 30 * 4 - 10 * 2) / 60)
    # past the limit the command expires: -2 is in force 60..160 ms, zero after
    paired = buf.over(100 * MS, 200 * MS)
    assert paired.fallback == "stale_command" and paired.command[0] == pytest.approx(-2 * 0.6, abs=1e-6)
    assert CommandBuffer(1, 100 * MS, "skip").over(-10 * MS, 10 * MS).command is None  # nothing yet
    with pytest.raises(ValueError, match="ends before it starts"):
        buf.over(10, 5)
    with pytest.raises(ValueError, match=r"stale_command_policy='drop'; expected one of"):
        CommandBuffer(1, 100 * MS, "drop")


def test_plan_means():
    commands = np.array([[1.0], [2.0]], np.float32)
    np.testing.assert_allclose(plan_means([0, 100], commands, [0, 50, 100, 250]), [[1.0], [1.0], [2.0]])
    np.testing.assert_allclose(plan_means([0, 100], commands, [50, 150]), [[1.5]])
    assert plan_means([10, 100], commands, [5, 10]) is None
