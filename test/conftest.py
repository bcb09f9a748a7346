"""Each test module gets its own ROS domain (loopback only), so processes that one module starts
can never talk to another module's nodes."""

from __future__ import annotations

import itertools
import os
import random

import pytest

_domains = itertools.count(random.randrange(100))


@pytest.fixture(scope="module", autouse=True)
def ros_domain():
    previous = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ["ROS_DOMAIN_ID"] = str(1 + next(_domains) % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    yield int(os.environ["ROS_DOMAIN_ID"])
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
