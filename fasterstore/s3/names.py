"""
What S3 accepts as a bucket name, an object key and user metadata.

Bucket names follow the AWS rules for general purpose buckets.  Because
they never contain ``_``, the reserved ``/_fasterstore/`` path can never
name a bucket.

Tests: tests/unit/test_names.py.
"""

from __future__ import annotations

import re
from typing import Iterable, Tuple

from fasterstore.errors import ERRORS, S3Error

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_USER_METADATA_BYTES",
    "METADATA_TOO_LARGE",
    "validateBucketName",
    "validateKey",
    "userMetadataSize",
    "validateUserMetadata",
]

MAX_KEY_BYTES = 1024
MAX_USER_METADATA_BYTES = 2048

# AWS answers oversized user metadata with 400 "MetadataTooLarge".  That code
# is not (yet) in the shared ERRORS table and S3Error refuses unknown codes,
# so fall back to InvalidArgument until it is added there.
METADATA_TOO_LARGE = (
    "MetadataTooLarge" if "MetadataTooLarge" in ERRORS else "InvalidArgument"
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _invalidBucket(name: str, why: str) -> S3Error:
    """
    The error for a bad bucket name; AWS echoes the name in
    ``<BucketName>``.
    """
    return S3Error(
        "InvalidBucketName",
        f"The specified bucket is not valid: {why}.",
        extra={"BucketName": name},
    )


def validateBucketName(name: str) -> None:
    """
    Refuse a name AWS would refuse for a new general purpose bucket.

    @raise S3Error: C{InvalidBucketName}.
    """
    # fullmatch with an ASCII-only class: no "\n" sneaking past "$".
    if not 3 <= len(name) <= 63:
        raise _invalidBucket(name, "length must be between 3 and 63")
    if _BUCKET.fullmatch(name) is None:
        raise _invalidBucket(
            name,
            "only lowercase letters, digits, '.' and '-' are allowed, "
            "starting and ending with a letter or digit",
        )
    if ".." in name:
        raise _invalidBucket(name, "adjacent periods are not allowed")
    if _IP_ADDRESS.fullmatch(name) is not None:
        raise _invalidBucket(name, "must not be formatted as an IP address")
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise _invalidBucket(name, f"the prefix {prefix!r} is reserved")
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise _invalidBucket(name, f"the suffix {suffix!r} is reserved")


def validateKey(key: str) -> None:
    """
    Refuse an object key S3 cannot store: empty, not representable as UTF-8
    (lone surrogates left by a lenient URI decoder), or longer than 1024
    bytes of UTF-8.

    @raise S3Error: C{InvalidArgument} or C{KeyTooLongError}.
    """
    if not key:
        raise S3Error("InvalidArgument", "Object key must not be empty.")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise S3Error("InvalidArgument", "Object key is not valid UTF-8.") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError")


def userMetadataSize(pairs: Iterable[Tuple[str, str]]) -> int:
    """
    The size S3 charges against the user metadata limit: the UTF-8 bytes of
    every name and value.
    """
    return sum(
        len(name.encode("utf-8", "surrogatepass"))
        + len(value.encode("utf-8", "surrogatepass"))
        for name, value in pairs
    )


def validateUserMetadata(pairs: Iterable[Tuple[str, str]]) -> None:
    """
    Refuse user metadata over the 2 KB PUT limit.

    @param pairs: names as stored (lower-cased, without ``x-amz-meta-``)
        and their values.
    @raise S3Error: L{METADATA_TOO_LARGE}.
    """
    if userMetadataSize(pairs) > MAX_USER_METADATA_BYTES:
        raise S3Error(
            METADATA_TOO_LARGE,
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
