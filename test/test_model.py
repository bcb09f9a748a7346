"""The Astra denoiser: causality, cache equivalence, actions, router, noise levels, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astra_ros.model.actions import JOINT_POSITION_SCALE, pack_actions
from astra_ros.model.astra import Actions, AstraWorldModel, KVCache
from astra_ros.model.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from astra_ros.model.config import MODALITY_IDS, NO_ACTION, AstraConfig
from astra_ros.model.rope import rope_tables
from astra_ros.runtime.base import model_info
from astra_ros.runtime.torch_backend import TorchBackend


def perturbed_model(cfg: AstraConfig, seed: int = 0, keep_adapter_init: bool = False) -> AstraWorldModel:
    """A model whose zero-initialised layers are made non-trivial, as after training."""
    torch.manual_seed(seed)
    model = AstraWorldModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if keep_adapter_init and ".action_" in name:
                continue
            p.add_(0.05 * torch.randn_like(p))
    return model


def random_inputs(cfg: AstraConfig, b: int, t: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    s, a = cfg.image_size, cfg.action_dim

    def actions() -> Actions:
        return Actions(
            torch.randn(b, t, a, generator=g),
            (torch.rand(b, t, a, generator=g) > 0.2).float(),
            torch.tensor(list(MODALITY_IDS.values()))[
                torch.randint(0, len(MODALITY_IDS), (b, t), generator=g)
            ],
        )

    return (
        torch.randn(b, t, 3, s, s, generator=g),
        0.3 * torch.rand(b, t, generator=g),
        actions(),
        torch.randn(b, t, 3, s, s, generator=g),
        torch.rand(b, t, generator=g),
        actions(),
    )


def at(actions: Actions, k: int) -> Actions:
    return Actions(*(None if x is None else x[:, k] for x in actions))


@pytest.fixture(scope="module", params=[False, True], ids=["adapter", "adapter+modulation"])
def cfg(request) -> AstraConfig:
    """The tiny preset, with and without the action also in every block's modulation."""
    return AstraConfig.preset("tiny", action_modulation=request.param)


def test_tiny_preset_shapes(cfg):
    model = perturbed_model(cfg)
    inputs = random_inputs(cfg, 2, 5)
    with torch.no_grad():
        out, balance = model(*inputs)
    assert out.shape == (2, 5, 3, cfg.image_size, cfg.image_size)
    assert torch.isfinite(balance)


def test_causality_frames_and_actions(cfg):
    model = perturbed_model(cfg)
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = random_inputs(cfg, 2, 6)
    with torch.no_grad():
        ref, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act)
        j = 3
        ctx2 = ctx.clone()
        ctx2[:, j] += 1.0
        tgt2 = tgt.clone()
        tgt2[:, j] += 1.0
        values = ctx_act.values.clone()
        values[:, j] += 1.0
        tvalues = tgt_act.values.clone()
        tvalues[:, j] += 1.0
        changed, _ = model(
            ctx2,
            ctx_level,
            Actions(values, ctx_act.mask, ctx_act.modality),
            tgt2,
            tgt_level,
            Actions(tvalues, tgt_act.mask, tgt_act.modality),
        )
    # target k follows context k: context j influences targets >= j, target j only itself
    torch.testing.assert_close(changed[:, :j], ref[:, :j], rtol=0, atol=0)
    assert (changed[:, j:] - ref[:, j:]).abs().amax(dim=(0, 2, 3, 4)).min() > 1e-4


