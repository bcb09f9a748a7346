"""The world-model node's ``/diagnostics``: ``DiagnosticStatus`` messages from the session's
statistics and the levels judged by ``ros/health.py`` (``NodeHealth``, ROS-free)."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from astra_ros.ros.health import NodeHealth
from astra_ros.runtime.session import StreamSession


def idle_status(name: str, hardware_id: str, configured: bool) -> DiagnosticStatus:
    """The status of a node that does not stream: OK, 'inactive' or 'unconfigured'."""
    message = "inactive" if configured else "unconfigured"
    return DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message=message, hardware_id=hardware_id)


def session_statuses(
    prefix: str, session: StreamSession, health: NodeHealth, modality: str, min_history: int
) -> list[DiagnosticStatus]:
    """The active node's statuses: ``"<prefix>: world model"`` (level from recent problems and
    warm-up; backend, rates, latency, counts), then one per input (``"<prefix>: image input"``, ...).
    Advances the health windows."""
    info, stats = session.backend.info, session.stats()
    statuses = health.statuses(stats.counts, stats.history, min_history, stats.drop_reasons)
    statuses["node"].values = {
        "backend": info.backend,
        "model_id": info.model_id,
        "modality": modality,
        "input_rate_hz": f"{stats.input_rate_hz:.2f}",
        "prediction_rate_hz": f"{stats.prediction_rate_hz:.2f}",
        "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
        "latency_p99_ms": f"{stats.latency_p99_ms:.2f}",
        "ingest_p50_ms": f"{stats.ingest_p50_ms:.2f}",
        "predict_p50_ms": f"{stats.predict_p50_ms:.2f}",
        "outside_backend_p50_ms": f"{stats.outside_backend_p50_ms:.2f}",
        "cache_fill": f"{stats.history}/{stats.cache_size}",
        "queue_length": str(stats.queue_length),
        **{key: str(count) for key, count in sorted(stats.counts.items())},
        **statuses["node"].values,
    }
    return [
        DiagnosticStatus(
            level=bytes([int(status.level)]),
            name=f"{prefix}: world model" if key == "node" else f"{prefix}: {key}",
            message=status.message,
            hardware_id=f"{info.backend}/{info.model_id}",
            values=[KeyValue(key=k, value=v) for k, v in status.values.items()],
        )
        for key, status in statuses.items()
    ]


def diagnostic_array(statuses: list[DiagnosticStatus], stamp: Time) -> DiagnosticArray:
    """The ``/diagnostics`` message, stamped ``stamp`` (now: diagnostics are about now, not data)."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = statuses
    return array
