"""
Who a request speaks for: access keys and their owners, and what a checked
signature established about a request.
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Optional

import attrs

from fasterstore.auth.chunked import ChunkSigner
from fasterstore.auth.payload import PayloadMode
from fasterstore.errors import S3Error


@attrs.frozen
class Credentials:
    """
    One access key and the identity it authenticates.

    @ivar owner: the canonical user id.
    @ivar admin: whether it may use the node's admin API
        (C{/_fasterstore/admin/...}).
    """

    accessKey: str
    secretKey: str = attrs.field(repr=False)
    owner: str
    displayName: str
    admin: bool = False


@attrs.frozen
class Authenticated:
    """
    A request whose signature checked out.

    @ivar payloadSHA256: the expected lower-case hex digest of the body when
        C{payload} is L{PayloadMode.SIGNED}, else C{None}.
    @ivar chunkSigner: set for L{PayloadMode.STREAMING_SIGNED} and
        L{PayloadMode.STREAMING_SIGNED_TRAILER}.
    @ivar presigned: whether the credentials came from the query string.
    @ivar signedHeaders: the header names the signature covers, or None
        when the scheme signs every C{x-amz-*} header (SigV2).
    @ivar signedSubresources: the query parameters the signature covers, or
        None when it covers the whole query (SigV4).
    """

    credentials: Credentials
    payload: PayloadMode
    payloadSHA256: Optional[str]
    chunkSigner: Optional[ChunkSigner]
    presigned: bool
    signedHeaders: Optional[FrozenSet[str]] = None
    signedSubresources: Optional[FrozenSet[str]] = None


def lookupCredentials(lookup: Callable[[str], Optional[Credentials]], accessKey: str) -> Credentials:
    """The credentials of C{accessKey}, or C{InvalidAccessKeyId}."""
    credentials = lookup(accessKey)
    if credentials is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": accessKey})
    return credentials

