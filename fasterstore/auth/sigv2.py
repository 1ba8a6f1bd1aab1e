"""
AWS Signature Version 2: the C{Authorization: AWS AK:signature} header and
C{AWSAccessKeyId=...&Expires=...&Signature=...} presigned URLs.

SigV2 signs every C{x-amz-*} header, but of the query only the
sub-resources in L{V2_SUBRESOURCES}.
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

from fasterstore.auth.canonical import RequestHead, header, headerValue, parseQuery, percentDecode, splitQuery, text
from fasterstore.auth.identity import Authenticated, Credentials, lookupCredentials
from fasterstore.auth.payload import PayloadMode, parsePayloadMode
from fasterstore.auth.sigv4 import MAX_PRESIGN_EXPIRES, NEEDS_DATE, checkSkew, isoTime, parseHTTPDate
from fasterstore.errors import S3Error
from fasterstore.http.dates import MAX_TIMESTAMP
from fasterstore.numbers import parseDecimal


#: The query parameters of a SigV2 presigned URL.
V2_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")

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


_V2_QUERY_REQUIRED = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)



def _v2Resources(head: RequestHead) -> Iterator[bytes]:
    """
    SigV2's canonicalized resource: the path as sent, the bucket first when
    it came from the Host header, then the sub-resources in the query.

    Below a mount point the path as sent comes first, then the path below
    the mount point, which is what botocore signs (its C{auth_path}); both
    name the same bucket and key.
    """
    subresources = []
    for name, value in splitQuery(head.rawQuery):
        if text(name) in V2_SUBRESOURCES:
            # Like botocore: the value decoded, "name" alone if no "=".
            item = name if value is None else name + b"=" + percentDecode(value)
            subresources.append((name, item))
    query = b""
    if subresources:
        subresources.sort(key=lambda pair: pair[0])
        query = b"?" + b"&".join(item for _, item in subresources)
    bucket = b"/" + head.virtualBucket.encode("utf-8") if head.virtualBucket else b""
    paths = [head.rawPath or b"/"]
    if head.localPath is not None and head.localPath != paths[0]:
        paths.append(head.localPath)
    for path in paths:
        yield bucket + path + query


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
            amz[name] = headerValue(values)
    for name, value in queryHeaders.items():
        amz.setdefault(name, value.strip())
    contentMD5 = header(head, "content-md5") or queryHeaders.get("content-md5", "")
    contentType = header(head, "content-type") or queryHeaders.get("content-type", "")
    dates = [date]
    if "x-amz-date" in amz and date:
        dates = ["", date]
    for resource in _v2Resources(head):
        for dateLine in dates:
            lines = [head.method.upper(), contentMD5.strip(), contentType.strip(), dateLine]
            lines.extend(f"{name}:{amz[name]}" for name in sorted(amz))
            headerText = "\n".join(lines) + "\n"
            yield headerText.encode("utf-8") + resource
            if not headerText.isascii():
                try:
                    yield headerText.encode("latin-1") + resource
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
    payload, payloadSHA256 = parsePayloadMode(header(head, "x-amz-content-sha256"), PayloadMode.UNSIGNED)
    if payload in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        raise S3Error("InvalidRequest", f"{payload.value} requires AWS Signature Version 4.")
    return payload, payloadSHA256


def authenticateHeader(
    head: RequestHead, authorization: str, lookup: Callable[[str], Optional[Credentials]], now: float
) -> Authenticated:
    accessKey, sep, signature = authorization[4:].strip().rpartition(":")
    if not sep or not accessKey or not signature:
        raise S3Error("InvalidArgument", "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                      extra={"ArgumentName": "Authorization", "ArgumentValue": authorization})
    amzDate = header(head, "x-amz-date")
    httpDate = header(head, "date")
    dateText = amzDate if amzDate is not None else httpDate
    if dateText is None:
        raise S3Error("AccessDenied", NEEDS_DATE)
    try:
        requestTime = parseHTTPDate(dateText)
    except ValueError:
        raise S3Error("AccessDenied", NEEDS_DATE)
    payload, payloadSHA256 = _payloadV2(head)
    credentials = lookupCredentials(lookup, accessKey)
    checkSkew(requestTime, now)
    _verifyV2(head, credentials, (httpDate or "").strip(), signature, {})
    return Authenticated(credentials, payload, payloadSHA256, None, presigned=False, signedSubresources=V2_SUBRESOURCES)


def authenticateQuery(
    head: RequestHead, params: Mapping[str, str], lookup: Callable[[str], Optional[Credentials]], now: float
) -> Authenticated:
    if not all(params.get(name) for name in V2_QUERY_PARAMS):
        raise S3Error("AccessDenied", _V2_QUERY_REQUIRED)
    expiresText = params["Expires"]
    # Up to the last second of 9999: the error details format it as a date.
    expires = parseDecimal(
        expiresText, maximum=MAX_TIMESTAMP,
        error=lambda: S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expiresText}"),
    )
    payload, payloadSHA256 = _payloadV2(head)
    credentials = lookupCredentials(lookup, params["AWSAccessKeyId"])
    if now > expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            extra={"Expires": isoTime(expires), "ServerTime": isoTime(now)},
        )
    if expires - now > MAX_PRESIGN_EXPIRES:
        # SigV2 names an end, not a lifetime: cap it as SigV4 caps X-Amz-Expires.
        raise S3Error(
            "AccessDenied",
            f"Expires must be at most a week ({MAX_PRESIGN_EXPIRES} seconds) after the server's time.",
            extra={"Expires": isoTime(expires), "ServerTime": isoTime(now)},
        )
    # botocore moves x-amz-*, Content-MD5 and Content-Type into the query.
    queryHeaders = {
        name.lower(): value
        for name, value in params.items()
        if name.lower().startswith("x-amz-") or name.lower() in ("content-md5", "content-type")
    }
    _verifyV2(head, credentials, expiresText, _rawParam(head.rawQuery, "Signature"), queryHeaders)
    return Authenticated(credentials, payload, payloadSHA256, None, presigned=True, signedSubresources=V2_SUBRESOURCES)


def _rawParam(rawQuery: bytes, name: str) -> str:
    """
    A parameter decoded without turning C{+} into a space: base64
    signatures are often sent with a literal C{+}.
    """
    for rawName, value in parseQuery(rawQuery):
        if percentDecode(rawName, True) == name.encode("utf-8"):
            return text(percentDecode(value))
    return ""

