"""
Prometheus metrics, in a registry of our own (never the global one), so two
servers in one process (tests, embedding) do not collide.

Under C{--workers N} every worker process records into files of a shared
directory (prometheus_client's multiprocess mode, switched on by
C{PROMETHEUS_MULTIPROC_DIR} in the workers' environment, which the parent
sets): any worker's C{/_fasterstore/metrics} then shows the node's sums.
Gauges are the same figure seen by every worker (objects, bytes), so they
show the largest one reported.
Tests: tests/unit/test_resource.py, tests/integration/test_workers.py.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

#: The environment variable that puts prometheus_client in multiprocess mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def gauge(name: str, documentation: str, registry: CollectorRegistry, **kwargs: Any) -> Gauge:
    """A gauge that reads right whether one process or several report it."""
    return Gauge(name, documentation, registry=registry, multiprocess_mode="max", **kwargs)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric FasterStore exports.  Create one per server."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fasterstore_requests", "S3 requests by operation and status.", ["operation", "status"], registry=r
        )
        self.requestLatency = Histogram(
            "fasterstore_request_seconds", "S3 request latency by operation.", ["operation"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.errors = Counter("fasterstore_errors", "S3 error responses by code.", ["code"], registry=r)
        self.bytesIn = Counter("fasterstore_received_bytes", "Object bytes received.", registry=r)
        self.bytesOut = Counter("fasterstore_sent_bytes", "Object bytes sent.", registry=r)
        self.objects = gauge("fasterstore_objects", "Objects stored.", r)
        self.storedBytes = gauge("fasterstore_stored_bytes", "Logical bytes of stored objects.", r)
        self.fsyncLatency = Histogram(
            "fasterstore_fsync_seconds", "Duration of one group-commit fsync round.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.groupCommitBatch = Histogram(
            "fasterstore_group_commit_batch", "Writes made durable by one fsync round.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r,
        )
        self.writeErrors = Counter(
            "fasterstore_write_errors", "Object data writes that failed, by errno (enospc, eio...) or 'other'.",
            ["reason"], registry=r,
        )
        self.corruption = Counter(
            "fasterstore_corrupt_reads", "Reads that found a checksum mismatch in a segment.", registry=r
        )
        # Labelled children by (operation, status): labels() costs more
        # than the increment itself, on every request.  Operations and
        # statuses are finite sets.
        self._served: Dict[Tuple[str, int], Tuple[Any, Any]] = {}

    def served(self, operation: str, status: int, seconds: float) -> None:
        """Count one S3 request and observe its latency."""
        children = self._served.get((operation, status))
        if children is None:
            children = self._served[operation, status] = (
                self.requests.labels(operation, str(status)), self.requestLatency.labels(operation)
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The registry (the node's, under several workers) in the Prometheus text format."""
        directory = os.environ.get(MULTIPROCESS_DIR)
        if directory:
            node = CollectorRegistry()
            MultiProcessCollector(node, path=directory)
            return generate_latest(node)
        return generate_latest(self.registry)
