"""``astra-plan-bench``: closed-loop goal reaching in the KUKA simulator, planning with a world model.

Goals: held-out episodes driven by the recorder's command process (``record_sim``: 30 Hz commands,
15 Hz frames, drawn from ``--seed``, not the training seeds); the first ``--context`` frames are
the history, and the goal is the true frame ``--goal-frames`` frames after the last of them (by
default the planning horizon: every goal is reachable within one plan). Episodes where the end
effector moves less than ``--min-motion`` metres from the start to the goal are skipped (a goal the
arm already sits at measures nothing).

Each planner starts from the true state at the last context frame and runs ``--frames`` frames in
closed loop: plan ``--horizon`` commands (one per frame, held for a frame period), execute
``--execute`` of them in the simulator, feed the new frames to its model, replan (warm start). It
sees what a real robot has: the goal image, the camera and the joint states; the cost compares
predicted frames with the goal image only (``--cost``, default ``multiscale``: it still has a
gradient when the arm does not overlap the goal).

- ``model``: ``Planner`` (CEM or MPPI) over the world model given with ``--model``.
- ``oracle``: the same planner with the simulator itself as the model (``SimulatorModel``): the
  check that planning works with a perfect model. It must close at least ``ORACLE_TARGET`` of the
  start-to-goal distance on average, or the benchmark cannot tell a good model from a bad one.
- ``stay``: zero commands.  ``random``: one random draw from the planner's sampling distribution.

Reported per planner: the closed fraction ``(start - end) / start`` of the 3-D end-effector
distance to the goal (mean over goals, with a 95 % bootstrap interval over goals), the share of goals
ended within ``--success-radius``, mean and median distance, pixel MSE of the final frame to the goal
frame, plan time per replanning step (p50). The planning gain is the model's mean closed fraction
over the oracle's (1: as good as the simulator, 0: no better than staying still), with a paired
bootstrap interval. Writes ``OUT/plan_bench.json`` and ``OUT/plan_bench.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astra_ros.data.record_sim import KUKA_COMMAND_PERIOD, KUKA_VMAX, kuka_command, kuka_episode
from astra_ros.evaluation.metrics import mse
from astra_ros.planning.costs import named_cost
from astra_ros.planning.oracle import SimulatorModel
from astra_ros.planning.planner import METHODS, Planner, PlannerConfig, default_elites
from astra_ros.runtime.base import WorldModelBackend
from astra_ros.sim.kuka import KukaEnv, SimState

PLANNERS = ("model", "stay", "random", "oracle")
MODALITY = "joint_velocity"
ORACLE_TARGET = 0.6  # the oracle must close this share of the distance for the benchmark to measure
BOOTSTRAP = 2000  # resamples of the goals for the intervals
QUICK = dict(goals=2, candidates=6, horizon=3, execute=2, frames=4, goal_frames=3, context=2, iterations=1)


@dataclass
class Goal:
    frames: np.ndarray  # (context, S, S, 3) history, the last one at the start state
    past: np.ndarray  # (context - 1, 7) per-frame actions between the history frames
    positions: np.ndarray  # (context, 7) joint positions at the history frames
    start: SimState
    goal_frame: np.ndarray  # (S, S, 3)
    goal_ee: np.ndarray  # (3,)
    start_ee: np.ndarray  # (3,)


def make_goals(
    env: KukaEnv, count: int, context: int, frames: int, min_motion: float, seed: int
) -> list[Goal]:
    """``count`` held-out goals from the recorder's command process (see the module docstring)."""
    rng = np.random.default_rng(seed)
    per_frame = round(env.frame_period / KUKA_COMMAND_PERIOD)
    goals: list[Goal] = []
    for _ in range(count * 50):
        if len(goals) == count:
            break
        proc = kuka_episode(env, rng)
        images, actions, states, ee = [env.render()], [], [env.state()], [env.end_effector_position()]
        for _ in range(context - 1 + frames):
            commands = []
            for _ in range(per_frame):
                commands.append(kuka_command(env, proc))
                env.step(commands[-1], KUKA_COMMAND_PERIOD)
            actions.append(np.mean(commands, axis=0))  # the per-frame action: the interval's mean command
            images.append(env.render())
            states.append(env.state())
            ee.append(env.end_effector_position())
        start, end = context - 1, context - 1 + frames
        if np.linalg.norm(ee[end] - ee[start]) < min_motion:
            continue
        goals.append(
            Goal(
                np.stack(images[:context]),
                np.asarray(actions[: context - 1], np.float32),
                np.stack([s.positions for s in states[:context]]),
                states[start],
                images[end],
                ee[end],
                ee[start],
            )
        )
    if len(goals) < count:
        raise RuntimeError(
            f"found {len(goals)} goals with motion >= {min_motion} m; expected --goals {count}"
        )
    return goals


