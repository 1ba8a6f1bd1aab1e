"""
What a request promises about its body (C{x-amz-content-sha256}).
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Optional, Tuple

from fasterstore.errors import S3Error

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class PayloadMode(enum.Enum):
    """
    What the client promised about the body, from C{x-amz-content-sha256}.
    """

    #: C{x-amz-content-sha256} is the hex SHA-256 the body must match.
    SIGNED = "signed"
    UNSIGNED = "UNSIGNED-PAYLOAD"
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

    @property
    def streaming(self) -> bool:
        """Whether the body is aws-chunked framed."""
        return self.value.startswith("STREAMING-")

    @property
    def trailer(self) -> bool:
        """Whether the aws-chunked body ends with trailing headers."""
        return self.value.endswith("-TRAILER")


_MODES_BY_VALUE = {m.value: m for m in PayloadMode if m is not PayloadMode.SIGNED}


# ----------------------------------------------------------------- payload


def parsePayloadMode(value: Optional[str], default: PayloadMode = PayloadMode.SIGNED) -> Tuple[PayloadMode, Optional[str]]:
    """
    Interpret an C{x-amz-content-sha256} value.

    @param value: the header value, or C{None} if it is absent.
    @param default: the mode for an absent header: L{PayloadMode.SIGNED}
        means "the SHA-256 of an empty body" (MinIO's reading of SigV4).
    @return: the mode and, for L{PayloadMode.SIGNED}, the lower-case hex
        digest the body must match.
    @raise S3Error: C{InvalidArgument} for anything else.
    """
    if value is None:
        if default is PayloadMode.SIGNED:
            return PayloadMode.SIGNED, EMPTY_SHA256
        return default, None
    mode = _MODES_BY_VALUE.get(value)
    if mode is not None:
        return mode, None
    if _HEX64.match(value):
        return PayloadMode.SIGNED, value.lower()
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
        "or a valid sha256 value.",
        extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value},
    )

