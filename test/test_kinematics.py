"""Forward kinematics and camera projection against the pybullet simulator, the URDF chain reader,
the kinematics description in the config, and the per-token term it adds to the model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from astra_ros.model.astra import AstraWorldModel
from astra_ros.model.config import AstraConfig
from astra_ros.model.kinematics import ChainProjection
from astra_ros.model.robot_description import opengl_camera, urdf_chain
from astra_ros.sim import kuka
from astra_ros.sim.kuka import JOINT_NAMES, KukaEnv, camera_matrices, kinematics_description
from astra_ros.training.config import config_from_args, model_config
from astra_ros.training.train import build_parser, check_state_joints
from astra_ros.training.trainer import TrainingError

REPO = Path(__file__).resolve().parents[1]


def opengl(matrix: tuple[float, ...]) -> np.ndarray:
    return np.asarray(matrix, np.float64).reshape(4, 4).T  # column-major


def test_forward_kinematics_and_projection_match_pybullet():
    size = 64
    env = KukaEnv(size)
    chain = ChainProjection(kinematics_description(), size)
    rng = np.random.default_rng(0)
    q = rng.uniform(env.lower, env.upper, (12, len(JOINT_NAMES)))
    world = chain.world(torch.tensor(q, dtype=torch.float32)).double().numpy()  # (12, 8, 3)
    pixels, depth = (x.double().numpy() for x in chain(torch.tensor(q, dtype=torch.float32)))
    camera = opengl(env.proj) @ opengl(env.view)
    on_robot = []
    for k in range(len(q)):
        env.set_state(q[k], np.zeros(len(JOINT_NAMES)))
        links = [env.p.getLinkState(env.robot, j, physicsClientId=env.client)[4] for j in env.joints]
        truth = np.array([(0.0, 0.0, 0.0), *links])  # the base link frame, then links 1..7
        clip = np.concatenate([truth, np.ones((len(truth), 1))], 1) @ camera.T
        ndc = clip[:, :2] / clip[:, 3:]
        expected = np.stack([(ndc[:, 0] + 1) * size / 2, (1 - ndc[:, 1]) * size / 2], -1)
        assert np.abs(world[k] - truth).max() < 1e-4  # m
        assert np.abs(pixels[k] - expected).max() < 0.05  # px
        np.testing.assert_allclose(depth[k], clip[:, 3], atol=1e-4)
        # the image convention: the links' origins are drawn on the arm in the rendered image
        seg = env.segmentation()
        x, y = np.floor(pixels[k, 1:]).astype(int).T
        inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
        on_robot += list(seg[y[inside], x[inside]] >= 0)
    env.close()
    assert len(on_robot) > 60 and np.mean(on_robot) > 0.95


def test_a_ros_camera_from_its_pose_and_intrinsics_projects_as_a_pinhole():
    eye, target = np.array(kuka.CAMERA_EYE), np.array(kuka.CAMERA_TARGET)
    z = (target - eye) / np.linalg.norm(target - eye)  # the optical frame: x right, y down, z forward
    x = np.cross(z, kuka.CAMERA_UP)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = np.stack([x, np.cross(z, x), z], 1), eye
    # the simulator's camera as camera_info would give it: pybullet's matrices
    f = 32 / math.tan(math.radians(kuka.CAMERA_FOV) / 2)
    k = np.array([[f, 0.0, 31.5], [0.0, f, 31.5], [0.0, 0.0, 1.0]])
    view, projection = opengl_camera(pose, k, 64, 64, kuka.CAMERA_NEAR, kuka.CAMERA_FAR)
    np.testing.assert_allclose(view, camera_matrices()[0], atol=1e-6)
    np.testing.assert_allclose(projection, camera_matrices()[1], atol=1e-6)
    # an off-centre principal point on an 80 x 48 image resized to the model's 32 x 32
    k = np.array([[60.0, 0.0, 30.0], [0.0, 50.0, 20.0], [0.0, 0.0, 1.0]])
    view, projection = opengl_camera(pose, k, 80, 48, 0.1, 6.0)
    chain = ChainProjection({**kinematics_description(), "view": view, "projection": projection}, 32)
    q = torch.tensor(np.random.default_rng(1).uniform(-1, 1, (4, 7)), dtype=torch.float32)
    world = chain.world(q).double().numpy()
    optical = (world - eye) @ pose[:3, :3]  # (4, 8, 3) in the optical frame
    u = 60.0 * optical[..., 0] / optical[..., 2] + 30.0 + 0.5
    v = 50.0 * optical[..., 1] / optical[..., 2] + 20.0 + 0.5
    expected = np.stack([u * 32 / 80, v * 32 / 48], -1)
    np.testing.assert_allclose(chain(q)[0].double().numpy(), expected, atol=1e-3)


URDF = """<robot name="toy">
  <link name="world"/><link name="base"/><link name="upper"/><link name="elbow"/><link name="lower"/>
  <link name="tool"/><link name="camera"/>
  <joint name="j2" type="continuous"><parent link="elbow"/><child link="lower"/><axis xyz="0 0 2"/></joint>
  <joint name="mount" type="fixed"><parent link="world"/><child link="base"/>
    <origin xyz="0 0 1"/></joint>
  <joint name="j1" type="revolute"><parent link="base"/><child link="upper"/><axis xyz="0 0 1"/></joint>
  <joint name="offset" type="fixed"><parent link="upper"/><child link="elbow"/><origin xyz="1 0 0"/></joint>
  <joint name="flange" type="fixed"><parent link="lower"/><child link="tool"/><origin xyz="1 0 0"/></joint>
  <joint name="cam" type="fixed"><parent link="lower"/><child link="camera"/><origin rpy="0 1 0"/></joint>