@dataclass
class Episode:
    start_distance: float
    ee_distance: float
    pixel_mse: float
    plan_seconds: list[float]
    predicted_cost: list[float]

    @property
    def closed(self) -> float:
        """The share of the start-to-goal distance this run closed (negative: it moved away)."""
        return (self.start_distance - self.ee_distance) / self.start_distance


def run_episode(
    env: KukaEnv,
    goal: Goal,
    name: str,
    planner: Planner | None,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> Episode:
    """One closed-loop run of planner ``name`` toward ``goal`` (``planner`` None for stay/random)."""
    env.set_state(goal.start.positions, goal.start.velocities)
    model = planner.model if planner is not None else None
    if model is not None:
        model.reset()
        for i, frame in enumerate(goal.frames):
            command = goal.past[i - 1] if i else np.zeros(len(KUKA_VMAX), np.float32)
            model.ingest(frame, command, MODALITY, goal.positions[i] if model.info.state_dim else None)
        if isinstance(model, SimulatorModel):
            model.sync(env.state())
        planner.reset(previous=goal.past[-1] if len(goal.past) else None)
    seconds, costs = [], []
    done = 0
    while done < args.frames:
        if planner is not None:
            plan = planner.plan(goal.goal_frame)
            commands = plan.actions
            seconds.append(plan.seconds)
            costs.append(plan.cost)
        elif name == "stay":
            commands = np.zeros((args.horizon, len(KUKA_VMAX)), np.float32)
        else:
            noise = rng.standard_normal((args.horizon, len(KUKA_VMAX))) * args.std
            commands = np.clip(noise * KUKA_VMAX, -KUKA_VMAX, KUKA_VMAX).astype(np.float32)
        run = min(args.execute, args.frames - done)
        for command in commands[:run]:
            env.step(command, env.frame_period)
            if model is not None:
                model.ingest(
                    env.render(), command, MODALITY, env.state().positions if model.info.state_dim else None
                )
        if isinstance(model, SimulatorModel):
            model.sync(env.state())
        if planner is not None:
            planner.advance(run)
        done += run
    distance = float(np.linalg.norm(env.end_effector_position() - goal.goal_ee))
    start = float(np.linalg.norm(goal.start_ee - goal.goal_ee))
    return Episode(start, distance, mse(env.render(), goal.goal_frame), seconds, costs)


def bootstrap_interval(values: np.ndarray, seed: int = 0) -> list[float]:
    """95 % percentile interval of the mean of ``values`` over goals resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(episodes: list[Episode], success_radius: float) -> dict[str, Any]:
    closed = np.array([e.closed for e in episodes])
    dist = np.array([e.ee_distance for e in episodes])
    pix = np.array([e.pixel_mse for e in episodes])
    times = [s for e in episodes for s in e.plan_seconds]
    return {
        "closed_fraction_mean": float(closed.mean()),
        "closed_fraction_ci95": bootstrap_interval(closed),
        "success_share": float(np.mean(dist <= success_radius)),
        "ee_distance_mean_m": float(dist.mean()),
        "ee_distance_median_m": float(np.median(dist)),
        "pixel_mse_mean": float(pix.mean()),
        "plan_seconds_p50": float(np.percentile(times, 50)) if times else None,
        "plan_steps": len(times),
        "per_goal_closed_fraction": closed.round(4).tolist(),
        "per_goal_ee_distance_m": dist.round(5).tolist(),
    }


def planning_gain(closed: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The model's mean closed fraction over the oracle's (per-goal closed fractions of the same
    goals), with a paired bootstrap interval over goals; None without both, or when the oracle
    closes nothing (then the ratio measures nothing)."""
    if "model" not in closed or "oracle" not in closed:
        return None
    model, oracle = closed["model"], closed["oracle"]
    if oracle.mean() <= 0:
        return None
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(model), (BOOTSTRAP, len(model)))
    ratios = model[picks].mean(1) / np.maximum(oracle[picks].mean(1), 1e-9)
    return {
        "gain": float(model.mean() / oracle.mean()),
        "ci95": [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))],
    }