def rope(cfg: AstraConfig, position: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = rope_tables(np.full(batch, position), cfg.head_dim)
    return torch.from_numpy(cos), torch.from_numpy(sin)


def stream_targets(model: AstraWorldModel, inputs: tuple, start: int = 0) -> tuple[torch.Tensor, KVCache]:
    """Targets denoised frame by frame through the ring-buffer cache, frame k at index start + k."""
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = inputs
    cfg, b, t = model.cfg, ctx.shape[0], ctx.shape[1]
    cache = model.empty_cache(b)
    previous = torch.zeros_like(ctx[:, 0])
    outs = []
    with torch.no_grad():
        for k in range(t):
            step = model.step(
                ctx[:, k], previous, ctx_level[:, k], at(ctx_act, k), cache, *rope(cfg, start + k, b)
            )
            model.write(cache, step.keys, step.values, (start + k) % cfg.max_history)
            previous = ctx[:, k]
            out = model.step(
                tgt[:, k], previous, tgt_level[:, k], at(tgt_act, k), cache, *rope(cfg, start + k + 1, b)
            )
            outs.append(out.output)
    return torch.stack(outs, 1), cache


def test_cache_streaming_equals_full_forward_with_eviction(cfg):
    model = perturbed_model(cfg)
    inputs = random_inputs(cfg, 2, cfg.max_history + 4)  # the ring buffer wraps 4 times
    with torch.no_grad():
        full, _ = model(*inputs)
    streamed, cache = stream_targets(model, inputs)
    assert cache.valid.tolist() == [[1.0] * cfg.max_history] * 2
    assert (streamed - full).abs().max().item() < 1e-4


def test_a_shared_history_reads_like_its_frames_copied_into_every_streams_own_ring(cfg):
    """The history all streams share enters once (one row, slot-major); attention over [history; own
    frames; itself] is the same as over own rings that each hold a copy of it (masks included)."""
    model = perturbed_model(cfg)
    torch.manual_seed(1)
    b, m, r, n, h, d = 3, cfg.max_history, 2, cfg.tokens_per_frame, cfg.heads, cfg.head_dim
    valid = torch.ones(1, m)
    valid[0, 1] = 0.0  # an empty history slot
    history = KVCache(torch.randn(cfg.depth, m, h, n, d), torch.randn(cfg.depth, m, h, n, d), valid)
    own = KVCache(
        torch.randn(cfg.depth, h, b, r * n, d), torch.randn(cfg.depth, h, b, r * n, d), torch.ones(b, r)
    )
    own.valid[:, 1] = 0.0  # an own slot not written yet

    def copied(x: torch.Tensor) -> torch.Tensor:  # (depth, M, heads, N, hd) -> (depth, heads, B, M*N, hd)
        return x.permute(0, 2, 1, 3, 4).reshape(cfg.depth, h, 1, m * n, d).expand(-1, -1, b, -1, -1)

    tiled = KVCache(
        torch.cat([copied(history.keys), own.keys], 3),
        torch.cat([copied(history.values), own.values], 3),
        torch.cat([valid.expand(b, -1), own.valid], 1),
    )
    s, a = cfg.image_size, cfg.action_dim
    frame, previous = torch.randn(b, 3, s, s), torch.randn(b, 3, s, s)
    acts = Actions(torch.randn(b, a), torch.ones(b, a), torch.zeros(b, dtype=torch.long))
    level = torch.rand(b)
    with torch.no_grad():
        want = model.step(frame, previous, level, acts, tiled, *rope(cfg, 9, b))
        shared = model.step(frame, previous, level, acts, own, *rope(cfg, 9, b), history=history)
        history.valid[:] = 0.0  # and an empty history is no history
        alone = model.step(frame, previous, level, acts, own, *rope(cfg, 9, b))
        empty = model.step(frame, previous, level, acts, own, *rope(cfg, 9, b), history=history)
    assert (shared.output - want.output).abs().max().item() < 1e-5
    assert (shared.keys - want.keys).abs().max().item() < 1e-6
    assert (alone.output - empty.output).abs().max().item() < 1e-6


def test_a_stream_hours_long_keeps_its_precision(cfg):
    model = perturbed_model(cfg)
    inputs = random_inputs(cfg, 1, cfg.max_history + 2)
    fresh, _ = stream_targets(model, inputs)
    late, _ = stream_targets(model, inputs, start=1_000_003)  # 18 hours of frames at 15 Hz
    assert (late - fresh).abs().max().item() < 1e-4


def test_cache_step_cost_is_bounded_by_max_history(cfg):
    model = perturbed_model(cfg)
    cache = model.empty_cache(1)
    assert cache.keys.shape[3] == cfg.max_history * cfg.tokens_per_frame
    frame = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    acts = Actions(
        torch.zeros(1, cfg.action_dim), torch.zeros(1, cfg.action_dim), torch.zeros(1, dtype=torch.long)
    )
    with torch.no_grad():
        for k in range(3 * cfg.max_history):
            step = model.step(frame, frame, torch.zeros(1), acts, cache, *rope(cfg, k, 1))
            model.write(cache, step.keys, step.values, k % cfg.max_history)
    assert cache.keys.shape[3] == cfg.max_history * cfg.tokens_per_frame


def test_different_actions_give_different_predictions(cfg):
    model = perturbed_model(cfg)
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = random_inputs(cfg, 1, 4)
    other = Actions(tgt_act.values + 0.5, tgt_act.mask, tgt_act.modality)
    with torch.no_grad():
        a, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act)
        b, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level, other)
    assert (a - b).abs().max() > 1e-3