</robot>"""


def test_urdf_chain_in_chain_order_with_fixed_joints_and_a_tip(tmp_path):
    path = tmp_path / "toy.urdf"
    path.write_text(URDF)
    chain = urdf_chain(path, tip="tool")
    assert chain["joints"] == ["mount", "j1", "offset", "j2", "flange"]
    assert chain["axis"] == [[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 2], [0, 0, 0]]
    camera = list(np.eye(4).reshape(-1))
    description = {**chain, "base_xyz": [0.0] * 3, "base_rpy": [0.0] * 3, "view": camera}
    description["projection"] = camera
    # j1 and j2 (the movable joints) take state entries 0 and 1; each turns the rest of the arm
    world = ChainProjection(description, 8).world(torch.tensor([math.pi / 2, math.pi / 2]))
    expected = [[0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 1], [-1, 1, 1]]
    np.testing.assert_allclose(world.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="child joints"):
        urdf_chain(path)  # the lower link branches: a tip is needed
    path.write_text(URDF.replace('type="continuous"', 'type="prismatic"'))
    with pytest.raises(ValueError, match="'j2' has type 'prismatic'"):
        urdf_chain(path, tip="tool")


def test_config_holds_the_description_as_numbers_and_checks_it():
    kuka = kinematics_description()
    assert kuka["joints"] == list(JOINT_NAMES) and kuka["view"] == list(camera_matrices()[0])
    cfg = AstraConfig.preset("tiny", robot_state=True, kinematics=kuka)
    assert AstraConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="robot_state=False"):
        AstraConfig.preset("tiny", kinematics=kuka)
    with pytest.raises(ValueError, match="is a name"):
        AstraConfig.preset("tiny", robot_state=True, kinematics="kuka_iiwa")
    with pytest.raises(ValueError, match="kinematics\\['view'\\]"):
        AstraConfig.preset("tiny", robot_state=True, kinematics={**kuka, "view": [1.0] * 12})
    axes = [*kuka["axis"][:2], [0.0, float("nan"), 1.0], *kuka["axis"][3:]]
    with pytest.raises(ValueError, match="kinematics\\['axis'\\]\\[2\\]"):
        AstraConfig.preset("tiny", robot_state=True, kinematics={**kuka, "axis": axes})
    with pytest.raises(ValueError, match="7 movable joints"):
        AstraConfig.preset("tiny", robot_state=True, max_joints=6, kinematics=kuka)


def test_a_training_yaml_names_the_kinematics_and_the_run_stores_its_numbers(tmp_path):
    files = [REPO / "config/train/screen.yaml", REPO / "config/train/screen/kinematics.yaml"]
    config = config_from_args(build_parser().parse_args(["--config", *map(str, files), "--preset", "tiny"]))
    cfg = model_config(config)
    assert config.model["kinematics"] == "kuka_iiwa" and cfg.fused_step
    assert cfg.kinematics == kinematics_description()
    check_state_joints(cfg, list(JOINT_NAMES))
    with pytest.raises(TrainingError, match="chain's joints"):
        check_state_joints(cfg, ["a", *JOINT_NAMES])
    path = tmp_path / "run.yaml"
    path.write_text("preset: tiny\nmodel: {robot_state: true, kinematics: ur5}\n")
    with pytest.raises(TrainingError, match="one of \\['kuka_iiwa'\\]"):
        model_config(config_from_args(build_parser().parse_args(["--config", str(path)])))


def states(b: int, t: int, cfg: AstraConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = torch.rand(b, t, cfg.max_joints, generator=g) * 3 - 1.5
    mask = torch.ones(b, t, cfg.max_joints)
    return state, mask


def test_kinematics_term_is_per_token_zero_when_masked_and_zero_at_initialisation():
    cfg = AstraConfig.preset("tiny", robot_state=True, kinematics=kinematics_description())
    model = AstraWorldModel(cfg).eval()
    embed = model.kinematics_embed
    state, mask = states(2, 3, cfg)
    assert not embed(state, mask).any()  # zero-initialised: a model starts unchanged
    with torch.no_grad():
        embed.proj.weight.normal_()
        embed.proj.bias.normal_()
    term = embed(state, mask)  # (B, T, N, W)
    assert term.shape == (2, 3, cfg.tokens_per_frame, cfg.width)
    assert (term - term.mean(2, keepdim=True)).abs().amax() > 0.1  # differs from token to token
    mask[0, 1, 3] = 0.0  # one chain joint unknown: the frame gets nothing
    mask[1, 2, 7:] = 0.0  # joints beyond the chain do not matter
    masked = embed(state, mask)
    assert not masked[0, 1].any()
    torch.testing.assert_close(masked[1, 2], term[1, 2], rtol=0, atol=0)
    features = embed.features(state[..., :7])
    assert features.shape[-1] == 8 + 7 and features.amax() <= 1.0  # 8 points, 7 link segments
