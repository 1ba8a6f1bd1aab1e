"""
Which bucket, key and sub-resource a request addresses.

Routing reads the raw request URI, never twisted.web's C{postpath} (which
unquotes segment by segment, so C{%2F} inside a key would be lost), and
strips the path segments of the mount point when the S3 resource is mounted
below the root of someone else's Site.
Tests: tests/unit/test_routing.py.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence
from urllib.parse import unquote

import attrs

from fasterstore.auth.canonical import queryParameters
from fasterstore.errors import S3Error


@attrs.frozen
class Route:
    """
    What a request addresses.

    @ivar bucket: bucket name, or None for the service (ListBuckets).
    @ivar key: object key, or None for the bucket itself.
    @ivar query: decoded query parameters (a name without C{=} maps to
        C{""}; a repeated name is refused, see
        L{fasterstore.auth.canonical.queryParameters}).
    @ivar rawPath: the path as the client sent it (for signatures).
    @ivar localPath: C{rawPath} below the mount point of the S3 resource.
    @ivar rawQuery: the query string as the client sent it.
    @ivar virtualHost: True when the bucket came from the Host header.
    """

    bucket: Optional[str]
    key: Optional[str]
    query: Dict[str, str]
    rawPath: bytes
    rawQuery: bytes
    virtualHost: bool
    localPath: bytes = b"/"

    @property
    def resource(self) -> str:
        """The S3 resource name used in error documents."""
        if self.bucket is None:
            return "/"
        if self.key is None:
            return "/" + self.bucket
        return "/" + self.bucket + "/" + self.key


def _decode(raw: str) -> str:
    try:
        raw.encode("ascii")
    except UnicodeEncodeError:
        raw = raw.encode("latin-1").decode("utf-8", "strict")
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from None


def hostBucket(host: Optional[bytes], domains: Sequence[str]) -> Optional[str]:
    """The bucket named by a virtual-hosted-style C{Host}, if any."""
    if not host or not domains:
        return None
    name = host.decode("latin-1").lower()
    if name.startswith("["):
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    for domain in domains:
        suffix = "." + domain.lower()
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def route(uri: bytes, mountDepth: int, host: Optional[bytes], domains: Sequence[str]) -> Route:
    """
    Route a request.

    @param uri: the request URI as received (path and query).
    @param mountDepth: how many leading path segments belong to the mount
        point of the S3 resource (0 at the root of a Site).
    @param host: the Host header.
    @param domains: base domains for virtual-hosted-style addressing.
    """
    rawPath, _, rawQuery = uri.partition(b"?")
    if not rawPath.startswith(b"/"):
        # Absolute-form request targets: keep only the path.
        if b"://" in rawPath:
            rest = rawPath.split(b"://", 1)[1]
            rawPath = b"/" + rest.partition(b"/")[2]
        else:
            raise S3Error("InvalidURI", "Couldn't parse the specified URI.")
    local = rawPath
    if mountDepth:
        segments = rawPath.split(b"/", mountDepth + 1)
        local = b"/" + (segments[mountDepth + 1] if len(segments) > mountDepth + 1 else b"")
    query = queryParameters(rawQuery)
    path = _decode(local.decode("latin-1"))
    virtual = hostBucket(host, domains)
    if virtual is not None:
        key = path[1:]
        return Route(virtual, key or None, query, rawPath, rawQuery, True, local)
    bucket, slash, key = path[1:].partition("/")
    if not bucket:
        return Route(None, None, query, rawPath, rawQuery, False, local)
    return Route(bucket, key if key else None, query, rawPath, rawQuery, False, local)
