"""
AWS Signature Version 4 for S3: the C{Authorization: AWS4-HMAC-SHA256}
header and presigned URLs (C{X-Amz-Algorithm=AWS4-HMAC-SHA256&...}).

The canonical forms follow botocore's signers (C{S3SigV4Auth},
C{S3SigV4QueryAuth}) and MinIO's verifier.  Where clients disagree (how a
path or a query was encoded, which bytes a non-ASCII header value was
signed as) the canonical form is tried first and the alternatives only
after it failed, so a well-behaved request costs one HMAC; every
alternative decodes to the very request the server acts on.

Pure code: no reactor, no I/O; the time comes in as an argument.
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import re
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

import attrs

from fasterstore.auth.canonical import (
    RequestHead,
    canonicalHeaderValue,
    canonicalQuery,
    canonicalURI,
    header,
    parseQuery,
    percentDecode,
    uriEncode,
)
from fasterstore.auth.chunked import ChunkSigner
from fasterstore.auth.identity import Authenticated, Credentials, lookupCredentials
from fasterstore.auth.payload import EMPTY_SHA256, PayloadMode, parsePayloadMode
from fasterstore.errors import S3Error
from fasterstore.http import dates as httpdates
from fasterstore.numbers import INT64_MAX, parseDecimal

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"

#: Largest accepted difference between the request's clock and ours.
MAX_SKEW = 15 * 60
#: Longest lifetime of a presigned URL (one week), in seconds.
MAX_PRESIGN_EXPIRES = 604800

# ASCII digits only (\d would take any script's), matched with fullmatch.
_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")

#: The query parameters of a SigV4 presigned URL.
V4_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)

NEEDS_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_V4_QUERY_REQUIRED = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, "
    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
    "and X-Amz-Expires parameters."
)


def _hmacSHA256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@functools.lru_cache(maxsize=1024)
def signingKey(secretKey: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """
    Derive the SigV4 signing key for one day, region and service (four
    HMACs; cached, since it is the same for every request of a key that day).

    @param date: C{YYYYMMDD}.
    """
    key = _hmacSHA256(("AWS4" + secretKey).encode("utf-8"), date.encode("ascii"))
    key = _hmacSHA256(key, region.encode("utf-8"))
    key = _hmacSHA256(key, service.encode("utf-8"))
    return _hmacSHA256(key, TERMINATOR.encode("ascii"))



# ------------------------------------------------------------------- dates


def parseAmzDate(s: str) -> float:
    """
    Parse an ISO 8601 basic timestamp (C{20130524T000000Z}) into POSIX time.

    @raise ValueError: if C{s} is not exactly that format.
    """
    match = _AMZ_DATE.fullmatch(s)
    when = None if match is None else httpdates.utcTimestamp(*(int(g) for g in match.groups()))
    if when is None:
        raise ValueError(f"not an x-amz-date timestamp: {s!r}")
    return when


def formatAmzDate(t: float) -> str:
    """Format POSIX time as an ISO 8601 basic timestamp (C{x-amz-date})."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def parseHTTPDate(s: str) -> float:
    """
    Parse a C{Date} header for signing: an HTTP date, or an C{x-amz-date}
    style timestamp as MinIO accepts.

    @raise ValueError: if C{s} is neither.
    """
    try:
        return parseAmzDate(s.strip())
    except ValueError:
        pass
    parsed = httpdates.parseHTTPDate(s)
    if parsed is None:
        raise ValueError(f"not an HTTP date: {s!r}")
    return parsed


def isoTime(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def checkSkew(requestTime: float, now: float) -> None:
    if abs(now - requestTime) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={
                "RequestTime": isoTime(requestTime),
                "ServerTime": isoTime(now),
                "MaxAllowedSkewMilliseconds": str(MAX_SKEW * 1000),
            },
        )


# -------------------------------------------------------------- SigV4 core


