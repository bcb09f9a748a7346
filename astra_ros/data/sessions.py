"""Where the recording sessions of a dataset change: per-episode image signatures and boundaries.

A recording session keeps the camera where it is and the scene as it is; between sessions the robot
(and its head camera) is set up again, the lighting and the objects around the task change. Per
episode, from the model-size frames (the ones training sees):

- ``median``: the per-pixel median over the episode's frames (the arms and the object move; the
  median keeps the static scene);
- ``camera_offset``: the integer shift (dy, dx) that best aligns the episode's grey median with the
  reference (the per-pixel median of the last ``reference`` episodes' grey medians; normalised
  correlation over the overlap, shifts up to ``max_shift``): a camera that was set up again shows as
  a jump in this offset;
- ``background``: the correlation matrix of the grey medians' top rows (the scene beyond the table:
  cables, boxes, what stands there), whose blocks are sessions; ``novelty`` scores each boundary
  between consecutive episodes (Foote's checkerboard novelty: mean similarity within the ``width``
  episodes on each side minus the mean across);
- ``brightness`` and ``first_rgb``: the mean grey level of the median, the mean colour of the first
  frames; ``first_corr``: the correlation of the first frame with the previous episode's.

A session starts where both signals agree (``boundaries``): the camera offset moves by at least
``min_shift`` pixels and the novelty is at least ``min_novelty``. The offset alone also moves where
only the object's start position changed (the median holds the object, which pulls the alignment).

    python -m astra_ros.data.sessions --data ROOT --json sessions.json --plot sessions.png

docs/real_robot_data.md has the G1 result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from astra_ros.data.sources import add_data_arguments, open_episodes
from astra_ros.data.splits import format_episodes

__all__ = [
    "EpisodeSignature",
    "background_similarity",
    "best_shift",
    "boundaries",
    "grey",
    "novelty",
    "signatures",
]

GREY = np.asarray([0.299, 0.587, 0.114], np.float32)
FIRST_FRAMES = 8


def grey(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` -> ``(...)`` float32 luma."""
    return np.asarray(rgb, np.float32) @ GREY


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def best_shift(image: np.ndarray, reference: np.ndarray, max_shift: int) -> tuple[int, int, float]:
    """The shift ``(dy, dx)`` with ``image[y + dy, x + dx] ~ reference[y, x]`` and the highest
    normalised correlation over the overlap, and that correlation. Both ``(H, W)`` grey images."""
    if image.shape != reference.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and reference {reference.shape}; expected equal (H, W)")
    h, w = image.shape
    best = (0, 0, -2.0)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            a = image[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            b = reference[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            c = _ncc(a, b)
            if c > best[2] + 1e-9:  # ties keep the smaller shift (tried first from the centre)
                best = (dy, dx, c)
    return best


def background_similarity(medians: np.ndarray, rows: int) -> np.ndarray:
    """``(N, N)`` correlation of the grey medians' top ``rows`` rows."""
    top = grey(medians[:, :rows]).reshape(len(medians), -1)
    top = top - top.mean(axis=1, keepdims=True)
    top /= np.linalg.norm(top, axis=1, keepdims=True) + 1e-9
    return top @ top.T


def novelty(similarity: np.ndarray, width: int) -> np.ndarray:
    """``(N - 1,)``: for the boundary before episode ``b``, the mean similarity among the ``width``
    episodes on each side (pairs within one side) minus the mean similarity across it."""
    n = len(similarity)
    out = np.zeros(max(n - 1, 0))
    for b in range(1, n):
        left, right = range(max(0, b - width), b), range(b, min(n, b + width))
        within = [similarity[i, j] for side in (left, right) for i in side for j in side if i != j]
        across = [similarity[i, j] for i in left for j in right]
        out[b - 1] = (np.mean(within) if within else 1.0) - np.mean(across)
    return out


@dataclass
class EpisodeSignature:
    episode: int
    brightness: float  # mean grey level of the median frame, 0-255
    first_rgb: list[float]  # mean colour of the first frames
    first_corr: float  # correlation of the first frame with the previous episode's (1.0 for the first)
    camera_offset: list[int]  # (dy, dx) px aligning the median with the reference
    offset_corr: float  # the correlation at that offset
    novelty: float  # of the boundary before this episode (0.0 for the first)


def signatures(
    frames: Sequence[np.ndarray],
    episodes: Sequence[int],
    reference: int = 5,
    max_shift: int = 8,
    top_fraction: float = 5 / 16,
    width: int = 3,
) -> tuple[list[EpisodeSignature], np.ndarray, np.ndarray]:
    """Signatures of episodes in recording order from their ``(T, S, S, 3)`` uint8 frames; camera
    offsets are measured against the median of the last ``reference`` episodes' grey medians.
    Returns the signatures, the median frames ``(N, S, S, 3)`` and the background similarity."""
    if len(frames) != len(episodes) or not frames:
        raise ValueError(f"{len(frames)} frame arrays for {len(episodes)} episodes; expected equal, >= 1")
    medians = np.stack([np.median(f, axis=0) for f in frames]).astype(np.float32)
    greys = grey(medians)
    rows = max(1, int(round(medians.shape[1] * top_fraction)))
    similarity = background_similarity(medians, rows)
    scores = np.concatenate([[0.0], novelty(similarity, width)])
    firsts = [grey(f[0]) for f in frames]
    anchor = np.median(greys[-max(1, reference) :], axis=0)
    out = []
    for k, index in enumerate(episodes):
        dy, dx, corr = best_shift(greys[k], anchor, max_shift)
        out.append(
            EpisodeSignature(
                episode=int(index),
                brightness=round(float(greys[k].mean()), 2),
                first_rgb=[round(float(v), 2) for v in frames[k][:FIRST_FRAMES].reshape(-1, 3).mean(axis=0)],
                first_corr=round(_ncc(firsts[k], firsts[k - 1]), 3) if k else 1.0,
                camera_offset=[int(dy), int(dx)],
                offset_corr=round(corr, 3),
                novelty=round(float(scores[k]), 3),
            )
        )
    return out, medians, similarity


def boundaries(signs: Sequence[EpisodeSignature], min_shift: int = 2, min_novelty: float = 0.4) -> list[int]:
    """Positions ``k`` (in ``signs``) where a session starts, besides 0: the camera offset moved by
    at least ``min_shift`` px (either axis) from the previous episode and the novelty is at least
    ``min_novelty``."""
    out = []
    for k in range(1, len(signs)):
        pairs = zip(signs[k].camera_offset, signs[k - 1].camera_offset, strict=True)
        moved = max(abs(a - b) for a, b in pairs)
        if moved >= min_shift and signs[k].novelty >= min_novelty:
            out.append(k)
    return out


def plot(path: Path, signs: list[EpisodeSignature], medians: np.ndarray, similarity: np.ndarray,
         starts: list[int]) -> None:
    """Similarity matrix, camera offsets, novelty, and the median frames on both sides of each
    boundary (and of the first and last episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [s.episode for s in signs]
    edges = [0, *starts, len(signs)]
    shown = sorted({0, *starts, *(k - 1 for k in starts), len(signs) - 1})
    fig = plt.figure(figsize=(12, 6.4))
    top = fig.add_gridspec(1, 3, top=0.94, bottom=0.45, wspace=0.3)
    bottom = fig.add_gridspec(1, len(shown), top=0.36, bottom=0.02)
    ax = fig.add_subplot(top[0])
    ax.imshow(similarity, vmin=-0.4, vmax=1, cmap="viridis")
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        ax.add_patch(plt.Rectangle((a - 0.5, a - 0.5), b - a, b - a, fill=False, ec="red", lw=1.5))
    ticks = list(range(0, len(ids), 4))
    ax.set_xticks(ticks, [ids[t] for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [ids[t] for t in ticks], fontsize=7)
    ax.set_title("background correlation (median frames' top rows)", fontsize=9)
    ax = fig.add_subplot(top[1])
    offsets = np.asarray([s.camera_offset for s in signs])
    ax.plot(ids, offsets[:, 1], "o-", ms=3, label="dx")
    ax.plot(ids, offsets[:, 0], "s-", ms=3, label="dy")
    ax.set_title(f"camera offset, px at {medians.shape[1]}x{medians.shape[2]}", fontsize=9)
    ax.set_xlabel("episode", fontsize=8)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(top[2])
    ax.bar(ids[1:], [s.novelty for s in signs[1:]], color="grey")
    ax.bar([ids[k] for k in starts], [signs[k].novelty for k in starts], color="red")
    ax.set_title("novelty of the boundary before each episode", fontsize=9)
    ax.set_xlabel("episode", fontsize=8)
    for n, k in enumerate(shown):
        ax = fig.add_subplot(bottom[n])
        ax.imshow(medians[k].astype(np.uint8))
        ax.set_title(f"episode {ids[k]}", fontsize=9)
        ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m astra_ros.data.sessions", description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--json", type=Path, required=True, help="per-episode signatures and the sessions")
    p.add_argument("--plot", type=Path, default=None, help="PNG: similarity, offsets, novelty, median frames")
    p.add_argument("--size", type=int, default=64, help="frame size the signatures are computed at")
    p.add_argument("--reference", type=int, default=5, help="offsets vs the median of the last N episodes")
    p.add_argument("--max-shift", type=int, default=8, help="camera offsets searched, px")
    p.add_argument("--min-shift", type=int, default=2, help="offset change starting a session, px")
    p.add_argument("--min-novelty", type=float, default=0.4, help="a novelty that starts a session")
    p.add_argument("--width", type=int, default=3, help="episodes on each side of a boundary for the novelty")
    args = p.parse_args(argv)
    args.frozen = "keep"  # the medians use every recorded frame
    try:
        episodes, reports = open_episodes(args, args.size, progress=False)
    except ValueError as err:
        print(f"sessions: error: {err}", file=sys.stderr)
        return 2
    ids = [e["episode"] for r in reports for e in r.get("per_episode", [])]
    if len(ids) != len(episodes):
        print("sessions: error: --data must be one LeRobot root (its indices are the order)", file=sys.stderr)
        return 2
    frames = [e.frames for e in episodes]
    signs, medians, similarity = signatures(frames, ids, args.reference, args.max_shift, width=args.width)
    starts = boundaries(signs, args.min_shift, args.min_novelty)
    edges = [0, *starts, len(signs)]
    sessions = [format_episodes(ids[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    result = {
        "data": args.paths,
        "command": "python -m astra_ros.data.sessions " + " ".join(sys.argv[1:] if argv is None else argv),
        "rule": f"camera offset change >= {args.min_shift} px and novelty >= {args.min_novelty} "
        f"(width {args.width}) at {args.size}x{args.size}",
        "reference": f"median of the last {args.reference} episodes' median frames",
        "sessions": sessions,
        "episodes": [asdict(s) for s in signs],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot is not None:
        plot(args.plot, signs, medians, similarity, starts)
    print(f"sessions: {sessions} (wrote {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