def test_identity_initialised_adapter_equals_action_free_path(cfg):
    model = perturbed_model(cfg, keep_adapter_init=True)
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = random_inputs(cfg, 2, 4)

    def free(a: Actions) -> Actions:
        return Actions(torch.zeros_like(a.values), a.mask, torch.full_like(a.modality, NO_ACTION))

    with torch.no_grad():
        with_actions, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act)
        action_free, _ = model(ctx, ctx_level, free(ctx_act), tgt, tgt_level, free(tgt_act))
    torch.testing.assert_close(with_actions, action_free, rtol=0, atol=1e-6)


def test_router_every_modality_top_k_and_variable_joints():
    cfg = AstraConfig.preset("tiny", num_experts=4, top_k=2)
    model = perturbed_model(cfg)
    experts = model.action_embed
    rows = []
    for joints in (3, 7, cfg.max_joints):
        rows.append(pack_actions(np.random.randn(joints), "joint_velocity", cfg) + (0,))
    rows.append(pack_actions(np.random.randn(6), "twist", cfg) + (1,))
    rows.append(pack_actions(np.random.randn(7), "pose_delta", cfg) + (2,))
    rows.append(pack_actions(np.array([3.0]), "discrete", cfg) + (3,))
    rows.append(pack_actions(np.random.randn(5), "joint_position", cfg) + (5,))  # after NO_ACTION
    values = torch.tensor(np.stack([r[0] for r in rows]))
    mask = torch.tensor(np.stack([r[1] for r in rows]))
    modality = torch.tensor([r[2] for r in rows])
    x = torch.cat([values * mask, mask], -1)
    onehot = torch.nn.functional.one_hot(modality, cfg.modality_rows).float()
    h = sum(
        onehot[:, m, None] * proj(x) for m, proj in zip(experts.modality_ids, experts.projectors, strict=True)
    )
    probs = experts.router(torch.cat([h, experts.modality_embed(modality)], -1)).softmax(-1)
    assert probs.shape == (len(rows), cfg.num_experts)
    assert set(modality.tolist()) == set(MODALITY_IDS.values())
    out, balance = experts(Actions(values, mask, modality))
    assert out.shape == (len(rows), cfg.width)
    assert torch.isfinite(out).all() and torch.isfinite(balance)
    # the three joint-velocity rows differ only in joint count and must embed differently
    assert (out[0] - out[1]).abs().max() > 1e-4 and (out[1] - out[2]).abs().max() > 1e-4
    # top-k: exactly k experts get a gate, and gates sum to one
    top_p, top_i = probs.topk(cfg.top_k, -1)
    gates = torch.zeros_like(probs).scatter(-1, top_i, top_p / top_p.sum(-1, keepdim=True))
    assert ((gates > 0).sum(-1) == cfg.top_k).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(len(rows)))


def test_pack_actions_rejects_bad_input(cfg):
    with pytest.raises(ValueError, match="twist actions have width 5; expected 6"):
        pack_actions(np.zeros(5), "twist", cfg)
    with pytest.raises(ValueError, match="joints; expected 1..16"):
        pack_actions(np.zeros(17), "joint_velocity", cfg)
    with pytest.raises(ValueError, match="NaN"):
        pack_actions(np.array([np.nan] * 6), "twist", cfg)
    with pytest.raises(ValueError, match="unknown action modality"):
        pack_actions(np.zeros(6), "teleport", cfg)