@attrs.frozen
class CredentialScope:
    """The parts of a SigV4 credential: C{AK/YYYYMMDD/region/service/aws4_request}."""

    accessKey: str
    date: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def parseCredential(value: str, fail: Callable[[str], S3Error], region: str) -> CredentialScope:
    """
    Split C{AK/YYYYMMDD/region/s3/aws4_request} (the key may hold C{/}).
    """
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise fail(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    scope = CredentialScope(*parts)
    if not re.fullmatch(r"[0-9]{8}", scope.date):
        raise fail(f"incorrect date format \"{scope.date}\". This date in the credential must be in the format \"yyyyMMdd\".")
    if scope.service != SERVICE:
        raise fail(f'incorrect service "{scope.service}". This endpoint belongs to "{SERVICE}".')
    if scope.terminator != TERMINATOR:
        raise fail(f'incorrect terminal "{scope.terminator}". This endpoint uses "{TERMINATOR}".')
    if scope.region != region:
        error = fail(f"the region '{scope.region}' is wrong; expecting '{region}'")
        error.extra["Region"] = region
        raise error
    return scope


def _parseSignedHeaders(value: str, fail: Callable[[str], S3Error]) -> List[str]:
    names = value.split(";")
    if not value or not all(names):
        raise fail("the SignedHeaders are mal-formed.")
    names = [name.strip().lower() for name in names]
    if "host" not in names:
        raise fail("the SignedHeaders must include host.")
    return names


def _headerBlocks(head: RequestHead, signedHeaders: Sequence[str]) -> Iterator[bytes]:
    """
    The canonical headers and signed-headers lines, as bytes.

    Header values reach us latin-1 decoded; botocore signs them as the UTF-8
    of the text it sent, other clients as the raw bytes on the wire.  The
    first is yielded first; the second only when it differs.
    """
    lines = []
    for name in signedHeaders:
        values = head.headers.get(name)
        if not values and name == "expect":
            # Some servers drop Expect before the application sees it; MinIO
            # assumes its only legal value.
            values = ["100-continue"]
        lines.append(name + ":" + canonicalHeaderValue(values or ()))
    block = "\n".join(lines) + "\n\n" + ";".join(signedHeaders)
    yield block.encode("utf-8")
    try:
        raw = block.encode("latin-1")
    except UnicodeEncodeError:
        return
    if not block.isascii():
        yield raw


def _canonicalRequests(
    head: RequestHead, signedHeaders: Sequence[str], payloadHash: str, exclude: Sequence[str]
) -> Iterator[bytes]:
    """
    Candidate canonical requests, the standard S3 one first.

    The alternatives: the path exactly as sent (for clients that encode
    more or less than SigV4 asks), the query's pairs sorted as sent
    (botocore signs a query it finds already in the URL that way), and raw
    header bytes (see L{_headerBlocks}).  Each signs the very bytes the
    server acts on, so none lets a signed request be rewritten to mean
    something else; that is why a C{+} is never tried as a literal C{+}
    (C{%2B}): the server reads it as a space.
    """
    method = head.method.upper().encode("ascii", "replace")
    payload = payloadHash.encode("latin-1", "replace")
    headerBlocks = _headerBlocks(head, signedHeaders)
    standardHeaders = next(headerBlocks)
    paths = [canonicalURI(head.rawPath)]
    queries = [canonicalQuery(head.rawQuery, exclude)]
    # Nearly every request matches this one: the alternatives below are
    # only built when it does not.
    yield b"\n".join([method, paths[0], queries[0], standardHeaders, payload])
    if head.rawPath and head.rawPath != paths[0]:
        paths.append(head.rawPath)
    excluded = {name.encode("utf-8") for name in exclude}
    asSent = b"&".join(
        name + b"=" + value
        for name, value in sorted(parseQuery(head.rawQuery))
        if percentDecode(name, True) not in excluded
    )
    if asSent not in queries:
        queries.append(asSent)
    blocks = [standardHeaders, *headerBlocks]
    for headerBlock, query, path in itertools.product(blocks, queries, paths):
        if (headerBlock, query, path) != (standardHeaders, queries[0], paths[0]):
            yield b"\n".join([method, path, query, headerBlock, payload])


def _verifyV4(
    head: RequestHead,
    credentials: Credentials,
    scope: CredentialScope,
    timestamp: str,
    signedHeaders: Sequence[str],
    payloadHash: str,
    signature: str,
    exclude: Sequence[str],
) -> bytes:
    """
    Check a SigV4 signature against each candidate canonical request.

    @return: the signing key, for chunk signatures.
    @raise S3Error: C{SignatureDoesNotMatch}, with the standard canonical
        request and string to sign to help the client find its mistake.
    """
    key = signingKey(credentials.secretKey, scope.date, scope.region, scope.service)
    provided = signature.encode("latin-1", "replace")
    prefix = f"{ALGORITHM}\n{timestamp}\n{scope.scope}\n".encode("ascii", "replace")
    first: Optional[Tuple[bytes, bytes]] = None
    for canonical in _canonicalRequests(head, signedHeaders, payloadHash, exclude):
        stringToSign = prefix + hashlib.sha256(canonical).hexdigest().encode("ascii")
        expected = hmac.new(key, stringToSign, hashlib.sha256).hexdigest().encode("ascii")
        if hmac.compare_digest(expected, provided):
            return key
        if first is None:
            first = (canonical, stringToSign)
    assert first is not None
    raise S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": credentials.accessKey,
            "StringToSign": first[1].decode("latin-1"),
            "SignatureProvided": signature,
            "CanonicalRequest": first[0].decode("latin-1"),
        },
    )


