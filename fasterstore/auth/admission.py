"""
Admitting a request: the one place that decides who is asking and what of
the request may be acted on.

L{admit} runs once a request's head is complete, before any handler and
before any body byte is read.  It establishes the signer (SigV4 header or
presigned, SigV2 header or presigned; L{fasterstore.auth.postpolicy} does
the same for browser forms once their fields are in) and then refuses what
the signature does not cover:

  - an C{x-amz-*} header that a SigV4 signature's C{SignedHeaders} does not
    name (SigV2 signs every one of them by construction);
  - a sub-resource that selects an operation but is not part of SigV2's
    canonical resource, so that an unsigned query parameter cannot turn a
    presigned read into another operation.

The body is admitted by L{fasterstore.auth.integrity}: bounded, and checked
against every digest the signed head declares before a handler sees it.
Tests: tests/unit/test_admission.py.
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Iterable, Mapping, Optional

from fasterstore.auth import sigv2, sigv4
from fasterstore.auth.canonical import RequestHead, header, queryParameters
from fasterstore.auth.identity import Authenticated, Credentials
from fasterstore.errors import S3Error

#: C{x-amz-*} headers a SigV4 signature binds without naming them: the
#: payload hash is a line of the canonical request itself.  (A presigned
#: URL that does not name it ignores it: the payload is then unsigned.)
BOUND_WITHOUT_NAMING = frozenset({"x-amz-content-sha256"})

_ONE_AUTH = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)
_NOT_SIGNED = "There were headers present in the request which were not signed"


def admit(
    head: RequestHead,
    lookup: Callable[[str], Optional[Credentials]],
    region: str,
    now: float,
    subresources: FrozenSet[str],
) -> Optional[Authenticated]:
    """
    Authenticate a request from its head and refuse what its signature does
    not cover.

    @param subresources: the query parameters that select an S3 operation.
    @return: C{None} for an anonymous request, else who signed it and what
        the body must satisfy.
    @raise S3Error: for a malformed, expired or wrong signature, or for
        anything acted on that the signature does not cover.
    """
    auth = authenticate(head, lookup, region, now)
    if auth is not None:
        requireSigned(head, auth, subresources)
    return auth


def requireSigned(head: RequestHead, auth: Authenticated, subresources: FrozenSet[str]) -> None:
    """
    Refuse a request carrying an C{x-amz-*} header or an operation-selecting
    query parameter that C{auth}'s signature does not cover.

    @raise S3Error: C{AccessDenied}, naming what was not signed.
    """
    if auth.signedHeaders is not None:
        refuseUnsigned(head.headers, auth.signedHeaders | BOUND_WITHOUT_NAMING)
    if auth.signedSubresources is not None:
        query = head.query if head.query is not None else queryParameters(head.rawQuery)
        unsigned = sorted(name for name in query if name in subresources and name not in auth.signedSubresources)
        if unsigned:
            raise S3Error(
                "AccessDenied",
                f"Signature Version 2 does not sign the {unsigned[0]} sub-resource; "
                "sign this request with Signature Version 4.",
            )


def refuseUnsigned(headers: Iterable[str], signed: FrozenSet[str]) -> None:
    """
    Refuse any C{x-amz-*} header name in C{headers} that is not in C{signed}
    (lower-case names).  Browser form uploads pass an empty C{signed}: their
    policy covers form fields, never request headers.
    """
    unsigned = sorted(name for name in headers if name.startswith("x-amz-") and name not in signed)
    if unsigned:
        raise S3Error("AccessDenied", _NOT_SIGNED, extra={"HeadersNotSigned": ", ".join(unsigned)})


def authenticate(
    head: RequestHead, lookup: Callable[[str], Optional[Credentials]], region: str, now: float
) -> Optional[Authenticated]:
    """
    Check a request's signature, whichever of the four forms it takes.

    @param lookup: access key -> credentials, or C{None} if unknown.
    @param region: this server's region; SigV4 scopes must name it.
    @param now: the current POSIX time.
    @return: C{None} for an anonymous request (no C{Authorization} header,
        no authentication query parameters), else who signed it and what
        the body must satisfy.
    @raise S3Error: for any malformed, expired or wrong signature.
    """
    authorization = header(head, "authorization")
    params: Mapping[str, str]
    if head.query is not None:
        params = head.query
    else:
        params = queryParameters(head.rawQuery) if head.rawQuery else {}
    v4Query = any(name in params for name in sigv4.V4_QUERY_PARAMS)
    v2Query = any(name in params for name in ("AWSAccessKeyId", "Signature"))
    if (authorization is not None) + v4Query + v2Query > 1:
        raise S3Error("InvalidArgument", _ONE_AUTH)
    if authorization is not None:
        algorithm = sigv4.ALGORITHM
        if authorization.startswith(algorithm) and (
            len(authorization) == len(algorithm) or authorization[len(algorithm)].isspace()
        ):
            return sigv4.authenticateHeader(head, authorization, lookup, region, now)
        if authorization.startswith("AWS "):
            return sigv2.authenticateHeader(head, authorization, lookup, now)
        if authorization.startswith("AWS4-ECDSA-P256-SHA256"):
            raise S3Error("NotImplemented", "AWS Signature Version 4A is not supported.")
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            extra={"ArgumentName": "Authorization", "ArgumentValue": authorization},
        )
    if v4Query:
        return sigv4.authenticateQuery(head, params, lookup, region, now)
    if v2Query:
        return sigv2.authenticateQuery(head, params, lookup, now)
    return None
