"""
Keeping signatures out of logs.

A presigned URL is a bearer credential until it expires: whoever reads it in
a log can replay it.  Every log line that shows a request URI shows it
through L{redactURI}.
Tests: tests/unit/test_redaction.py.
"""

from __future__ import annotations

import re

#: Query parameters that carry a signature or a session token, any case.
_SECRET = re.compile(
    rb"(?i)(?P<name>(?:^|(?<=[?&]))(?:x-amz-signature|signature|x-amz-security-token)=)[^&#]*"
)


def redactURI(uri: bytes) -> bytes:
    """C{uri} with the values of C{X-Amz-Signature}, C{Signature} and C{X-Amz-Security-Token} replaced by C{REDACTED}."""
    if b"?" not in uri:
        return uri
    path, _, query = uri.partition(b"?")
    return path + b"?" + _SECRET.sub(rb"\g<name>REDACTED", query)
