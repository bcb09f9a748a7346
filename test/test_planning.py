"""The reference planner (astra_ros.planning): costs, CEM and MPPI reaching goals with an exact
model (the toy world, then the KUKA simulator), warm start, bounds, and astra-plan-bench --quick."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from toy_world import ToyOracle, render

from astra_ros.planning.costs import edge_cost, pixel_mse
from astra_ros.planning.planner import Planner, PlannerConfig


def blur(image: np.ndarray, rounds: int = 4) -> np.ndarray:
    x = image.astype(np.float64)
    for _ in range(rounds):
        x = (np.roll(x, 1, 0) + np.roll(x, -1, 0) + np.roll(x, 1, 1) + np.roll(x, -1, 1) + x) / 5
    return np.round(x).astype(np.uint8)


def test_the_edge_cost_prefers_a_sharp_near_miss_to_a_blur_where_pixel_mse_prefers_the_blur():
    goal = np.zeros((32, 32, 3), np.uint8)
    goal[10:20, 12:22] = (200, 50, 50)
    frames = np.stack([np.roll(goal, 1, axis=1), blur(goal)])[:, None]  # (2, 1, S, S, 3)
    mse, edge = pixel_mse(frames, goal), edge_cost(frames, goal)
    assert mse[1] < mse[0] and edge[0] < edge[1]
    assert pixel_mse(goal[None, None], goal)[0] == edge_cost(goal[None, None], goal)[0] == 0.0
    later = np.stack([goal, np.roll(goal, 3, axis=1)])[None]  # the goal first, then off: later counts more
    sooner = np.stack([np.roll(goal, 3, axis=1), goal])[None]
    assert pixel_mse(sooner, goal)[0] < pixel_mse(later, goal)[0]
    with pytest.raises(ValueError, match="uint8"):
        pixel_mse(frames.astype(np.float32), goal)


def closed_loop(
    planner: Planner, oracle: ToyOracle, start: np.ndarray, goal: np.ndarray, frames: int
) -> np.ndarray:
    """Run ``frames`` frames toward the blob at ``goal``, executing 2 commands per plan."""
    position = start.astype(np.float64)
    oracle.know(render(position), position)
    oracle.ingest(render(position), np.zeros(2), "twist")
    for _ in range(frames // 2):
        plan = planner.plan(render(goal))
        assert (
            plan.actions.shape == (planner.config.horizon, 2)
            and plan.predicted.shape[0] == planner.config.horizon
        )
        assert np.all(plan.actions >= planner.low) and np.all(plan.actions <= planner.high)
        for command in plan.actions[:2]:
            position = position + command
            oracle.know(render(position), position)
            oracle.ingest(render(position), command, "twist")
        planner.advance(2)
    return position


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_the_planner_reaches_a_goal_with_an_exact_model(method):
    oracle = ToyOracle()
    config = PlannerConfig(method=method, candidates=48, horizon=4, iterations=4, std=0.6, seed=1)
    planner = Planner(oracle, "twist", -np.ones(2), np.ones(2), pixel_mse, config)
    start, goal = np.array([12.0, 14.0]), np.array([17.0, 11.0])
    reached = closed_loop(planner, oracle, start, goal, frames=10)
    assert np.linalg.norm(reached - goal) < 0.5 < np.linalg.norm(start - goal) / 10


def test_warm_start_shifts_the_previous_plan_and_user_costs_and_smoothness_count():
    oracle = ToyOracle()
    config = PlannerConfig(method="cem", candidates=32, horizon=4, iterations=3, seed=0, smoothness=1.0)

    def leftward(commands: np.ndarray) -> np.ndarray:  # the user pays for any rightward command
        return 10.0 * np.maximum(commands[..., 0], 0).sum(axis=1)

    planner = Planner(oracle, "twist", -np.ones(2), np.ones(2), pixel_mse, config, command_cost=leftward)
    position = np.array([16.0, 16.0])
    oracle.know(render(position), position)
    oracle.ingest(render(position), np.zeros(2), "twist")
    plan = planner.plan(render(position + [4.0, 0.0]))  # the goal is to the right, the user says no
    assert np.all(plan.actions[:, 0] <= 0.0)
    planner.advance(1)
    np.testing.assert_array_equal(planner._mean[:3], plan.actions[1:])
    np.testing.assert_array_equal(planner._mean[3], plan.actions[3])
    with pytest.raises(ValueError, match="method="):
        PlannerConfig(method="greedy")
    with pytest.raises(ValueError, match="bounds"):
        Planner(oracle, "twist", np.ones(2), np.ones(2), pixel_mse)


def test_the_planner_reaches_a_kuka_goal_with_the_simulator_as_model():
    from astra_ros.planning.oracle import SimulatorModel
    from astra_ros.sim.kuka import KukaEnv

    env, model = KukaEnv(32), SimulatorModel(32)
    try:
        start = env.reset(3)
        push = np.array([0.0, 1.2, 0.0, -1.2, 0.0, 0.0, 0.0])
        for _ in range(6):
            env.step(push, env.frame_period)
        goal, goal_ee = env.render(), env.end_effector_position()
        env.set_state(start.positions, start.velocities)
        stay = np.linalg.norm(env.end_effector_position() - goal_ee)
        config = PlannerConfig(method="cem", candidates=16, horizon=3, iterations=2, elites=4, seed=0)
        bound = np.full(7, 1.5)
        planner = Planner(model, "joint_velocity", -bound, bound, pixel_mse, config)
        for _ in range(3):
            model.sync(env.state())
            plan = planner.plan(goal)
            for command in plan.actions[:2]:
                env.step(command, env.frame_period)
            planner.advance(2)
        reached = np.linalg.norm(env.end_effector_position() - goal_ee)
        assert reached < 0.5 * stay, (reached, stay)
        model.reset()
        with pytest.raises(ValueError, match="sync"):
            model.predict(np.zeros((1, 1, 7)), "joint_velocity")
    finally:
        env.close()
        model.close()


def test_astra_plan_bench_quick(tmp_path):
    from astra_ros.planning.bench import main, planning_gain

    out = tmp_path / "bench"
    quick = ["--out", str(out), "--quick", "--no-progress"]
    assert main(["--model", "copy_last", "--planners", "stay,random,oracle", *quick]) == 0
    report = json.loads((out / "plan_bench.json").read_text())
    assert set(report["planners"]) == {"stay", "random", "oracle"} and report["goals"] == 2
    assert (
        report["planners"]["oracle"]["plan_steps"] == 2 * 2
        and report["planners"]["oracle"]["plan_seconds_p50"] > 0
    )
    stay, oracle = (report["planners"][n] for n in ("stay", "oracle"))
    assert stay["closed_fraction_mean"] == pytest.approx(0.0, abs=0.1)  # zero commands: nearly still
    assert oracle["closed_fraction_mean"] > stay["closed_fraction_mean"]
    low, high = oracle["closed_fraction_ci95"]
    assert low <= oracle["closed_fraction_mean"] <= high
    assert report["oracle_check"]["target"] == 0.6 and (out / "plan_bench.png").stat().st_size > 0
    # the model alone, with the oracle, stay and random of the same benchmark reused
    model_out = tmp_path / "model"
    reuse = ["--reuse", str(out / "plan_bench.json")]
    args = [
        "--model",
        "copy_last",
        "--planners",
        "model",
        "--out",
        str(model_out),
        "--quick",
        "--no-progress",
    ]
    assert main([*args, *reuse]) == 0
    both = json.loads((model_out / "plan_bench.json").read_text())
    assert set(both["planners"]) == {"model", "stay", "random", "oracle"}
    assert both["planners"]["oracle"] == oracle and both["planners"]["model"]["plan_steps"] == 2 * 2
    assert isinstance(both["planning_gain"]["gain"], float)
    assert main([*args, *reuse, "--seed", "7"]) == 2  # another benchmark's goals cannot be reused

    gain = planning_gain({"model": np.array([0.2, 0.4]), "oracle": np.array([0.6, 0.6])})
    assert gain["gain"] == pytest.approx(0.5) and gain["ci95"][0] <= 0.5 <= gain["ci95"][1]
    assert (
        planning_gain({"model": np.array([0.2]), "oracle": np.array([-0.1])}) is None
    )  # the oracle closes nothing
    assert main(["--model", "copy_last", "--out", str(out), "--planners", "model,teleport"]) == 2


def test_the_closed_loop_holds_each_planned_command_for_its_frame_period_then_stops():
    from astra_ros.planning.closed_loop import ClosedLoop

    oracle = ToyOracle()
    planner = Planner(
        oracle, "twist", -np.ones(2), np.ones(2), pixel_mse, PlannerConfig(candidates=8, horizon=3)
    )
    loop = ClosedLoop(planner, frame_period_ns=100, min_history=1)
    np.testing.assert_array_equal(loop.command_at(0), [0.0, 0.0])  # no plan yet: stand still
    position = np.array([16.0, 16.0])
    oracle.know(render(position), position)
    loop.observe(render(position), np.zeros(2))
    plan = loop.replan(render(position + 2.0), stamp_ns=1000)
    for t, index in ((1000, 0), (1099, 0), (1100, 1), (1250, 2)):
        np.testing.assert_array_equal(loop.command_at(t), plan.actions[index])
    np.testing.assert_array_equal(loop.command_at(1300), [0.0, 0.0])  # past the horizon: stop
    before = planner._mean.copy()
    loop.replan(render(position + 2.0), stamp_ns=1200)  # two periods later: warm start shifted by 2
    assert planner._calls == 2 and not np.array_equal(before, planner._mean)
    loop.new_goal()
    assert loop.current is None


def test_the_planner_node_publishes_joint_commands_and_diagnostics():
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, JointState

    from astra_ros.ros.conversions import rgb_to_image
    from astra_ros.ros.planner_node import PlannerNode

    rclpy.init()
    try:
        joints = [f"j{i}" for i in range(7)]
        overrides = [
            Parameter("model_path", value="copy_last"),
            Parameter("joint_names", value=joints),
            Parameter("candidates", value=4),
            Parameter("horizon", value=2),
        ]
        node = PlannerNode(parameter_overrides=overrides)
        peer = rclpy.create_node("planner_test_peer")
        commands, diagnostics = [], []
        peer.create_subscription(JointState, "joint_commands", commands.append, 10)
        peer.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        image_pub = peer.create_publisher(Image, "image", 10)
        goal_pub = peer.create_publisher(Image, "goal_image", 1)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(peer)
        frame = np.zeros((64, 64, 3), np.uint8)
        deadline = time.monotonic() + 60.0  # generous: the machine may be busy
        while min(image_pub.get_subscription_count(), goal_pub.get_subscription_count()) == 0:
            assert time.monotonic() < deadline, "the planner node never subscribed"
            executor.spin_once(timeout_sec=0.05)
        goal_pub.publish(rgb_to_image(frame + 50, 1, "camera"))
        bad = rgb_to_image(frame, 2, "camera")
        bad.encoding = "yuv999"
        image_pub.publish(bad)

        def planned() -> bool:
            return any(v.key == "count.plans" for d in diagnostics for s in d.status for v in s.values)

        deadline, k = time.monotonic() + 60.0, 0
        while not (commands and planned()) and time.monotonic() < deadline:
            image_pub.publish(rgb_to_image(frame, 1_000 + k, "camera"))
            executor.spin_once(timeout_sec=0.05)
            k += 1
        assert commands and commands[-1].name == joints and len(commands[-1].velocity) == 7
        values = {v.key: v.value for d in diagnostics for s in d.status for v in s.values}
        assert int(values["count.plans"]) >= 1 and float(values["plan_p50_ms"]) > 0
        assert values["count.rejected.camera_image_encoding"] == "1"
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
    finally:
        rclpy.try_shutdown()
