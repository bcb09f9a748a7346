"""astra-train: a tiny run end to end, exact resume, several robots in one model, DDP, bad input."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from astra_ros.data.record_sim import record
from astra_ros.evaluation import metrics
from astra_ros.model.actions import modality_id
from astra_ros.model.astra import AstraWorldModel
from astra_ros.model.checkpoint import load_checkpoint
from astra_ros.model.config import AstraConfig
from astra_ros.sim.kuka import kinematics_description
from astra_ros.training.objective import ObjectiveSettings, ssim, training_loss
from astra_ros.training.train import main as train
from astra_ros.training.trainer import TrainingError, TrainSettings, learning_rate

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--batch-size", "2", "--val-every", "1000", "--precision", "fp32"]


@pytest.fixture(scope="module")
def kuka_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "kuka"
    record("kuka", episodes=3, steps=20, seed=3, out=out, size=32, progress=False)
    return out


@pytest.fixture(scope="module")
def car_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "car"
    record("carracing", episodes=2, steps=15, seed=4, out=out, size=32, progress=False)
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).trainer["weights"]


def test_training_ssim_matches_the_evaluation_metric():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pred = np.clip(true.astype(int) + rng.integers(-120, 120, true.shape), 0, 255).astype(np.uint8)
    as_model = [torch.from_numpy(f).permute(0, 3, 1, 2).double() / 127.5 - 1 for f in (pred, true)]
    expected = metrics.ssim(pred, true).mean()
    assert expected < 0.8
    assert float(ssim(*as_model)) == pytest.approx(expected, abs=1e-9)
    assert float(ssim(as_model[1], as_model[1])) == pytest.approx(1.0)


def test_structure_weight_adds_one_minus_ssim_to_the_loss():
    cfg = AstraConfig.preset("tiny")
    torch.manual_seed(0)
    model = AstraWorldModel(cfg)
    for p in model.final.parameters():  # a zero-initialised output head would predict the last frame
        torch.nn.init.normal_(p, std=0.05)
    rng = np.random.default_rng(1)
    s = cfg.image_size
    batch = {
        "frames": torch.from_numpy(rng.integers(0, 256, (2, 4, s, s, 3), dtype=np.uint8)),
        "actions": torch.randn(2, 4, cfg.action_dim),
        "action_mask": torch.ones(2, 4, cfg.action_dim),
        "modality": torch.full((2,), modality_id("joint_velocity")),
    }
    results = {}
    for weight in (0.0, 0.5):
        settings = ObjectiveSettings(rollout_prob=0.0, structure_weight=weight)
        results[weight] = training_loss(model, batch, settings, torch.Generator().manual_seed(2))
    (loss_mse, plain), (loss_both, both) = results[0.0], results[0.5]
    assert plain["structure"] == 0.0
    assert 0.0 < both["structure"] <= 2.0
    assert both["diffusion"] == pytest.approx(plain["diffusion"])
    assert float((loss_both - loss_mse).detach()) == pytest.approx(0.5 * both["structure"], rel=1e-5)
    loss_both.backward()
    assert all(p.grad is not None for p in model.final.parameters())


def test_tiny_run_writes_model_log_and_validation(kuka_bag, tmp_path):
    run = tmp_path / "run"
    assert (
        train(
            [
                "--bags",
                str(kuka_bag),
                "--out",
                str(run),
                "--steps",
                "3",
                "--val-fraction",
                "0.34",
                "--structure-weight",
                "0.1",
                *TINY,
                "--val-every",
                "3",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["loss"]) > 0 and 0 < float(r["structure"]) < 1 for r in rows)
    assert float(rows[-1]["val_copy_psnr_h1"]) > 10  # validation ran on the held-out episode
    shipped = load_checkpoint(run / "model.pt")
    assert shipped.optimizer is None and shipped.meta["steps"] == 3
    assert shipped.meta["joint_names"] == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    assert abs(shipped.meta["frame_period"] - 1 / 15) < 1e-3
    assert json.loads((run / "final_validation.json").read_text())["val_windows"] >= 1


def test_resume_after_a_stop_is_exact(kuka_bag, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = ["--bags", str(kuka_bag), *TINY, "--val-fraction", "0"]
    assert train([*common, "--out", str(straight), "--steps", "4"]) == 0
    assert train([*common, "--out", str(stopped), "--steps", "2"]) == 0
    assert train([*common, "--out", str(stopped), "--steps", "4", "--resume"]) == 0
    a, b = weights(straight / "checkpoint.pt"), weights(stopped / "checkpoint.pt")
    assert load_checkpoint(stopped / "checkpoint.pt").trainer["step"] == 4
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and a run that did not resume differs (the check above can fail)
    fresh = tmp_path / "fresh"
    assert train([*common, "--out", str(fresh), "--steps", "2"]) == 0
    c = weights(fresh / "checkpoint.pt")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_cosine_schedule_warms_up_then_decays_to_lr_min():
    s = TrainSettings(lr=1e-3, lr_min=1e-5, warmup_steps=10, steps=110, lr_schedule="cosine")
    lrs = [learning_rate(s, step) for step in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[59] == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert lrs[-1] == pytest.approx(1e-5)
    constant = TrainSettings(lr=1e-3, warmup_steps=10, steps=110)
    assert learning_rate(constant, 109) == pytest.approx(1e-3)


def test_init_starts_from_given_weights_with_a_fresh_optimizer(kuka_bag, tmp_path):
    common = ["--bags", str(kuka_bag), *TINY, "--val-fraction", "0"]
    assert train([*common, "--out", str(tmp_path / "base"), "--steps", "2"]) == 0
    base = load_checkpoint(tmp_path / "base" / "model.pt").model
    assert (
        train(
            [
                *common,
                "--out",
                str(tmp_path / "ft"),
                "--steps",
                "1",
                "--lr",
                "0",
                "--init",
                str(tmp_path / "base" / "model.pt"),
            ]
        )
        == 0
    )
    assert train([*common, "--out", str(tmp_path / "scratch"), "--steps", "1", "--lr", "0"]) == 0
    tuned, scratch = (
        weights(tmp_path / "ft" / "checkpoint.pt"),
        weights(tmp_path / "scratch" / "checkpoint.pt"),
    )
    assert all(torch.equal(base[k], tuned[k]) for k in base)
    assert any(not torch.equal(base[k], scratch[k]) for k in base)
    other = ["--set", "context_noise=0.2", "--out", str(tmp_path / "other"), "--steps", "1"]
    assert train([*common, *other, "--init", str(tmp_path / "base" / "model.pt")]) == 2
    # switching action modulation on keeps every trained weight and starts the new layers at zero
    modulated = ["--set", "action_modulation=true", "--steps", "1", "--lr", "0"]
    init = ["--init", str(tmp_path / "base" / "model.pt")]
    assert train([*common, *modulated, *init, "--out", str(tmp_path / "mod")]) == 0
    grown = weights(tmp_path / "mod" / "checkpoint.pt")
    assert all(torch.equal(base[k], grown[k]) for k in base)
    added = [k for k in grown if k not in base]
    assert added and all(".action_adaLN." in k and not grown[k].any() for k in added)
    # and never the other way round
    back = ["--init", str(tmp_path / "mod" / "model.pt"), "--out", str(tmp_path / "back"), "--steps", "1"]
    assert train([*common, *back]) == 2


def test_two_robots_train_one_model(kuka_bag, car_bag, tmp_path):
    run = tmp_path / "mixed"
    assert (
        train(
            [
                "--bags",
                str(kuka_bag),
                str(car_bag),
                "--out",
                str(run),
                "--steps",
                "2",
                *TINY,
                "--val-fraction",
                "0",
            ]
        )
        == 0
    )
    meta = load_checkpoint(run / "model.pt").meta
    assert meta["modalities"] == ["joint_velocity", "twist"]
    assert [d["modality"] for d in meta["data"]] == ["joint_velocity", "twist"]


def test_bad_input_gives_clear_errors(kuka_bag, car_bag, tmp_path, capsys):
    out = ["--out", str(tmp_path / "r")]

    def rejected(*args: str) -> str:
        assert train([*args, *out]) == 2
        return capsys.readouterr().err

    assert "does not exist" in rejected("--bags", str(tmp_path / "nope"), "--steps", "1", *TINY)
    assert "/joint_commands" in rejected(
        "--bags", str(car_bag), "--modalities", "joint_velocity", "--steps", "1", *TINY
    )
    assert "GiB" in rejected(
        "--bags", str(kuka_bag), "--steps", "1", "--preset", "base", "--batch-size", "64"
    )
    with pytest.raises(SystemExit):
        train(["--bags", *out, "--steps", "1"])
    assert "--steps" in rejected("--bags", str(kuka_bag), "--minutes", "1", "--lr-schedule", "cosine", *TINY)
    assert "full_noise_prob=1.5; expected 0..1" in rejected(
        "--bags", str(kuka_bag), "--steps", "1", "--full-noise-prob", "1.5", *TINY
    )
    assert "structure_weight=-0.1; expected >= 0" in rejected(
        "--bags", str(kuka_bag), "--steps", "1", "--structure-weight", "-0.1", *TINY
    )
    missing = str(tmp_path / "small.pt")
    assert "does not exist" in rejected(
        "--bags", str(kuka_bag), "--steps", "1", "--preset", "small", "--init", missing
    )


def test_torchrun_two_cpu_processes_keep_identical_weights(kuka_bag, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        str(REPO / "test" / "ddp_worker.py"),
        str(kuka_bag),
        str(run),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [(run / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert (run / "checkpoint.pt").exists()


# -- configuration: YAML files and flags from the same dataclasses -------------------------------

STAGES = sorted((REPO / "config" / "train" / "kuka_small").glob("*.yaml"))


def parse_config(argv: list[str]):
    from astra_ros.training.config import config_from_args
    from astra_ros.training.train import build_parser

    return config_from_args(build_parser().parse_args(argv))


def test_every_setting_has_one_flag_with_help():
    from astra_ros.training.config import TrainConfig, _leaves
    from astra_ros.training.train import build_parser

    actions = {a.dest: a for a in build_parser()._actions if a.dest not in ("help", "config")}
    assert set(actions) == {dotted for dotted, _f, _h in _leaves(TrainConfig)}
    assert all(a.help and a.option_strings for a in actions.values())
    assert (
        "--set" in actions["model"].option_strings
        and "--rollout-prob" in actions["train.objective.rollout_prob"].option_strings
    )


def test_defaults_then_files_then_flags(tmp_path):
    base, stage = tmp_path / "base.yaml", tmp_path / "stage.yaml"
    base.write_text("preset: tiny\ntrain:\n  lr: 1\n  objective:\n    rollout_prob: 0.2\n")
    stage.write_text("train:\n  lr: 0.5\n  steps: 3\n")
    config = parse_config(["--config", str(base), str(stage), "--lr", "0.25", "--set", "depth=1"])
    assert config.preset == "tiny" and config.model == {"depth": 1}
    assert config.train.lr == 0.25 and config.train.steps == 3  # a flag beats both files
    assert config.train.objective.rollout_prob == 0.2  # the later file keeps the earlier's other keys
    assert config.train.batch_size == TrainSettings.batch_size  # the dataclass default
    assert isinstance(parse_config(["--config", str(base)]).train.lr, float)  # 1 -> 1.0


def test_bad_config_files_name_the_setting(tmp_path):
    from astra_ros.training.trainer import TrainingError

    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("train:\n  lrr: 1\n", "unknown setting train.lrr"),
        ("train:\n  steps: many\n", "train.steps='many'; expected int"),
        ("data: [a]\n", "data is ['a']; expected a section"),
        ("- 1\n", "expected a mapping"),
    ):
        bad.write_text(text)
        with pytest.raises(TrainingError, match=re.escape(message)):
            parse_config(["--config", str(bad)])


def test_stage_files_reproduce_the_recorded_stage_commands():
    """engines/astra_small.train.json records each stage's command (stages 1-7 as flags, later ones
    as the config files); the same command still parses, to the settings of that stage's YAML file
    (stage 2's --init named a copy of stage 1's model.pt; the files add resume; stages 4-7 ran in
    fp32 on an AVX2-only CPU, where the files' precision auto picks fp32 too)."""
    recorded = json.loads((REPO / "engines" / "astra_small.train.json").read_text())["training"]["stages"]
    assert [p.name for p in STAGES][:1] == ["1_constant.yaml"] and len(STAGES) == len(recorded) == 8
    for path, stage in zip(STAGES, recorded, strict=True):
        command = shlex.split(stage["command"])
        assert command[0] == "astra-train"
        args = [str(REPO / a) if a.endswith(".yaml") else a for a in command[1:]]
        from_record = parse_config(args)
        from_files = parse_config(["--config", str(REPO / "config/train/kuka_small.yaml"), str(path)])
        assert from_files.resume
        for config in (from_record, from_files):  # precision is the machine's (auto), not the recipe's
            config.resume, config.init, config.train.precision = False, None, "auto"
        assert from_files == from_record, path.name


def test_train_writes_the_resolved_config(kuka_bag, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  paths: [{kuka_bag}]\n  val_fraction: 0\ntrain:\n  steps: 1\n")
    assert train(["--config", str(config), "--out", str(run), *TINY]) == 0
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["data"]["paths"] == [str(kuka_bag)] and written["train"]["steps"] == 1
    assert load_checkpoint(run / "model.pt").meta["config"] == written


# -- devices -------------------------------------------------------------------------------------


def test_device_resolution(monkeypatch):
    from astra_ros.runtime.torch_backend import resolve_device
    from astra_ros.training.trainer import process_group_backend

    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend(torch.device("cuda", 0)) == "nccl"
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='cuda' but torch.cuda.is_available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


def trainer_on(device: str, bag: Path, run: Path, precision: str = "fp32"):
    from astra_ros.data.bags import read_bag
    from astra_ros.training.trainer import Trainer

    cfg = AstraConfig.preset("tiny")
    episodes, _ = read_bag(str(bag), size=cfg.image_size)
    s = TrainSettings(batch_size=2, steps=2, device=device, precision=precision, val_every=1)
    return Trainer(cfg, episodes[:2], episodes[2:], run, s, {})


def check_placement(trainer, device: torch.device) -> None:
    batch, generator = trainer._batch(0)
    assert generator.device.type == device.type
    assert all(v.device.type == device.type for v in batch.values())
    for module in (trainer.model, trainer.ema):
        assert all(p.device.type == device.type for p in module.parameters())
    trainer.train()
    state = next(iter(trainer.optimizer.state.values()))
    assert state["exp_avg"].device.type == device.type
    assert all(p.device.type == device.type for p in trainer.ema.parameters())  # validation kept it there


def test_training_tensors_stay_on_the_cpu(kuka_bag, tmp_path):
    trainer = trainer_on("cpu", kuka_bag, tmp_path)
    assert trainer.device == torch.device("cpu") and not trainer.bf16
    check_placement(trainer, torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="device='cuda' but torch.cuda.is_available"):
            trainer_on("cuda", kuka_bag, tmp_path / "cuda")


def test_augmented_batches_are_reproducible_per_step_and_change_frames_only(kuka_bag, tmp_path):
    """A resumed run draws the same augmentation: step n's batch depends on (seed, n) alone."""
    from astra_ros.data.bags import read_bag
    from astra_ros.training.trainer import Trainer

    cfg = AstraConfig.preset("tiny")
    episodes, _ = read_bag(str(kuka_bag), size=cfg.image_size)

    def batch(augment: str, step: int) -> dict[str, torch.Tensor]:
        s = TrainSettings(batch_size=3, steps=1, device="cpu", precision="fp32", augment=augment)
        return Trainer(cfg, episodes, [], tmp_path / augment, s, {})._batch(step)[0]

    light, again, plain = batch("light", 5), batch("light", 5), batch("none", 5)
    for key in light:
        assert torch.equal(light[key], again[key]), key
        if key != "frames":
            assert torch.equal(light[key], plain[key]), key  # same windows, commands untouched
    assert not torch.equal(light["frames"], plain["frames"])
    assert not torch.equal(batch("light", 6)["frames"], light["frames"])
    with pytest.raises(TrainingError, match="augment='heavy'; expected one of"):
        batch("heavy", 0)


def test_val_episodes_validate_on_a_named_set_and_train_on_every_other(tmp_path):
    """A protocol's held-out set as the validation episodes: all --episodes train, none validate."""
    from lerobot_fixtures import write_dataset

    from astra_ros.training.config import DataSettings
    from astra_ros.training.train import load_data

    root = write_dataset(tmp_path / "lerobot", episodes={0: 8, 1: 8, 2: 8})
    cfg = AstraConfig.preset("tiny")
    data = DataSettings(paths=[str(root)], episodes="0-1", val_episodes="2", cache_dir=tmp_path / "cache")
    train_eps, val_eps, meta = load_data(data, cfg, 3, seed=0)
    assert [e.source.rsplit(" ", 1)[1] for e in train_eps] == ["0", "1"]
    assert [e.source.rsplit(" ", 1)[1] for e in val_eps] == ["2"]
    assert meta["train_episodes"] == 2 and meta["val_episodes"] == 1
    for episodes in ("0-2", None):
        bad = replace(data, episodes=episodes)
        with pytest.raises(TrainingError, match="val_episodes='2' and episodes="):
            load_data(bad, cfg, 3, seed=0)


def test_init_switches_kinematics_on_for_a_state_model_and_stores_its_numbers(kuka_bag, tmp_path):
    common = ["--bags", str(kuka_bag), *TINY, "--val-fraction", "0", "--steps", "1"]
    assert train([*common, "--set", "robot_state=true", "--out", str(tmp_path / "base")]) == 0
    base = load_checkpoint(tmp_path / "base" / "model.pt").model
    on = ["--set", "robot_state=true", "kinematics=kuka_iiwa", "--lr", "0", "--out", str(tmp_path / "fk")]
    assert train([*common, *on, "--init", str(tmp_path / "base" / "model.pt")]) == 0
    grown = weights(tmp_path / "fk" / "checkpoint.pt")
    assert all(torch.equal(base[k], grown[k]) for k in base)
    added = sorted(k for k in grown if k not in base)
    assert added == ["kinematics_embed.proj.bias", "kinematics_embed.proj.weight"]
    assert not any(grown[k].any() for k in added)  # zero: the model starts unchanged
    saved = load_checkpoint(tmp_path / "fk" / "model.pt").config.kinematics
    assert saved == kinematics_description()
    back = ["--set", "robot_state=true", "--out", str(tmp_path / "back")]
    assert train([*common, *back, "--init", str(tmp_path / "fk" / "model.pt")]) == 2


def test_init_switches_the_one_pass_step_with_the_same_weights(kuka_bag, tmp_path):
    """Stage 8 of the default model starts a fused_step model from two-stream weights: the same
    parameters, used in one pass per frame."""
    common = ["--bags", str(kuka_bag), *TINY, "--val-fraction", "0", "--steps", "1", "--lr", "0"]
    assert train([*common, "--out", str(tmp_path / "base")]) == 0
    base = load_checkpoint(tmp_path / "base" / "model.pt").model
    fused = ["--set", "fused_step=true", "--out", str(tmp_path / "fused")]
    assert train([*common, *fused, "--init", str(tmp_path / "base" / "model.pt")]) == 0
    trained = weights(tmp_path / "fused" / "checkpoint.pt")
    assert trained.keys() == base.keys() and all(torch.equal(base[k], trained[k]) for k in base)
    assert load_checkpoint(tmp_path / "fused" / "model.pt").config.fused_step
