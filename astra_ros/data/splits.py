"""Held-out protocols: which episodes of a dataset train and which are held out, in one file.

A protocol file (``config/splits/*.yaml``) names the dataset's recording sessions and the held-out
sets; the training episodes are every other episode of ``episodes``. Training and evaluation read
their ``--episodes`` from it, so they cannot disagree:

    python -m astra_ros.data.splits config/splits/g1_pick_bottle.yaml train      # -> 1-2,5,...
    python -m astra_ros.data.splits config/splits/g1_pick_bottle.yaml later

Checked on load: sessions are consecutive ranges in recording order covering ``episodes``; held-out
sets lie inside ``episodes`` and do not overlap; a set listed in ``whole_sessions`` is a union of
whole sessions (the later-sessions split).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from astra_ros.data.lerobot import parse_episodes

__all__ = ["Protocol", "ProtocolError", "format_episodes", "load_protocol"]

TRAIN = "train"


class ProtocolError(ValueError):
    """A protocol file that does not hold together; the message names the file and the key."""


def format_episodes(ids: Iterable[int]) -> str:
    """``[1, 2, 4, 5, 6]`` -> ``"1-2,4-6"`` (the inverse of ``parse_episodes``)."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(ids)):
        if run and i != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(i)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


@dataclass(frozen=True)
class Protocol:
    path: Path
    episodes: tuple[int, ...]  # every episode index the protocol covers (present or not)
    sessions: dict[str, tuple[int, ...]]  # in recording order
    heldout: dict[str, tuple[int, ...]]

    @property
    def train(self) -> tuple[int, ...]:
        held = {i for ids in self.heldout.values() for i in ids}
        return tuple(i for i in self.episodes if i not in held)

    def select(self, name: str) -> tuple[int, ...]:
        """``train`` or a held-out set's episodes."""
        if name == TRAIN:
            return self.train
        if name not in self.heldout:
            raise ProtocolError(f"{self.path}: no split {name!r}; expected one of {[TRAIN, *self.heldout]}")
        return self.heldout[name]

    def session_of(self, episode: int) -> str:
        return next(name for name, ids in self.sessions.items() if episode in ids)


def _ids(path: Path, key: str, value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, str):
        raise ProtocolError(f"{path}: {key} is {value!r}; expected episode indices such as '1-17,20'")
    try:
        return tuple(parse_episodes(value))
    except ValueError as err:
        raise ProtocolError(f"{path}: {key}: {err}") from None


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProtocolError(f"{path}: cannot be read: {err}") from err
    if not isinstance(data, dict) or not {"episodes", "sessions", "heldout"} <= set(data):
        raise ProtocolError(f"{path}: expected a mapping with episodes, sessions and heldout")
    episodes = _ids(path, "episodes", data["episodes"])
    sessions = {str(k): _ids(path, f"sessions.{k}", v) for k, v in dict(data["sessions"]).items()}
    heldout = {str(k): _ids(path, f"heldout.{k}", v) for k, v in dict(data["heldout"]).items()}
    if TRAIN in heldout:
        raise ProtocolError(f"{path}: heldout.{TRAIN}: '{TRAIN}' is every episode not held out; rename it")
    ordered = [i for ids in sessions.values() for i in ids]
    if ordered != list(episodes):
        raise ProtocolError(
            f"{path}: sessions {[format_episodes(s) for s in sessions.values()]} do not cover episodes "
            f"{format_episodes(episodes)} once each in order; expected consecutive ranges"
        )
    seen: dict[int, str] = {}
    for name, ids in heldout.items():
        outside = sorted(set(ids) - set(episodes))
        if outside:
            span = format_episodes(episodes)
            raise ProtocolError(f"{path}: heldout.{name} has {outside} outside episodes {span}")
        for i in ids:
            if i in seen:
                raise ProtocolError(
                    f"{path}: episode {i} is held out by both {seen[i]} and {name}; expected disjoint sets"
                )
            seen[i] = name
    for name in data.get("whole_sessions", []) or []:
        if name not in heldout:
            raise ProtocolError(f"{path}: whole_sessions names {name!r}; expected one of {list(heldout)}")
        cut = [s for s, ids in sessions.items() if 0 < len(set(ids) & set(heldout[name])) < len(ids)]
        if cut:
            raise ProtocolError(
                f"{path}: heldout.{name} takes part of session(s) {cut}; expected whole sessions"
            )
    return Protocol(path, episodes, sessions, heldout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m astra_ros.data.splits", description=__doc__.splitlines()[0])
    p.add_argument("protocol", type=Path, help="protocol YAML, e.g. config/splits/g1_pick_bottle.yaml")
    p.add_argument("split", help=f"'{TRAIN}' or a held-out set's name; prints its --episodes value")
    args = p.parse_args(argv)
    try:
        print(format_episodes(load_protocol(args.protocol).select(args.split)))
    except ProtocolError as err:
        print(f"splits: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
