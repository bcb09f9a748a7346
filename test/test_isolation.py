"""DDS stays on loopback on Humble (ROS_LOCALHOST_ONLY) as well as on Jazzy / Kilted
(ROS_AUTOMATIC_DISCOVERY_RANGE), and the node's default leaves a user's choice alone."""

from __future__ import annotations

import os

import pytest

from astra_ros.ros.isolation import default_discovery, isolate_ros

VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS", "ROS_DOMAIN_ID")


@pytest.fixture
def env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_isolate_ros_sets_the_variables_of_every_distribution(env):
    env.setenv("ROS_STATIC_PEERS", "10.0.0.2")
    env.setenv("ROS_LOCALHOST_ONLY", "0")
    domain = isolate_ros(17)

    assert domain == 17 and os.environ["ROS_DOMAIN_ID"] == "17"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ["ROS_LOCALHOST_ONLY"] == "1"
    assert "ROS_STATIC_PEERS" not in os.environ
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID=300; expected 0..232"):
        isolate_ros(300)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}),
        ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}),
        ({"ROS_LOCALHOST_ONLY": "0"}, {"ROS_LOCALHOST_ONLY": "0"}),
        (
            {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"},
            {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"},
        ),
    ],
)
def test_the_node_defaults_to_localhost_unless_the_user_chose(env, given, expected):

    for name, value in given.items():
        env.setenv(name, value)
    default_discovery()
    assert {k: os.environ[k] for k in VARIABLES if k in os.environ} == expected