def test_noise_level_changes_output(cfg):
    model = perturbed_model(cfg)
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = random_inputs(cfg, 1, 4)
    with torch.no_grad():
        a, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act)
        b, _ = model(ctx, ctx_level, ctx_act, tgt, tgt_level * 0.5, tgt_act)
        c, _ = model(ctx, ctx_level + 0.2, ctx_act, tgt, tgt_level, tgt_act)
    assert (a - b).abs().max() > 1e-3  # the target's own level
    assert (a[:, 1:] - c[:, 1:]).abs().max() > 1e-5  # the history frames' levels


def test_context_noise_is_applied_at_inference(cfg):
    model = perturbed_model(cfg)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    outs = []
    for context_noise in (0.0, 0.0, 0.3):
        backend = TorchBackend(
            model, model_info("torch", {}, cfg, "0" * 64), context_noise=context_noise, seed=0
        )
        for f in frames:
            backend.ingest(f, np.zeros(7), "joint_velocity")
        outs.append(backend.predict(np.zeros((1, 2, 7)), "joint_velocity", seed=1).astype(int))
    assert np.array_equal(outs[0], outs[1])  # deterministic for a seed
    assert np.abs(outs[0] - outs[2]).max() > 0


def test_checkpoint_round_trip_is_exact(tmp_path, cfg):
    model = perturbed_model(cfg)
    path = tmp_path / "m.pt"
    save_checkpoint(path, Checkpoint(cfg, model.state_dict(), {"joint_names": ["a", "b"]}))
    loaded = load_checkpoint(path)
    assert loaded.config == cfg and loaded.meta == {"joint_names": ["a", "b"]}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model[key]), key
    inputs = random_inputs(cfg, 1, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.build_model()(*inputs)[0], model(*inputs)[0], rtol=0, atol=0)


def test_checkpoint_errors(tmp_path, cfg):
    path = tmp_path / "m.pt"
    save_checkpoint(path, Checkpoint(cfg, perturbed_model(cfg).state_dict()))
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an astra_ros checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_config_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        AstraConfig.preset("huge")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        AstraConfig(image_size=60, patch_size=8)
    with pytest.raises(ValueError, match="unknown AstraConfig fields"):
        AstraConfig.from_dict({"widht": 3})


