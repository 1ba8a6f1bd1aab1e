"""
The reserved C{/_fasterstore/} paths: health checks, metrics and the admin
API.

Bucket names cannot contain C{_}, so these never shadow a bucket.  Health
and metrics need no credentials: load balancers and Prometheus scrape them.
C{/_fasterstore/admin/...} needs a request signed by an admin account's key
(checked before a handler runs, in L{fasterstore.s3.resource}).
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Dict, Optional

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import finish

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call


def _send(request: Request, status: int, contentType: bytes, body: bytes) -> None:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.setHeader(b"Cache-Control", b"no-store")
    request.write(body)
    finish(request)


def notReadyReason(ctx: S3Context) -> Optional[str]:
    """Why the node cannot accept writes right now, or None if it can."""
    if ctx.draining:
        return "shutting down"
    if not ctx.metadata.ready:
        return "metadata store not open"
    if ctx.metadata.failing is not None:
        # Asked while failing: try a commit, so readiness comes back by
        # itself even when no client write arrives to succeed.
        ctx.metadata.probe()
        return "metadata commits failing: " + ctx.metadata.failing
    if ctx.space is not None:
        return ctx.space.reason()
    return None


async def storageReport(ctx: S3Context) -> Dict[str, object]:
    """What the store holds and what compaction has done (see docs/operations.md)."""
    totals = await ctx.metadata.totals()
    report: Dict[str, object] = {
        "objects": totals.objects,
        "objectBytes": totals.logicalBytes,
        "blobBytes": totals.liveBytes,
    }
    if ctx.storageReport is not None:
        report.update(await ctx.storageReport())
    if ctx.space is not None:
        report["freeBytes"] = ctx.space.free()
        report["reserveBytes"] = ctx.space.reserve
    return report


async def handle(ctx: S3Context, call: "Call", request: Request) -> None:
    """Serve a reserved path."""
    if request.method not in (b"GET", b"HEAD"):
        raise S3Error("MethodNotAllowed")
    path = call.route.key or ""
    if path == "health/live":
        _send(request, 200, b"text/plain", b"live\n")
    elif path == "health/ready":
        reason = notReadyReason(ctx)
        if reason is None:
            _send(request, 200, b"text/plain", b"ready\n")
        else:
            _send(request, 503, b"text/plain", b"not ready: " + reason.encode("utf-8", "replace") + b"\n")
    elif path == "metrics":
        _send(request, 200, CONTENT_TYPE_LATEST.encode(), ctx.metrics.render())
    elif path == "admin/storage":
        _send(request, 200, b"application/json", json.dumps(await storageReport(ctx), indent=1).encode() + b"\n")
    else:
        raise S3Error("NoSuchKey", "No such reserved path.", extra={"Key": path})
