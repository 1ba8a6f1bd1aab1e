"""
Payload integrity: what a request's head promises about its body, and the
one check that holds every body to it.

L{uploadSpec} reads the promises (declared length, C{Content-MD5},
C{x-amz-checksum-*} header or trailer) and refuses what can be refused
before a byte is read.  L{verifyDigests} compares the digests computed over
a complete body with every promise, the signed C{x-amz-content-sha256}
included; object uploads (L{fasterstore.s3.body.ObjectBody}, which hashes
off the reactor thread as it writes) and the bounded bodies of every other
operation (L{DocumentBody}) both end there, so no operation can read a body
that was not checked.

L{DocumentBody} is the receiver of every body that is not object data: XML
documents, and bodies of operations that take none (read, verified and
dropped).  It is bounded: a declared length past its limit is refused
before a byte is read, and a streamed body is cut off as soon as it passes.
Tests: tests/unit/test_integrity.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Dict, List, Mapping, Optional

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from fasterstore.auth.chunked import AwsChunkedDecoder
from fasterstore.auth.identity import Authenticated
from fasterstore.auth.payload import PayloadMode
from fasterstore.checksums import ALGORITHMS, Hasher, newHasher
from fasterstore.errors import S3Error
from fasterstore.http.request import EarlyResponse, IBodyReceiver
from fasterstore.numbers import INT64_MAX, readDecimal

#: The checksum S3 computes when the client names none (AWS does the same
#: for every new object since 2025).
DEFAULT_CHECKSUM = "crc64nvme"

#: Largest XML document accepted (DeleteObjects with 1000 keys of 1024
#: bytes fits, with room for escaping).
DOCUMENT_LIMIT = 2 * 1024 * 1024
#: Largest body read (verified and dropped) for an operation that takes
#: none, or for a request answered without a handler (reserved paths).
IGNORED_BODY_LIMIT = 64 * 1024

_DIGEST_LENGTHS = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


@attrs.frozen
class UploadSpec:
    """
    What a body must turn out to be, read from its request's headers.

    @ivar size: the declared decoded size, or None for plain chunked
        transfer with no declared size.
    @ivar contentMD5: the Content-MD5 digest, if given.
    @ivar algorithm: the S3 checksum algorithm to compute and store.
    @ivar checksum: the value given in a header for it, if any (raw bytes).
    @ivar trailerChecksum: True when the value arrives in the trailer.
    """

    size: Optional[int]
    contentMD5: Optional[bytes]
    algorithm: str
    checksum: Optional[bytes]
    trailerChecksum: bool

    @property
    def checksummed(self) -> bool:
        """Whether a value for C{algorithm} will be compared at the end."""
        return self.checksum is not None or self.trailerChecksum


def _b64digest(value: str, length: int, error: S3Error) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise error from None
    if len(raw) != length:
        raise error
    return raw


def payloadOf(auth: Optional[Authenticated]) -> PayloadMode:
    """The payload mode of a request (anonymous ones are unsigned)."""
    return auth.payload if auth is not None else PayloadMode.UNSIGNED


def uploadSpec(
    headers: Mapping[str, str],
    auth: Optional[Authenticated],
    maxSize: int,
    tooLarge: Optional[Callable[[int], S3Error]] = None,
) -> UploadSpec:
    """
    Read and check the headers that describe a body: everything that can be
    refused before a byte is stored.

    @param headers: request headers, lower-case names.
    @param tooLarge: the error for a declared size above C{maxSize}
        (default C{EntityTooLarge}).
    """
    payload = payloadOf(auth)
    size: Optional[int]
    lengthHeader = "x-amz-decoded-content-length" if payload.streaming else "content-length"
    if lengthHeader in headers:
        declared = readDecimal(headers[lengthHeader], maximum=INT64_MAX)
        if declared is None:
            raise S3Error("InvalidArgument", f"Invalid {lengthHeader} header.")
        size = declared
    elif payload.streaming or "chunked" not in headers.get("transfer-encoding", "").lower():
        raise S3Error("MissingContentLength")
    else:
        size = None
    if size is not None and size > maxSize:
        if tooLarge is not None:
            raise tooLarge(size)
        raise S3Error(
            "EntityTooLarge",
            extra={"ProposedSize": str(size), "MaxSizeAllowed": str(maxSize)},
        )
    contentMD5 = None
    if "content-md5" in headers:
        contentMD5 = _b64digest(headers["content-md5"], 16, S3Error("InvalidDigest"))

    given = [a for a in ALGORITHMS if f"x-amz-checksum-{a}" in headers]
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    trailerAlgorithm = None
    if trailer:
        if not trailer.startswith("x-amz-checksum-") or trailer[15:] not in ALGORITHMS:
            raise S3Error("InvalidRequest", f"The value specified in the x-amz-trailer header is not supported: {trailer}")
        if not payload.trailer:
            raise S3Error("InvalidRequest", "x-amz-trailer requires a streaming trailer payload.")
        trailerAlgorithm = trailer[15:]
    named = headers.get("x-amz-sdk-checksum-algorithm", "").strip().lower() or None
    if named is not None and named not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
    candidates = set(given) | ({trailerAlgorithm} if trailerAlgorithm else set())
    if len(candidates) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
    algorithm = next(iter(candidates), None) or named or DEFAULT_CHECKSUM
    if named is not None and candidates and named != algorithm:
        raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
    checksum = None
    if given:
        checksum = _b64digest(
            headers[f"x-amz-checksum-{algorithm}"],
            _DIGEST_LENGTHS[algorithm],
            S3Error("InvalidRequest", f"Value for x-amz-checksum-{algorithm} header is invalid."),
        )
    return UploadSpec(size, contentMD5, algorithm, checksum, trailerAlgorithm is not None)


def verifyDigests(
    spec: UploadSpec, auth: Optional[Authenticated], digests: Mapping[str, bytes], trailers: Mapping[str, str]
) -> None:
    """
    Hold a complete body to every promise its head made.

    @param digests: digests of the (decoded) body by name: C{"sha256"} of
        the body as sent when the payload is signed, C{"md5"} when
        C{spec.contentMD5} is set, C{spec.algorithm} when
        C{spec.checksummed}.
    @param trailers: the aws-chunked trailing headers, if any.
    @raise S3Error: C{XAmzContentSHA256Mismatch}, C{BadDigest} or
        C{InvalidRequest}.
    """
    if auth is not None and auth.payload is PayloadMode.SIGNED and auth.payloadSHA256 is not None:
        computed = digests["sha256"].hex()
        if computed != auth.payloadSHA256.lower():
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                extra={"ClientComputedContentSHA256": auth.payloadSHA256, "S3ComputedContentSHA256": computed},
            )
    if spec.contentMD5 is not None and digests["md5"] != spec.contentMD5:
        raise S3Error(
            "BadDigest",
            extra={
                "ExpectedDigest": base64.b64encode(spec.contentMD5).decode(),
                "CalculatedDigest": base64.b64encode(digests["md5"]).decode(),
            },
        )
    expected = spec.checksum
    name = f"x-amz-checksum-{spec.algorithm}"
    if spec.trailerChecksum:
        if name not in trailers:
            raise S3Error("InvalidRequest", f"The {name} trailer was not sent.")
        expected = _b64digest(
            trailers[name],
            _DIGEST_LENGTHS[spec.algorithm],
            S3Error("InvalidRequest", f"Value for {name} trailing header is invalid."),
        )
    if expected is not None and digests[spec.algorithm] != expected:
        raise S3Error(
            "BadDigest",
            f"The {spec.algorithm.upper()} you specified did not match the calculated checksum.",
        )


def requireDigest(headers: Mapping[str, str]) -> None:
    """
    Refuse a body whose head names no digest of it (neither C{Content-MD5}
    nor an C{x-amz-checksum-*} header or trailer), as AWS does for
    DeleteObjects.
    """
    if "content-md5" in headers or any(f"x-amz-checksum-{a}" in headers for a in ALGORITHMS):
        return
    if headers.get("x-amz-trailer", "").strip().lower().startswith("x-amz-checksum-"):
        return
    raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")


def _tooLong(limit: int) -> S3Error:
    return S3Error("MaxMessageLengthExceeded", f"Your request was too big (the limit is {limit} bytes).")


@implementer(IBodyReceiver)
class DocumentBody:
    """
    A bounded body, decoded from aws-chunked framing when streamed, hashed
    as it arrives and verified by L{finish}, the only way to its bytes.

    @ivar limit: the most decoded bytes accepted.
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        auth: Optional[Authenticated],
        limit: int,
        refuse: Callable[[S3Error], EarlyResponse],
        keep: bool = True,
        checksumHeaders: bool = True,
    ) -> None:
        """
        @param headers: the request's headers (lower-case names).
        @param refuse: turns the error for a body past C{limit} into the
            answer sent at once (the rest of the body is never read).
        @param keep: whether L{finish} returns the bytes (False for bodies
            that are only verified and dropped).
        @param checksumHeaders: whether C{x-amz-checksum-*} headers describe
            this body (False for CompleteMultipartUpload, where they describe
            the object being completed).
        @raise S3Error: for a head that promises what cannot be accepted
            (a declared length past C{limit} among them).
        """
        self.limit = limit
        self._auth = auth
        self._refuse = refuse
        self._keep = keep
        payload = payloadOf(auth)
        framed = dict(headers)
        if not checksumHeaders:
            for name in [n for n in framed if n.startswith("x-amz-checksum-") or n == "x-amz-sdk-checksum-algorithm"]:
                del framed[name]
        if not payload.streaming and "content-length" not in framed and "transfer-encoding" not in framed:
            framed["content-length"] = "0"
        self._spec = uploadSpec(framed, auth, limit, lambda size: _tooLong(limit))
        self._parts: List[bytes] = []
        self._received = 0
        self._error: Optional[S3Error] = None
        self._bodyHashers: Dict[str, Hasher] = {}
        if payload is PayloadMode.SIGNED:
            self._bodyHashers["sha256"] = newHasher("sha256")
        # Without aws-chunked framing the body is the data: a digest the
        # signed hash already computes is not computed twice.
        self._dataHashers: Dict[str, Hasher] = {}
        if self._spec.contentMD5 is not None:
            self._dataHashers["md5"] = newHasher("md5")
        if self._spec.checksummed and self._spec.algorithm not in self._bodyHashers:
            self._dataHashers[self._spec.algorithm] = newHasher(self._spec.algorithm)
        self._decoder: Optional[AwsChunkedDecoder] = None
        if payload.streaming:
            self._decoder = AwsChunkedDecoder(
                self._deliver,
                signer=auth.chunkSigner if auth is not None else None,
                trailer=payload.trailer,
                decodedLength=self._spec.size,
            )

    def dataReceived(self, data: bytes) -> None:
        """
        Take a piece of the body.

        @raise EarlyResponse: once the body passes the limit or its
            framing fails: the rest is never read.
        """
        if self._error is not None:
            return None
        for hasher in self._bodyHashers.values():
            hasher.update(data)
        try:
            if self._decoder is not None:
                self._decoder.feed(data)
            else:
                self._deliver(data)
        except S3Error as e:
            self._error = e
            self._parts = []
            raise self._refuse(e) from None
        return None

    def _deliver(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self.limit:
            raise _tooLong(self.limit)
        for hasher in self._dataHashers.values():
            hasher.update(data)
        if self._keep:
            self._parts.append(data)

    def connectionLost(self, reason: Failure) -> None:
        """The body will never be complete."""
        self._parts = []

    def finish(self) -> Deferred[bytes]:
        """The whole (decoded) body once verified, or the error that refused it."""
        if self._error is not None:
            return fail(self._error)
        try:
            trailers = self._decoder.finish() if self._decoder is not None else {}
            if self._spec.size is not None and self._received != self._spec.size:
                raise S3Error("IncompleteBody")
            digests = {name: hasher.digest() for name, hasher in self._bodyHashers.items()}
            digests.update((name, hasher.digest()) for name, hasher in self._dataHashers.items())
            verifyDigests(self._spec, self._auth, digests, trailers)
        except S3Error as e:
            self._error = e
            return fail(e)
        data, self._parts = b"".join(self._parts), []
        return succeed(data)