def test_predict_drives_each_frame_with_the_command_before_it(cfg):
    model = perturbed_model(cfg)
    backend = TorchBackend(model, model_info("torch", {}, cfg, "0" * 64), seed=0)
    frame = np.random.default_rng(0).integers(0, 255, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    backend.ingest(frame, np.zeros(7), "joint_velocity")
    plan = np.zeros((1, 3, 7), np.float32)
    other = plan.copy()
    other[0, 1] = 2.0  # differs only in the command from predicted frame 0 to 1
    a = backend.predict(plan, "joint_velocity", seed=3).astype(int)
    b = backend.predict(other, "joint_velocity", seed=3).astype(int)
    assert np.array_equal(a[0, 0], b[0, 0])  # frame 0 follows the first command only
    assert np.abs(a[0, 1] - b[0, 1]).max() > 0  # the second command drives frame 1


def test_joint_position_keeps_the_shipped_models_modality_ids_and_tables():
    # Models saved with four modalities keep NO_ACTION = 4 and their table sizes.
    assert NO_ACTION == 4 and MODALITY_IDS["discrete"] == 3 and MODALITY_IDS["joint_position"] == 5
    saved = AstraConfig.preset("tiny").to_dict()
    del saved["num_modalities"]  # a config written before joint_position existed
    old = AstraConfig.from_dict(saved)
    experts = AstraWorldModel(old).action_embed
    assert old.modalities == ("joint_velocity", "twist", "pose_delta", "discrete")
    assert len(experts.projectors) == 4 and experts.modality_embed.num_embeddings == 5
    with pytest.raises(ValueError, match="no action tables for 'joint_position'"):
        pack_actions(np.zeros(7), "joint_position", old)
    new = AstraWorldModel(AstraConfig.preset("tiny")).action_embed
    assert len(new.projectors) == 5 and new.modality_embed.num_embeddings == 6
    values, mask = pack_actions(np.full(3, 0.01), "joint_position", AstraConfig.preset("tiny"))
    np.testing.assert_allclose(values[:3], 0.01 * JOINT_POSITION_SCALE)
    assert mask.sum() == 3


def test_shipped_fp16_checkpoint_is_half_the_size_and_loads_back_to_float32(tmp_path):
    from astra_ros.model.checkpoint import main

    torch.manual_seed(0)
    cfg = AstraConfig.preset("tiny")
    model = AstraWorldModel(cfg)
    full = tmp_path / "full.pt"
    save_checkpoint(full, Checkpoint(cfg, model.state_dict(), {"joint_names": ["a"]}, optimizer={"x": 1}))
    main([str(full), str(tmp_path / "half.pt"), "--fp16"])
    half = load_checkpoint(tmp_path / "half.pt")
    assert (
        half.optimizer is None
        and half.meta["weights_dtype"] == "float16"
        and half.meta["joint_names"] == ["a"]
    )
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * full.stat().st_size
    rebuilt = half.build_model()
    assert all(p.dtype == torch.float32 for p in rebuilt.parameters())
    for name, p in rebuilt.state_dict().items():
        assert torch.allclose(p, model.state_dict()[name], rtol=1e-3, atol=1e-4), name


def test_warp_moves_pixels_by_the_flow():
    from astra_ros.model.astra import warp

    frames = torch.zeros(2, 3, 8, 8)
    frames[:, :, 2, 3] = 1.0
    assert torch.equal(warp(frames, torch.zeros(2, 2, 8, 8)), frames)
    flow = torch.zeros(2, 2, 8, 8)
    flow[:, 0] = -2.0  # each pixel takes the value 2 pixels to its left: the bright pixel moves right
    moved = warp(frames, flow)
    assert moved[0, 0, 2, 5] == pytest.approx(1.0) and moved[0, 0, 2, 3] == pytest.approx(0.0)


def test_warp_head_starts_as_copy_last_and_streams_like_the_full_forward():
    cfg = AstraConfig.preset("tiny", output_head="warp")
    untrained = AstraWorldModel(cfg).eval()
    inputs = random_inputs(cfg, 2, 3)
    with torch.no_grad():
        assert untrained(*inputs)[0].abs().max() == 0.0  # x0 = previous frame + 0
    model = perturbed_model(cfg)
    inputs = random_inputs(cfg, 2, cfg.max_history + 2)
    with torch.no_grad():
        full, _ = model(*inputs)
    streamed, _ = stream_targets(model, inputs)
    assert full.abs().max() > 0.01
    assert (streamed - full).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="output_head"):
        AstraConfig.preset("tiny", output_head="flow")
    with pytest.raises(ValueError, match="predict_delta"):
        AstraConfig.preset("tiny", output_head="warp", predict_delta=False)


def test_fused_step_model_predicts_from_its_writes_like_the_full_forward():
    cfg = AstraConfig.preset("tiny", fused_step=True, robot_state=True)
    assert AstraWorldModel(cfg)(*random_inputs(cfg, 1, 3)[:3])[0].abs().max() == 0.0  # untrained: copy-last
    model = perturbed_model(cfg)
    b, t = 2, cfg.max_history + 3  # the ring buffer wraps
    context, level, actions = random_inputs(cfg, b, t)[:3]
    actions = actions._replace(
        state=torch.randn(b, t, cfg.max_joints), state_mask=torch.ones(b, t, cfg.max_joints)
    )
    with torch.no_grad():
        full, _ = model(context, level, actions)
        cache, previous, streamed = model.empty_cache(b), torch.zeros_like(context[:, 0]), []
        for k in range(t):
            step = model.step(context[:, k], previous, level[:, k], at(actions, k), cache, *rope(cfg, k, b))
            model.write(cache, step.keys, step.values, k % cfg.max_history)
            previous = context[:, k]
            streamed.append(step.output)
    assert full.abs().max() > 0.01
    assert (torch.stack(streamed, 1) - full).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="fused_step"):
        AstraConfig.preset("tiny", fused_step=True, sampling_steps=2)


