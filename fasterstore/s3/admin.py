"""
The reserved C{/_fasterstore/} paths: health checks and metrics.

Bucket names cannot contain C{_}, so these never shadow a bucket.  They need
no credentials: load balancers and Prometheus scrape them.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


async def handle(ctx: S3Context, call: "Call", request: Request) -> None:
    """Serve a reserved path."""
    if request.method not in (b"GET", b"HEAD"):
        raise S3Error("MethodNotAllowed")
    path = call.route.key or ""
    if path == "health/live":
        _send(request, 200, b"text/plain", b"live\n")
    elif path == "health/ready":
        if ctx.engine.ready and not ctx.draining:
            _send(request, 200, b"text/plain", b"ready\n")
        else:
            _send(request, 503, b"text/plain", b"not ready\n")
    elif path == "metrics":
        _send(request, 200, CONTENT_TYPE_LATEST.encode(), ctx.metrics.render())
    else:
        raise S3Error("NoSuchKey", "No such reserved path.", extra={"Key": path})
