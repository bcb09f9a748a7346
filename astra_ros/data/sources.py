"""One data option for every tool: ``--data PATH`` names rosbag2 folders or LeRobot dataset roots.

``add_data_arguments(parser)`` declares the options; ``open_episodes(args, size)`` reads every
source into ``Episode`` objects and prints one data report per source (frozen frames per episode
for LeRobot, drops for bags). The format is detected (``meta/info.json`` -> LeRobot,
``metadata.yaml`` -> rosbag2) unless ``--format`` says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from astra_ros.data.bags import DEFAULT_TOPICS, BagError, Episode, read_bag
from astra_ros.data.lerobot import (
    DEFAULT_CACHE_DIR,
    FROZEN_POLICIES,
    LeRobotError,
    is_lerobot,
    parse_episodes,
)

__all__ = ["DataError", "add_data_arguments", "detect_format", "detect_modality", "open_episodes"]

FORMATS = ("auto", "bag", "lerobot")


class DataError(ValueError):
    """A data source that cannot be opened as asked; the message names the path and problem."""


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        "--bag",
        "--bags",
        dest="paths",
        nargs="+",
        required=True,
        metavar="PATH",
        help="rosbag2 folders or LeRobot roots (--bag and --bags are older names)",
    )
    g.add_argument("--format", choices=FORMATS, default="auto", help="auto: meta/info.json -> lerobot")
    g.add_argument("--episodes", default=None, help="LeRobot episode indices, e.g. 1-33,35 (default: all)")
    g.add_argument("--camera", default=None, help="LeRobot video key (default: the first in meta/info.json)")
    g.add_argument("--state-key", default="observation.state", help="LeRobot joint state column")
    g.add_argument("--action-key", default="action", help="LeRobot joint position target column")
    g.add_argument(
        "--frozen",
        choices=FROZEN_POLICIES,
        default="drop",
        help="LeRobot frames equal to the previous frame: drop (keeping each frame's timestamp) or keep",
    )
    g.add_argument(
        "--frame-period",
        type=float,
        default=None,
        help="LeRobot: keep frames at least this many seconds apart (default: every kept frame; "
        "astra-eval: the model's training frame period)",
    )
    g.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="decoded-frame cache")
    g.add_argument("--image-topic", default="/camera/image_raw", help="bag camera topic")
    g.add_argument("--command-topic", default=None, help="bag command topic (default: the modality's)")
    g.add_argument(
        "--modality",
        "--modalities",
        dest="modality",
        nargs="+",
        default=None,
        help="bag command modality, one for all bags or one per bag (default: from its topics)",
    )


def detect_format(path: str, requested: str = "auto") -> str:
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {path!r} does not exist; expected a rosbag2 folder or a LeRobot root")
    if requested != "auto":
        return requested
    if is_lerobot(p):
        return "lerobot"
    if (p / "metadata.yaml").is_file() or p.suffix in (".mcap", ".db3"):
        return "bag"
    raise DataError(
        f"--data {path!r}: neither meta/info.json (LeRobot) nor metadata.yaml (rosbag2) found; "
        "pass --format bag|lerobot"
    )


def detect_modality(bag: str) -> str:
    """The modality whose default command topic the bag has (exactly one must be present)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([Path(bag)]) as reader:
            topics = {c.topic for c in reader.connections}
    except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for corrupt bags
        raise BagError(f"bag {bag}: cannot be opened: {exc}") from exc
    found = [m for m, topic in DEFAULT_TOPICS.items() if topic in topics]
    if len(found) != 1:
        raise BagError(
            f"bag {bag}: cannot tell the modality from its topics {sorted(topics)}; "
            f"expected exactly one of {sorted(DEFAULT_TOPICS.values())} or pass --modality"
        )
    return found[0]


def open_episodes(
    args: argparse.Namespace, size: int, min_frames: int = 2, progress: bool = True
) -> tuple[list[Episode], list[dict[str, Any]]]:
    """Episodes of every ``--data`` source at ``size`` x ``size``, and one JSON-able report each.

    ``min_frames``: the context the caller needs; a LeRobot episode with fewer frames is an error.
    Raises DataError (or BagError / LeRobotError, both ValueErrors) naming the source.
    """
    episodes: list[Episode] = []
    reports: list[dict[str, Any]] = []
    selection = parse_episodes(args.episodes) if args.episodes else None
    modalities = args.modality or []
    if len(modalities) not in (0, 1, len(args.paths)):
        raise DataError(
            f"--modality has {len(modalities)} entries; "
            f"expected one for all sources or one per --data ({len(args.paths)})"
        )
    for i, path in enumerate(args.paths):
        fmt = detect_format(path, args.format)
        if fmt == "lerobot":
            eps, report = _read_lerobot(args, path, size, selection, min_frames, progress)
            print(report.summary(), file=sys.stderr)
            reports.append(report.to_dict())
        else:
            if selection is not None:
                raise DataError(f"--episodes selects LeRobot episodes; --data {path!r} is a rosbag2 bag")
            modality = modalities[i if len(modalities) > 1 else 0] if modalities else detect_modality(path)
            eps, bag_report = read_bag(
                path,
                image_topic=args.image_topic,
                command_topic=args.command_topic,
                modality=modality,
                size=size,
            )
            print(bag_report.summary(), file=sys.stderr)
            reports.append(
                {
                    "data": path,
                    "format": "bag",
                    "modality": modality,
                    "frames": bag_report.frames_kept,
                    "episodes": bag_report.episodes,
                    "drops": bag_report.drops,
                    "frame_period": bag_report.frame_period,
                }
            )
        episodes += eps
    return episodes, reports


def _read_lerobot(
    args: argparse.Namespace,
    path: str,
    size: int,
    selection: list[int] | None,
    min_frames: int,
    progress: bool,
) -> tuple[list[Episode], Any]:
    from astra_ros.data.lerobot import read_lerobot

    try:
        return read_lerobot(
            path,
            episodes=selection,
            camera=args.camera,
            state_key=args.state_key,
            action_key=args.action_key,
            size=size,
            frozen=args.frozen,
            frame_period=args.frame_period,
            min_frames=min_frames,
            cache_dir=args.cache_dir,
            progress=progress,
        )
    except LeRobotError:
        raise
    except (OSError, KeyError) as err:
        raise LeRobotError(
            f"--data {path!r}: cannot read the LeRobot dataset: {type(err).__name__}: {err}"
        ) from err
