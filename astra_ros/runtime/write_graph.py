"""The write-only variant of a step graph, derived from its (verified) bytes when it is loaded.

Writing a context frame into the history needs only the frame's keys/values of every layer: not the
last block's attention and MLP, nor the final layer, nor the cache keys/values of the last layer.
ONNX Runtime runs every node of a graph whatever outputs a call asks for, so the runtime keeps a
second session on the step graph cut down to ``new_keys`` / ``new_values`` (nodes and initializers
that do not lead to them dropped). It is derived from the same file, so it needs no file or hash of
its own and older exports get it too. Its inputs keep the step graph's names (unused ones included:
feeds are built from each session's own input names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from astra_ros.runtime.sidecar import ENTRY_OUTPUTS


def prune_to_outputs(model_bytes: bytes, outputs: tuple[str, ...] = ENTRY_OUTPUTS) -> bytes:
    """The ONNX model ``model_bytes`` with only ``outputs`` and the nodes / initializers they need."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    have = {o.name for o in graph.output}
    missing = [n for n in outputs if n not in have]
    if missing:
        raise ValueError(f"graph outputs {sorted(have)} lack {missing}; expected a step graph")
    needed = set(outputs)
    unused = set()
    for i in reversed(range(len(graph.node))):  # topologically sorted: walk back from the outputs
        node = graph.node[i]
        if not needed.intersection(node.output):
            unused.add(i)
            continue
        needed.update(n for n in node.input if n)
        for attr in node.attribute:  # subgraphs (If / Loop bodies) read outer names too
            for sub in (attr.g, *attr.graphs):
                needed.update(n for inner in sub.node for n in inner.input if n)
    drop(graph.node, lambda i, _: i in unused)
    drop(graph.initializer, lambda _, item: item.name not in needed)
    drop(graph.value_info, lambda _, item: item.name not in needed)
    drop(graph.output, lambda _, item: item.name not in outputs)
    return model.SerializeToString()


def drop(field: Any, unwanted: Callable[[int, Any], bool]) -> None:
    """Remove the unwanted ``(index, item)`` of a repeated protobuf field in place (no copies)."""
    for i in reversed(range(len(field))):
        if unwanted(i, field[i]):
            del field[i]


def write_only_graph(path: Path) -> bytes:
    """The write-only graph of the step graph at ``path`` (verify ``path`` first)."""
    return prune_to_outputs(Path(path).read_bytes())
