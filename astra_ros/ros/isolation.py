"""Keep DDS traffic on loopback, on every supported distribution.

Jazzy and later read ``ROS_AUTOMATIC_DISCOVERY_RANGE``; Humble only knows ``ROS_LOCALHOST_ONLY``
(Jazzy still honours it, Kilted ignores it), so both are set. Tests and scripts call
``isolate_ros()`` before ``rclpy.init()`` and before starting child processes, which inherit the
environment. The node itself only defaults to localhost discovery (``default_discovery()``): on a
robot whose camera driver runs on another machine, set ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET``
(Humble: ``ROS_LOCALHOST_ONLY=0``) and your ``ROS_DOMAIN_ID``, and the node follows it.
"""

from __future__ import annotations

import os
import secrets


def isolate_ros(domain_id: int | None = None) -> int:
    """Restrict discovery to localhost and pick a ROS domain; returns the domain id in use.

    An explicit ``domain_id`` wins, then an existing ``ROS_DOMAIN_ID``, else a random one in
    [1, 101] (safe port range for fastrtps) so parallel runs do not see each other.
    """
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
    os.environ.pop("ROS_STATIC_PEERS", None)
    if domain_id is None:
        existing = os.environ.get("ROS_DOMAIN_ID", "")
        domain_id = int(existing) if existing.isdigit() else 1 + secrets.randbelow(101)
    if not 0 <= domain_id <= 232:
        raise ValueError(f"ROS_DOMAIN_ID={domain_id}; expected 0..232")
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    return domain_id


def default_discovery() -> None:
    """Localhost discovery unless the user chose otherwise; the domain is left as configured."""
    if "ROS_LOCALHOST_ONLY" in os.environ:  # chosen, Humble style
        return
    if os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST") == "LOCALHOST":
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
