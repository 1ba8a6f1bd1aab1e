"""
Authenticate an S3 request from its head, before any body byte is read.

The HTTP layer calls L{authenticate} once the request line and headers are
complete.  It answers who is asking (or C{None} for an anonymous request) and
what to expect of the body: a SHA-256 to check at the end, nothing, or an
aws-chunked stream whose chunk signatures L{ChunkSigner} verifies (see
L{fasterstore.s3.chunked}).

Four forms are accepted, all compared with L{hmac.compare_digest}:

  - SigV4 in the C{Authorization} header;
  - SigV4 presigned URLs (C{X-Amz-Algorithm=AWS4-HMAC-SHA256&...});
  - SigV2 presigned URLs (C{AWSAccessKeyId=...&Expires=...&Signature=...});
  - SigV2 in the C{Authorization} header (C{AWS AK:signature}).

The canonical forms follow botocore's signers (C{S3SigV4Auth},
C{S3SigV4QueryAuth}, C{HmacV1Auth}, C{HmacV1QueryAuth}) and MinIO's
verifier.  Where clients disagree (how a path or a query was encoded,
which bytes a non-ASCII header value was signed as) the canonical
form is tried first and the alternatives only after it failed, so a
well-behaved request costs one HMAC.

Pure code: no reactor, no I/O; the time comes in as an argument.
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import enum
import functools
import hashlib
import hmac
import itertools
import re
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

import attrs

from fasterstore.errors import S3Error
from fasterstore.s3 import httpdates

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

#: Largest accepted difference between the request's clock and ours.
MAX_SKEW = 15 * 60
#: Longest lifetime of a SigV4 presigned URL (one week), in seconds.
MAX_PRESIGN_EXPIRES = 604800

_AMZ_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

_V4_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_V2_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")

#: Query parameters that are part of SigV2's canonicalized resource: the
#: union of the AWS documentation's list and botocore's C{HmacV1Auth} list.
V2_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    ]
)

_ONE_AUTH = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)
_NEEDS_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_V4_QUERY_REQUIRED = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, "
    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
    "and X-Amz-Expires parameters."
)
_V2_QUERY_REQUIRED = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)


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


@attrs.frozen
class Credentials:
    """
    One access key and the identity it authenticates.

    @ivar owner: the canonical user id.
    """

    accessKey: str
    secretKey: str = attrs.field(repr=False)
    owner: str
    displayName: str


@attrs.frozen
class RequestHead:
    """
    What authentication needs of a request: everything but the body.

    @ivar method: the HTTP method, e.g. C{"GET"}.
    @ivar rawPath: the path exactly as on the request line, percent-encoded
        as sent, including any mount prefix, without the query.
    @ivar rawQuery: the raw query string after C{?}, C{b""} if none.
    @ivar headers: lower-case header name -> values (latin-1 decoded).
    @ivar virtualBucket: the bucket taken from the C{Host} header when the
        request is virtual-hosted style; SigV2's canonical resource needs it.
    @ivar query: the query already decoded as L{queryParameters} does, when
        the caller has it (the router does), so it is not parsed twice.
    """

    method: str
    rawPath: bytes
    rawQuery: bytes
    headers: Mapping[str, Sequence[str]]
    virtualBucket: Optional[str] = None
    query: Optional[Mapping[str, str]] = None


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


@attrs.frozen
class ChunkSigner:
    """
    What the aws-chunked decoder needs to verify chunk and trailer signatures.

    Each signature chains on the previous one, starting from the request's
    own signature (the seed), so chunks cannot be reordered or dropped.

    @ivar timestamp: the request's time as signed, e.g. C{20130524T000000Z}.
    @ivar scope: e.g. C{20130524/us-east-1/s3/aws4_request}.
    @ivar seedSignature: the request signature, lower-case hex.
    """

    signingKey: bytes = attrs.field(repr=False)
    timestamp: str
    scope: str
    seedSignature: str

    def chunkSignature(self, previous: str, chunkSHA256Hex: str) -> str:
        """
        The signature of one chunk whose data hashes to C{chunkSHA256Hex}.
        """
        stringToSign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.timestamp,
                self.scope,
                previous,
                EMPTY_SHA256,
                chunkSHA256Hex,
            ]
        )
        return hmac.new(self.signingKey, stringToSign.encode("ascii"), hashlib.sha256).hexdigest()

    def trailerSignature(
        self, previous: str, trailerSHA256Hex: str, algorithm: str = "AWS4-HMAC-SHA256-TRAILER"
    ) -> str:
        """
        The signature of the trailing headers, whose canonical bytes
        (C{name:value\\n} lines) hash to C{trailerSHA256Hex}.

        @param algorithm: the first line of the string to sign.  The S3
            documentation's worked example was computed with
            C{AWS4-HMAC-SHA256-PAYLOAD} here, so the decoder tries that too.
        """
        stringToSign = "\n".join([algorithm, self.timestamp, self.scope, previous, trailerSHA256Hex])
        return hmac.new(self.signingKey, stringToSign.encode("ascii"), hashlib.sha256).hexdigest()


@attrs.frozen
class Authenticated:
    """
    A request whose signature checked out.

    @ivar payloadSHA256: the expected lower-case hex digest of the body when
        C{payload} is L{PayloadMode.SIGNED}, else C{None}.
    @ivar chunkSigner: set for L{PayloadMode.STREAMING_SIGNED} and
        L{PayloadMode.STREAMING_SIGNED_TRAILER}.
    @ivar presigned: whether the credentials came from the query string.
    """

    credentials: Credentials
    payload: PayloadMode
    payloadSHA256: Optional[str]
    chunkSigner: Optional[ChunkSigner]
    presigned: bool


# ---------------------------------------------------------------- encoding

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODE = [bytes([b]) if b in _UNRESERVED else b"%%%02X" % b for b in range(256)]
_ENCODE_KEEP_SLASH = list(_ENCODE)
_ENCODE_KEEP_SLASH[ord("/")] = b"/"


_PLAIN = re.compile(rb"[A-Za-z0-9\-._~]*")
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9\-._~/]*")


def uriEncode(data: bytes, keepSlash: bool = False) -> bytes:
    """
    SigV4's UriEncode: every byte but A-Za-z0-9-._~ as upper-case %XX.

    @param keepSlash: leave C{/} alone (for paths, not query components).
    """
    if (_PLAIN_PATH if keepSlash else _PLAIN).fullmatch(data):
        return data  # the common case, found at C speed
    table = _ENCODE_KEEP_SLASH if keepSlash else _ENCODE
    return b"".join([table[b] for b in data])


def percentDecode(data: bytes, plusIsSpace: bool = False) -> bytes:
    """
    Undo %XX escapes (malformed ones are kept as they are).

    @param plusIsSpace: decode C{+} as a space, as forms and most query
        parsers do.
    """
    if plusIsSpace:
        data = data.replace(b"+", b" ")
    return unquote_to_bytes(data)


def canonicalURI(rawPath: bytes) -> bytes:
    """
    The S3 flavour of SigV4's canonical URI: decode, then encode once.

    S3 neither double-encodes nor normalises C{.}, C{..} or C{//}.
    """
    if not rawPath:
        return b"/"
    return uriEncode(percentDecode(rawPath), keepSlash=True)


def _splitQuery(rawQuery: bytes) -> List[Tuple[bytes, Optional[bytes]]]:
    """
    Split a raw query into still-encoded C{(name, value)} pairs, the value
    C{None} for a parameter without C{=}; empty pieces (C{a&&b}) are dropped.
    """
    pairs: List[Tuple[bytes, Optional[bytes]]] = []
    for piece in rawQuery.split(b"&"):
        if not piece:
            continue
        name, sep, value = piece.partition(b"=")
        pairs.append((name, value if sep else None))
    return pairs


def parseQuery(rawQuery: bytes) -> List[Tuple[bytes, bytes]]:
    """
    Split a raw query into still-encoded C{(name, value)} pairs; a
    parameter without C{=} has the value C{b""}.
    """
    return [(name, value or b"") for name, value in _splitQuery(rawQuery)]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def queryParameters(rawQuery: bytes) -> Dict[str, str]:
    """
    Decoded query parameters (C{+} is a space); the first of repeats wins.
    """
    params: Dict[str, str] = {}
    for name, value in parseQuery(rawQuery):
        params.setdefault(_text(percentDecode(name, True)), _text(percentDecode(value, True)))
    return params


def canonicalQuery(rawQuery: bytes, exclude: Sequence[str] = (), plusIsSpace: bool = True) -> bytes:
    """
    SigV4's canonical query string: each name and value decoded, encoded
    again with L{uriEncode}, sorted by encoded name then value.

    @param exclude: decoded parameter names to leave out (C{X-Amz-Signature}
        for presigned URLs).
    """
    excluded = {name.encode("utf-8") for name in exclude}
    pairs = []
    for name, value in parseQuery(rawQuery):
        decodedName = percentDecode(name, plusIsSpace)
        if decodedName in excluded:
            continue
        pairs.append((uriEncode(decodedName), uriEncode(percentDecode(value, plusIsSpace))))
    pairs.sort()
    return b"&".join(name + b"=" + value for name, value in pairs)


def _collapse(value: str) -> str:
    return " ".join(value.split())


def _header(head: RequestHead, name: str) -> Optional[str]:
    values = head.headers.get(name)
    if not values:
        return None
    return ",".join(values)


# ------------------------------------------------------------------- dates


def parseAmzDate(s: str) -> float:
    """
    Parse an ISO 8601 basic timestamp (C{20130524T000000Z}) into POSIX time.

    @raise ValueError: if C{s} is not exactly that format.
    """
    match = _AMZ_DATE.match(s)
    if match is None:
        raise ValueError(f"not an x-amz-date timestamp: {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise ValueError(f"not an x-amz-date timestamp: {s!r}")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


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


def _isoTime(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _checkSkew(requestTime: float, now: float) -> None:
    if abs(now - requestTime) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={
                "RequestTime": _isoTime(requestTime),
                "ServerTime": _isoTime(now),
                "MaxAllowedSkewMilliseconds": str(MAX_SKEW * 1000),
            },
        )


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
    if not re.match(r"^\d{8}$", scope.date):
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
        lines.append(name + ":" + ",".join(_collapse(v) for v in (values or ())))
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


def lookupCredentials(lookup: Callable[[str], Optional[Credentials]], accessKey: str) -> Credentials:
    """The credentials of C{accessKey}, or C{InvalidAccessKeyId}."""
    credentials = lookup(accessKey)
    if credentials is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": accessKey})
    return credentials


def _chunkSigner(payload: PayloadMode, key: bytes, timestamp: str, scope: CredentialScope, signature: str) -> Optional[ChunkSigner]:
    if payload in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        return ChunkSigner(key, timestamp, scope.scope, signature.lower())
    return None


def _authenticateV4Header(
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

    amzDate = _header(head, "x-amz-date")
    httpDate = _header(head, "date")
    try:
        if amzDate is not None:
            timestamp = amzDate.strip()
            requestTime = parseAmzDate(timestamp)
        elif httpDate is not None:
            requestTime = parseHTTPDate(httpDate)
            timestamp = formatAmzDate(requestTime)
        else:
            raise ValueError("no date")
    except ValueError:
        raise S3Error("AccessDenied", _NEEDS_DATE)
    if scope.date != timestamp[:8]:
        raise malformed("Invalid credential date. Date is not the same as X-Amz-Date.")

    contentSHA256 = _header(head, "x-amz-content-sha256")
    payload, payloadSHA256 = parsePayloadMode(contentSHA256)

    credentials = lookupCredentials(lookup, scope.accessKey)
    _checkSkew(requestTime, now)
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
        credentials=credentials,
        payload=payload,
        payloadSHA256=payloadSHA256,
        chunkSigner=_chunkSigner(payload, key, timestamp, scope, signature),
        presigned=False,
    )


def _authenticateV4Query(
    head: RequestHead, params: Mapping[str, str], lookup: Callable[[str], Optional[Credentials]], region: str, now: float
) -> Authenticated:
    def queryError(detail: str) -> S3Error:
        return S3Error("AuthorizationQueryParametersError", detail)

    def credentialError(detail: str) -> S3Error:
        return queryError("Error parsing the X-Amz-Credential parameter; " + detail)

    if not all(params.get(name) for name in _V4_QUERY_PARAMS):
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
    expiresText = params["X-Amz-Expires"]
    if not expiresText.isdigit() or not expiresText.isascii():
        raise queryError("X-Amz-Expires should be a number")
    expires = int(expiresText)
    if expires < 1:
        raise queryError("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise queryError("X-Amz-Expires must be less than a week (in seconds) that is 604800")
    signedHeaders = _parseSignedHeaders(params["X-Amz-SignedHeaders"], queryError)
    signature = params["X-Amz-Signature"]

    contentSHA256 = _header(head, "x-amz-content-sha256")
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
                "Expires": _isoTime(requestTime + expires),
                "ServerTime": _isoTime(now),
            },
        )
    key = _verifyV4(
        head, credentials, scope, timestamp, signedHeaders, payloadHash, signature.lower(), ("X-Amz-Signature",)
    )
    return Authenticated(
        credentials=credentials,
        payload=payload,
        payloadSHA256=payloadSHA256,
        chunkSigner=_chunkSigner(payload, key, timestamp, scope, signature),
        presigned=True,
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


# ------------------------------------------------------------------- SigV2


def _v2Resource(head: RequestHead) -> bytes:
    """
    SigV2's canonicalized resource: the path as sent, the bucket first when
    it came from the Host header, then the sub-resources in the query.
    """
    resource = (b"/" + head.virtualBucket.encode("utf-8") if head.virtualBucket else b"") + (head.rawPath or b"/")
    subresources = []
    for name, value in _splitQuery(head.rawQuery):
        if _text(name) in V2_SUBRESOURCES:
            # Like botocore: the value decoded, "name" alone if no "=".
            item = name if value is None else name + b"=" + percentDecode(value)
            subresources.append((name, item))
    if subresources:
        subresources.sort(key=lambda pair: pair[0])
        resource += b"?" + b"&".join(item for _, item in subresources)
    return resource


def _stringsToSignV2(head: RequestHead, date: str, queryHeaders: Mapping[str, str]) -> Iterator[bytes]:
    """
    Candidate SigV2 strings to sign: the standard one first.

    When C{x-amz-date} is present the AWS documentation says the Date line
    is empty, while botocore and MinIO put the C{Date} header there, so both
    are tried; so are UTF-8 and raw header bytes (see L{_headerBlocks}).
    """
    amz: Dict[str, str] = {}
    for name, values in head.headers.items():
        if name.startswith("x-amz-"):
            amz[name] = ",".join(v.strip() for v in values)
    for name, value in queryHeaders.items():
        amz.setdefault(name, value.strip())
    contentMD5 = _header(head, "content-md5") or queryHeaders.get("content-md5", "")
    contentType = _header(head, "content-type") or queryHeaders.get("content-type", "")
    dates = [date]
    if "x-amz-date" in amz and date:
        dates = ["", date]
    resource = _v2Resource(head)
    for dateLine in dates:
        lines = [head.method.upper(), contentMD5.strip(), contentType.strip(), dateLine]
        lines.extend(f"{name}:{amz[name]}" for name in sorted(amz))
        text = "\n".join(lines) + "\n"
        yield text.encode("utf-8") + resource
        if not text.isascii():
            try:
                yield text.encode("latin-1") + resource
            except UnicodeEncodeError:
                pass


def _verifyV2(head: RequestHead, credentials: Credentials, date: str, signature: str, queryHeaders: Mapping[str, str]) -> None:
    try:
        provided = base64.b64decode(signature.replace(" ", "+"), validate=True)
    except (binascii.Error, ValueError):
        provided = b""
    key = credentials.secretKey.encode("utf-8")
    first: Optional[bytes] = None
    for stringToSign in _stringsToSignV2(head, date, queryHeaders):
        expected = hmac.new(key, stringToSign, hashlib.sha1).digest()
        if hmac.compare_digest(expected, provided):
            return
        if first is None:
            first = stringToSign
    assert first is not None
    raise S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": credentials.accessKey,
            "StringToSign": first.decode("latin-1"),
            "SignatureProvided": signature,
        },
    )


def _payloadV2(head: RequestHead) -> Tuple[PayloadMode, Optional[str]]:
    """
    SigV2 signs no payload: an C{x-amz-content-sha256} is still honoured
    as an integrity check, but signed streaming needs SigV4's seed.
    """
    payload, payloadSHA256 = parsePayloadMode(_header(head, "x-amz-content-sha256"), PayloadMode.UNSIGNED)
    if payload in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        raise S3Error("InvalidRequest", f"{payload.value} requires AWS Signature Version 4.")
    return payload, payloadSHA256


def _authenticateV2Header(
    head: RequestHead, authorization: str, lookup: Callable[[str], Optional[Credentials]], now: float
) -> Authenticated:
    accessKey, sep, signature = authorization[4:].strip().rpartition(":")
    if not sep or not accessKey or not signature:
        raise S3Error("InvalidArgument", "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                      extra={"ArgumentName": "Authorization", "ArgumentValue": authorization})
    amzDate = _header(head, "x-amz-date")
    httpDate = _header(head, "date")
    dateText = amzDate if amzDate is not None else httpDate
    if dateText is None:
        raise S3Error("AccessDenied", _NEEDS_DATE)
    try:
        requestTime = parseHTTPDate(dateText)
    except ValueError:
        raise S3Error("AccessDenied", _NEEDS_DATE)
    payload, payloadSHA256 = _payloadV2(head)
    credentials = lookupCredentials(lookup, accessKey)
    _checkSkew(requestTime, now)
    _verifyV2(head, credentials, (httpDate or "").strip(), signature, {})
    return Authenticated(credentials, payload, payloadSHA256, None, presigned=False)


def _authenticateV2Query(
    head: RequestHead, params: Mapping[str, str], lookup: Callable[[str], Optional[Credentials]], now: float
) -> Authenticated:
    if not all(params.get(name) for name in _V2_QUERY_PARAMS):
        raise S3Error("AccessDenied", _V2_QUERY_REQUIRED)
    expiresText = params["Expires"]
    if not expiresText.isdigit() or not expiresText.isascii():
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expiresText}")
    expires = int(expiresText)
    payload, payloadSHA256 = _payloadV2(head)
    credentials = lookupCredentials(lookup, params["AWSAccessKeyId"])
    if now > expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra={"Expires": _isoTime(expires), "ServerTime": _isoTime(now)},
        )
    # botocore moves x-amz-*, Content-MD5 and Content-Type into the query.
    queryHeaders = {
        name.lower(): value
        for name, value in params.items()
        if name.lower().startswith("x-amz-") or name.lower() in ("content-md5", "content-type")
    }
    _verifyV2(head, credentials, expiresText, _rawParam(head.rawQuery, "Signature"), queryHeaders)
    return Authenticated(credentials, payload, payloadSHA256, None, presigned=True)


def _rawParam(rawQuery: bytes, name: str) -> str:
    """
    A parameter decoded without turning C{+} into a space: base64
    signatures are often sent with a literal C{+}.
    """
    for rawName, value in parseQuery(rawQuery):
        if percentDecode(rawName, True) == name.encode("utf-8"):
            return _text(percentDecode(value))
    return ""


# ------------------------------------------------------------------- entry


def authenticate(
    head: RequestHead, lookup: Callable[[str], Optional[Credentials]], region: str, now: float
) -> Optional[Authenticated]:
    """
    Authenticate a request from its head.

    @param lookup: access key -> credentials, or C{None} if unknown.
    @param region: this server's region; SigV4 scopes must name it.
    @param now: the current POSIX time.
    @return: C{None} for an anonymous request (no C{Authorization} header,
        no authentication query parameters), else who signed it and what
        the body must satisfy.
    @raise S3Error: for any malformed, expired or wrong signature.
    """
    authorization = _header(head, "authorization")
    if head.query is not None:
        params: Mapping[str, str] = head.query
    else:
        params = queryParameters(head.rawQuery) if head.rawQuery else {}
    v4Query = any(name in params for name in _V4_QUERY_PARAMS)
    v2Query = any(name in params for name in ("AWSAccessKeyId", "Signature"))
    if (authorization is not None) + v4Query + v2Query > 1:
        raise S3Error("InvalidArgument", _ONE_AUTH)
    if authorization is not None:
        stripped = authorization.strip()
        if stripped.startswith(ALGORITHM) and (len(stripped) == len(ALGORITHM) or stripped[len(ALGORITHM)].isspace()):
            return _authenticateV4Header(head, stripped, lookup, region, now)
        if stripped.startswith("AWS "):
            return _authenticateV2Header(head, stripped, lookup, now)
        if stripped.startswith("AWS4-ECDSA-P256-SHA256"):
            raise S3Error("NotImplemented", "AWS Signature Version 4A is not supported.")
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            extra={"ArgumentName": "Authorization", "ArgumentValue": authorization},
        )
    if v4Query:
        return _authenticateV4Query(head, params, lookup, region, now)
    if v2Query:
        return _authenticateV2Query(head, params, lookup, now)
    return None