def test_fused_step_rollout_runs_one_step_per_predicted_frame_and_follows_its_commands():
    cfg = AstraConfig.preset("tiny", fused_step=True)
    backend = TorchBackend(perturbed_model(cfg), model_info("torch", {}, cfg, "0" * 64), seed=0)
    frames = np.random.default_rng(0).integers(0, 255, (2, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    for frame in frames:
        backend.ingest(frame, np.zeros(7), "joint_velocity")
    calls = []
    step = backend._step
    backend._step = lambda *args, **kw: calls.append(args[-1] if len(args) > 9 else kw) or step(*args, **kw)
    plan = np.zeros((2, 3, 7), np.float32)
    plan[1, 1] = 2.0  # differs only in the command from predicted frame 0 to 1
    video = backend.predict(plan, "joint_velocity", seed=3, share_noise=True).astype(int)
    assert calls == [True, True, True]  # one pass per predicted frame, each with its output
    assert np.array_equal(video[0, 0], video[1, 0]) and np.abs(video[0, 1] - video[1, 1]).max() > 0
    with pytest.raises(ValueError, match="one pass per frame"):
        TorchBackend(perturbed_model(cfg), model_info("torch", {}, cfg, "0" * 64), steps=2)


def with_states(actions: Actions, cfg: AstraConfig, seed: int) -> Actions:
    """``actions`` with random joint positions, every third frame's state unknown."""
    g = torch.Generator().manual_seed(seed)
    b, t = actions.modality.shape
    mask = torch.ones(b, t, cfg.max_joints)
    mask[:, ::3] = 0.0
    return actions._replace(state=torch.rand(b, t, cfg.max_joints, generator=g) * 3 - 1.5, state_mask=mask)


@pytest.mark.parametrize("fused", [False, True], ids=["two-stream", "fused_step"])
def test_kinematics_streams_like_the_full_forward_and_starts_unchanged(fused):
    from astra_ros.sim.kuka import kinematics_description

    cfg = AstraConfig.preset("tiny", robot_state=True, kinematics=kinematics_description(), fused_step=fused)
    b, t = 2, cfg.max_history + 3  # the ring buffer wraps
    ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act = random_inputs(cfg, b, t)
    ctx_act, tgt_act = with_states(ctx_act, cfg, 1), with_states(tgt_act, cfg, 2)
    inputs = (ctx, ctx_level, ctx_act) if fused else (ctx, ctx_level, ctx_act, tgt, tgt_level, tgt_act)
    model = perturbed_model(cfg)
    with torch.no_grad():
        full, _ = model(*inputs)
        if fused:
            cache, previous, outs = model.empty_cache(b), torch.zeros_like(ctx[:, 0]), []
            for k in range(t):
                level, act = ctx_level[:, k], at(ctx_act, k)
                step = model.step(ctx[:, k], previous, level, act, cache, *rope(cfg, k, b))
                model.write(cache, step.keys, step.values, k % cfg.max_history)
                previous = ctx[:, k]
                outs.append(step.output)
            streamed = torch.stack(outs, 1)
        else:
            streamed, _ = stream_targets(model, inputs)
    assert (streamed - full).abs().max().item() < 1e-4
    # with the term at its initial zero, the model is the same model without kinematics
    without = AstraWorldModel(AstraConfig.preset("tiny", robot_state=True, fused_step=fused)).eval()
    without.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        torch.nn.init.zeros_(model.kinematics_embed.proj.weight)
        torch.nn.init.zeros_(model.kinematics_embed.proj.bias)
        plain, _ = model(*inputs)
        torch.testing.assert_close(plain, without(*inputs)[0], rtol=0, atol=0)
    assert (plain - full).abs().max() > 1e-3  # the term was used