def _chunkSigner(payload: PayloadMode, key: bytes, timestamp: str, scope: CredentialScope, signature: str) -> Optional[ChunkSigner]:
    if payload in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        return ChunkSigner(key, timestamp, scope.scope, signature.lower())
    return None


def authenticateHeader(
    head: RequestHead, authorization: str, lookup: Callable[[str], Optional[Credentials]], region: str, now: float
) -> Authenticated:
    def malformed(detail: str) -> S3Error:
        return S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; " + detail)

    fields: Dict[str, str] = {}
    for component in re.split(r"[\s,]+", authorization[len(ALGORITHM) :].strip()):
        if not component:
            continue
        name, sep, value = component.partition("=")
        if not sep or name not in ("Credential", "SignedHeaders", "Signature") or name in fields:
            raise malformed(f"unexpected component {component!r}.")
        fields[name] = value
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in fields:
            raise malformed(f"missing {name}.")

    scope = parseCredential(fields["Credential"], malformed, region)
    signedHeaders = _parseSignedHeaders(fields["SignedHeaders"], malformed)
    signature = fields["Signature"]
    if not signature:
        raise malformed("the Signature is empty.")

    amzDate = header(head, "x-amz-date")
    httpDate = header(head, "date")
    try:
        if amzDate is not None:
            timestamp = amzDate
            requestTime = parseAmzDate(timestamp)
        elif httpDate is not None:
            requestTime = parseHTTPDate(httpDate)
            timestamp = formatAmzDate(requestTime)
        else:
            raise ValueError("no date")
    except ValueError:
        raise S3Error("AccessDenied", NEEDS_DATE)
    if scope.date != timestamp[:8]:
        raise malformed("Invalid credential date. Date is not the same as X-Amz-Date.")

    contentSHA256 = header(head, "x-amz-content-sha256")
    payload, payloadSHA256 = parsePayloadMode(contentSHA256)

    credentials = lookupCredentials(lookup, scope.accessKey)
    checkSkew(requestTime, now)
    key = _verifyV4(
        head,
        credentials,
        scope,
        timestamp,
        signedHeaders,
        contentSHA256 if contentSHA256 is not None else EMPTY_SHA256,
        signature.lower(),
        (),
    )
    return Authenticated(
        credentials, payload, payloadSHA256, _chunkSigner(payload, key, timestamp, scope, signature),
        presigned=False, signedHeaders=frozenset(signedHeaders),
    )


