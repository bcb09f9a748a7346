"""The simulator API: state round trip, reproducible stepping, segmentation, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from astra_ros.sim.carracing import CarRacingEnv
from astra_ros.sim.kuka import END_EFFECTOR_ID, JOINT_NAMES, KukaEnv


@pytest.fixture(scope="module")
def env() -> KukaEnv:
    sim = KukaEnv(size=48)
    yield sim
    sim.close()


COMMANDS = np.array([[0.8, -0.5, 0.6, 0.4, -1.0, 0.9, 1.2], [-0.6, 0.4, -0.3, 0.7, 0.5, -0.8, 0.2]])


def rollout(env: KukaEnv) -> list[np.ndarray]:
    frames = []
    for command in COMMANDS:
        env.step(command, env.frame_period / 2)
        env.step(0.5 * command, env.frame_period / 2)
        frames.append(env.render())
    return frames


def test_state_round_trip_and_restored_stepping_reproduces_frames(env: KukaEnv) -> None:
    env.reset(7)
    env.step(COMMANDS[0], env.frame_period)
    saved = env.state()
    assert saved.positions.shape == saved.velocities.shape == (7,) and saved.positions.dtype == np.float64
    np.testing.assert_allclose(saved.velocities, COMMANDS[0], atol=0.05)  # velocity control reached it
    first = rollout(env)
    after = env.state()
    env.reset(8)  # somewhere else entirely
    env.set_state(saved.positions, saved.velocities)
    again = env.state()
    np.testing.assert_array_equal(again.positions, saved.positions)
    np.testing.assert_array_equal(again.velocities, saved.velocities)
    second = rollout(env)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(env.state().positions, after.positions)
    assert not np.array_equal(first[0], first[1])  # the arm moved between the frames


def test_reset_is_seeded_and_inside_the_working_range(env: KukaEnv) -> None:
    a = env.reset(3).positions
    frame = env.render()
    b = env.reset(4).positions
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(env.reset(3).positions, a)
    np.testing.assert_array_equal(env.render(), frame)
    assert np.all(a >= env.lower) and np.all(a <= env.upper) and env.joint_names == JOINT_NAMES
    assert env.frame_period == pytest.approx(1 / 15)


def test_segmentation_ids_match_the_link_colours(env: KukaEnv) -> None:
    env.reset(3)
    seg, rgb = env.segmentation(), env.render()
    assert seg.shape == (48, 48) and seg.dtype == np.int32
    assert set(np.unique(seg)) <= set(range(-1, END_EFFECTOR_ID + 1)) and len(np.unique(seg)) >= 7
    assert (seg == -1).mean() > 0.5  # floor and sky
    # Each link's pixels are dominated by its colour: base dark, link 1 red, link 4 green, 6 blue.
    red = rgb[seg == 1].mean(axis=0)
    assert red[0] > 2 * red[1] and red[0] > 2 * red[2]
    green, blue = rgb[seg == 4].mean(axis=0), rgb[seg == 6].mean(axis=0)
    assert green[1] > 2 * green[0] and blue[2] > 2 * blue[0]
    ee = env.end_effector_position()
    env.step(np.full(7, 1.0), env.frame_period)
    assert ee.shape == (3,) and np.linalg.norm(env.end_effector_position() - ee) > 0.01


def test_bad_input_names_the_field(env: KukaEnv) -> None:
    with pytest.raises(ValueError, match=r"command has shape \(6,\)"):
        env.step(np.zeros(6), env.frame_period)
    with pytest.raises(ValueError, match="dt=0.01; expected a positive multiple"):
        env.step(np.zeros(7), 0.01)
    with pytest.raises(ValueError, match="velocities .*finite: False"):
        env.set_state(np.zeros(7), np.full(7, np.nan))


def test_carracing_has_the_same_shape() -> None:
    car = CarRacingEnv(size=32)
    try:
        car.reset(0)
        first = car.render()
        assert first.shape == (32, 32, 3) and first.dtype == np.uint8
        ended = car.step(np.array([1.0, 0.0]), car.frame_period)
        assert ended is False and car.frame_period == pytest.approx(0.06)
        with pytest.raises(ValueError, match="expected finite"):
            car.step(np.array([2.0, 0.0]), car.physics_period)
    finally:
        car.close()