BENCHMARK_SETTINGS = (
    "goals", "candidates", "horizon", "execute", "goal_frames", "frames", "context", "method",
    "iterations", "knots", "cost", "std", "smoothness", "min_motion", "success_radius", "seed",
)  # fmt: skip
"""The settings that define the goals and the planners; ``--reuse`` needs them equal."""


def reused_planners(path: str, args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """The planners of an earlier report with the same benchmark settings that this run does not run
    (the oracle takes most of a run's time and does not depend on the model)."""
    report = json.loads(Path(path).read_text())
    differ = {
        k: [report["settings"].get(k), getattr(args, k)]
        for k in BENCHMARK_SETTINGS
        if report["settings"].get(k) != getattr(args, k)
    }
    if differ:
        raise ValueError(f"--reuse {path}: settings {differ} (theirs, this run's); expected equal ones")
    return {name: r for name, r in report["planners"].items() if name not in names}


def plot(results: dict[str, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    data = [results[n]["per_goal_closed_fraction"] for n in names]
    ax.boxplot(data, showmeans=True)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(1, len(data) + 1), names)
    ax.set_ylabel("share of the start-to-goal distance closed")
    ax.set_title("astra-plan-bench: closed-loop goal reaching (KUKA)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astra-plan-bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="world model (.pt, .onnx, engine, or 'copy_last')")
    p.add_argument("--backend", default="auto", help="auto, torch, onnxruntime or tensorrt")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--planners", default=",".join(PLANNERS), help=f"comma-separated subset of {PLANNERS}")
    p.add_argument("--goals", type=int, default=30)
    p.add_argument("--candidates", type=int, default=64)
    p.add_argument("--horizon", type=int, default=8, help="frames planned per step")
    p.add_argument("--execute", type=int, default=2, help="commands executed before replanning")
    p.add_argument("--goal-frames", type=int, default=8, help="frames from the start to the goal")
    p.add_argument("--frames", type=int, default=12, help="frames run in closed loop")
    p.add_argument("--context", type=int, default=4, help="history frames before the start")
    p.add_argument("--method", default="cem", choices=METHODS)
    p.add_argument("--iterations", type=int, default=4, help="sampling iterations per planning step")
    p.add_argument("--knots", type=int, default=4, help="command segments per plan (0: one per frame)")
    p.add_argument("--cost", default="multiscale", help="multiscale, mse or edge (planning/costs.py)")
    p.add_argument("--std", type=float, default=0.5, help="sampling std as a fraction of the bounds")
    p.add_argument("--smoothness", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--min-motion", type=float, default=0.15, help="metres the EE must move to its goal")
    p.add_argument("--success-radius", type=float, default=0.05, help="metres: a goal counts as reached")
    p.add_argument("--seed", type=int, default=90_000, help="held-out goal seed (not a training seed)")
    p.add_argument(
        "--reuse", default=None, help="plan_bench.json of the same benchmark: take its other planners from it"
    )
    p.add_argument("--quick", action="store_true", help=f"a smoke-test setting: {QUICK}")
    p.add_argument("--no-progress", action="store_true")
    return p


def open_model(args: argparse.Namespace) -> WorldModelBackend:
    from astra_ros.evaluation.evaluate import open_backend

    backend = open_backend(args.model, args.backend, 64, steps=args.steps)
    names = backend.info.joint_names
    if names and tuple(names) != tuple(KukaEnv.joint_names):
        raise ValueError(
            f"--model joint_names {list(names)}; expected the KUKA joints {list(KukaEnv.joint_names)}"
        )
    if MODALITY not in backend.info.modalities:
        raise ValueError(f"--model modalities {backend.info.modalities}; expected {MODALITY!r}")
    return backend


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    names = [n for n in args.planners.split(",") if n]
    unknown = sorted(set(names) - set(PLANNERS))
    if unknown or not names:
        raise ValueError(f"--planners {args.planners!r}; expected a comma-separated subset of {PLANNERS}")
    if not 1 <= args.execute <= args.horizon or min(args.context, args.frames, args.goal_frames) < 1:
        raise ValueError(
            f"--execute {args.execute}, --horizon {args.horizon}, --context {args.context}, --frames "
            f"{args.frames}, --goal-frames {args.goal_frames}; expected 1 <= execute <= horizon and "
            "context, frames, goal-frames >= 1"
        )
    reused = reused_planners(args.reuse, args, names) if args.reuse else {}
    model = open_model(args) if "model" in names else None
    size = model.info.image_size if model is not None else 64
    env = KukaEnv(size)
    oracle = SimulatorModel(size) if "oracle" in names else None
    config = PlannerConfig(
        method=args.method,
        candidates=args.candidates,
        horizon=args.horizon,
        iterations=args.iterations,
        elites=default_elites(args.candidates),
        std=args.std,
        smoothness=args.smoothness,
        knots=min(args.knots, args.horizon),
        steps=args.steps,
        seed=args.seed,
    )
    cost = named_cost(args.cost)
    planners = {
        "model": Planner(model, MODALITY, -KUKA_VMAX, KUKA_VMAX, cost, config) if model is not None else None,
        "oracle": Planner(oracle, MODALITY, -KUKA_VMAX, KUKA_VMAX, cost, config)
        if oracle is not None
        else None,
    }
    try:
        goals = make_goals(env, args.goals, args.context, args.goal_frames, args.min_motion, args.seed)
        episodes: dict[str, list[Episode]] = {n: [] for n in names}
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(
            total=len(goals) * len(names), desc="astra-plan-bench", unit="run", disable=args.no_progress
        )
        for g, goal in enumerate(goals):
            for name in names:
                rng = np.random.default_rng((args.seed, g))
                episodes[name].append(run_episode(env, goal, name, planners.get(name), args, rng))
                bar.update(1)
            # rewritten after every goal, so a long run that is stopped still leaves its results
            report = write_report(args, model, config, goals[: g + 1], episodes, reused, out)
        bar.close()
    finally:
        env.close()
        if oracle is not None:
            oracle.close()
    plot(report["planners"], out / "plan_bench.png")
    return report


def write_report(
    args: argparse.Namespace,
    model: WorldModelBackend | None,
    config: PlannerConfig,
    goals: list[Goal],
    episodes: dict[str, list[Episode]],
    reused: dict[str, dict[str, Any]],
    out: Path,
) -> dict[str, Any]:
    """``OUT/plan_bench.json`` over the goals run so far, with the ``reused`` planners' results."""
    results = {**reused, **{n: summarise(e, args.success_radius) for n, e in episodes.items()}}
    closed = {n: np.array(r["per_goal_closed_fraction"][: len(goals)]) for n, r in results.items()}
    start = [float(np.linalg.norm(g.start_ee - g.goal_ee)) for g in goals]
    oracle = results.get("oracle")
    report = {
        "command": "astra-plan-bench " + " ".join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")},
        "model_id": model.info.model_id if model is not None else None,
        "planner": asdict(config),
        "goals": len(goals),
        "start_ee_distance_mean_m": float(np.mean(start)),
        "start_ee_distance_m": start,
        "planners": results,
        "oracle_check": None
        if oracle is None
        else {
            "closed_fraction_mean": oracle["closed_fraction_mean"],
            "target": ORACLE_TARGET,
            "passed": oracle["closed_fraction_mean"] >= ORACLE_TARGET,
        },
        "reused_from": args.reuse,
        "planning_gain": planning_gain(closed),
    }
    (out / "plan_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"astra-plan-bench: error: {err}", file=sys.stderr)
        return 2
    start = report["start_ee_distance_mean_m"]
    print(f"astra-plan-bench: {report['goals']} goals, start EE distance {start:.3f} m")
    for name, r in report["planners"].items():
        p50 = r["plan_seconds_p50"]
        plan = f", plan p50 {p50:.2f} s" if p50 is not None else ""
        low, high = r["closed_fraction_ci95"]
        print(
            f"  {name:7s} closed {r['closed_fraction_mean']:+.2f} [{low:+.2f}, {high:+.2f}], within "
            f"{args.success_radius * 100:.0f} cm {r['success_share']:.0%}, EE distance median "
            f"{r['ee_distance_median_m']:.3f} m{plan}"
        )
    check = report["oracle_check"]
    if check is not None and not check["passed"]:
        print(
            f"  WARNING: the oracle closed {check['closed_fraction_mean']:.2f} of the distance (< "
            f"{check['target']}): with these settings the benchmark cannot tell models apart"
        )
    gain = report["planning_gain"]
    shown = "n/a" if gain is None else f"{gain['gain']:.2f} [{gain['ci95'][0]:.2f}, {gain['ci95'][1]:.2f}]"
    print(f"  planning gain (model / oracle closed) {shown}; wrote {Path(args.out) / 'plan_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