def authenticateQuery(
    head: RequestHead, params: Mapping[str, str], lookup: Callable[[str], Optional[Credentials]], region: str, now: float
) -> Authenticated:
    def queryError(detail: str) -> S3Error:
        return S3Error("AuthorizationQueryParametersError", detail)

    def credentialError(detail: str) -> S3Error:
        return queryError("Error parsing the X-Amz-Credential parameter; " + detail)

    if not all(params.get(name) for name in V4_QUERY_PARAMS):
        raise queryError(_V4_QUERY_REQUIRED)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise queryError(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    scope = parseCredential(params["X-Amz-Credential"], credentialError, region)
    timestamp = params["X-Amz-Date"]
    try:
        requestTime = parseAmzDate(timestamp)
    except ValueError:
        raise queryError("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if scope.date != timestamp[:8]:
        raise credentialError("Invalid credential date. Date is not the same as X-Amz-Date.")
    expires = parseDecimal(
        params["X-Amz-Expires"], maximum=INT64_MAX, error=lambda: queryError("X-Amz-Expires should be a number")
    )
    if expires < 1:
        raise queryError("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise queryError("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    signedHeaders = _parseSignedHeaders(params["X-Amz-SignedHeaders"], queryError)
    signature = params["X-Amz-Signature"]

    contentSHA256 = header(head, "x-amz-content-sha256")
    if contentSHA256 is not None and "x-amz-content-sha256" in signedHeaders:
        payload, payloadSHA256 = parsePayloadMode(contentSHA256)
        payloadHash = contentSHA256
    else:
        payload, payloadSHA256 = PayloadMode.UNSIGNED, None
        payloadHash = PayloadMode.UNSIGNED.value

    credentials = lookupCredentials(lookup, scope.accessKey)
    if requestTime - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if now > requestTime + expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra={
                "X-Amz-Expires": str(expires),
                "Expires": isoTime(requestTime + expires),
                "ServerTime": isoTime(now),
            },
        )
    key = _verifyV4(
        head, credentials, scope, timestamp, signedHeaders, payloadHash, signature.lower(), ("X-Amz-Signature",)
    )
    return Authenticated(
        credentials, payload, payloadSHA256, _chunkSigner(payload, key, timestamp, scope, signature),
        presigned=True, signedHeaders=frozenset(signedHeaders),
    )


def presignV4(method: str, url: str, credentials: Credentials, region: str, expires: int, now: float) -> str:
    """
    Presign C{url} with SigV4 query parameters, signing only C{host}.

    Produces what botocore's C{S3SigV4QueryAuth} does, for benchmarks, tests
    and any server-side need for a shareable link.

    @param url: an absolute URL whose path and query are already
        percent-encoded as they will be sent.
    @param expires: lifetime in seconds, 1 to 604800.
    @param now: POSIX time of signing.
    @return: the full presigned URL.
    """
    parts = urlsplit(url)
    host = _hostFromURL(parts.scheme, parts.netloc)
    timestamp = formatAmzDate(now)
    scope = CredentialScope(credentials.accessKey, timestamp[:8], region, SERVICE, TERMINATOR)
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.accessKey}/{scope.scope}"),
        ("X-Amz-Date", timestamp),
        ("X-Amz-Expires", str(int(expires))),
        ("X-Amz-SignedHeaders", "host"),
    ]
    encoded = "&".join(
        uriEncode(name.encode("utf-8")).decode("ascii") + "=" + uriEncode(value.encode("utf-8")).decode("ascii")
        for name, value in auth
    )
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    rawPath = parts.path.encode("utf-8") or b"/"
    canonical = b"\n".join(
        [
            method.upper().encode("ascii"),
            canonicalURI(rawPath),
            canonicalQuery(query.encode("utf-8")),
            b"host:" + host.encode("utf-8") + b"\n",
            b"host",
            PayloadMode.UNSIGNED.value.encode("ascii"),
        ]
    )
    stringToSign = f"{ALGORITHM}\n{timestamp}\n{scope.scope}\n{hashlib.sha256(canonical).hexdigest()}"
    key = signingKey(credentials.secretKey, scope.date, region)
    signature = hmac.new(key, stringToSign.encode("ascii"), hashlib.sha256).hexdigest()
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{query}&X-Amz-Signature={signature}", parts.fragment))


def _hostFromURL(scheme: str, netloc: str) -> str:
    """The C{Host} header a client sends: default ports are left out."""
    hostport = netloc.rpartition("@")[2]
    default = {"http": ":80", "https": ":443"}.get(scheme.lower())
    if default and hostport.endswith(default):
        return hostport[: -len(default)]
    return hostport
