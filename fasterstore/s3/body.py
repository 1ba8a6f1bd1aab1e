"""
Body receivers: where request bodies go as they arrive.

L{ObjectBody} is the upload pipeline of PutObject: the aws-chunked decoder
(when the payload is streamed), then the segment engine's blob writer, which
hashes (MD5, BLAKE3 and whatever checksum the client asked for) off the
reactor thread while it appends.  Every check that needs the whole body
(length, payload SHA-256, Content-MD5, x-amz-checksum-*) runs in
L{ObjectBody.finish}; a failure there discards the written bytes, so nothing
becomes visible.  L{SmallBody} collects the bounded XML bodies of the other
operations.
Tests: tests/unit/test_body.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from fasterstore.checksums import ALGORITHMS
from fasterstore.errors import S3Error
from fasterstore.auth.chunked import AwsChunkedDecoder
from fasterstore.http.request import IBodyReceiver
from fasterstore.auth.identity import Authenticated
from fasterstore.auth.payload import PayloadMode
from fasterstore.storage.blob import WrittenBlob

#: The checksum S3 computes when the client names none (AWS does the same
#: for every new object since 2025).
DEFAULT_CHECKSUM = "crc64nvme"

_DIGEST_LENGTHS = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


@attrs.frozen
class UploadSpec:
    """
    What a PutObject body must turn out to be, read from its headers.

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


def _b64digest(value: str, length: int, error: S3Error) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise error from None
    if len(raw) != length:
        raise error
    return raw


def uploadSpec(
    headers: Mapping[str, str], auth: Optional[Authenticated], maxSize: int
) -> UploadSpec:
    """
    Read and check the headers that describe an upload body: everything that
    can be refused before a byte is stored.

    @param headers: request headers, lower-case names, first values.
    """
    payload = auth.payload if auth is not None else PayloadMode.UNSIGNED
    streaming = payload not in (PayloadMode.SIGNED, PayloadMode.UNSIGNED)
    size: Optional[int]
    lengthHeader = "x-amz-decoded-content-length" if streaming else "content-length"
    if lengthHeader in headers:
        try:
            size = int(headers[lengthHeader])
            if size < 0:
                raise ValueError(size)
        except ValueError:
            raise S3Error("InvalidArgument", f"Invalid {lengthHeader} header.") from None
    elif streaming or "chunked" not in headers.get("transfer-encoding", "").lower():
        raise S3Error("MissingContentLength")
    else:
        size = None
    if size is not None and size > maxSize:
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
        if payload not in (PayloadMode.STREAMING_SIGNED_TRAILER, PayloadMode.STREAMING_UNSIGNED_TRAILER):
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


class BlobWriterLike(Protocol):
    """The part of the segment engine's blob writer this module uses."""

    def write(self, data: bytes) -> Optional[Deferred[None]]: ...

    def finish(self) -> Deferred[WrittenBlob]: ...

    def abort(self) -> None: ...


@implementer(IBodyReceiver)
class ObjectBody:
    """
    Streams an object body into a blob writer and checks it when complete.

    Errors found while the body streams (a bad chunk signature, too many
    bytes) stop the writer at once; the rest of the body is read and dropped
    so that the error can be answered on a healthy connection.
    """

    def __init__(
        self,
        writer: BlobWriterLike,
        spec: UploadSpec,
        auth: Optional[Authenticated],
        maxSize: int,
        discard: Callable[[WrittenBlob], Any],
    ) -> None:
        self._writer = writer
        self._spec = spec
        self._auth = auth
        self._maxSize = maxSize
        self._discard = discard
        self._received = 0
        self._error: Optional[S3Error] = None
        self._lost = False
        self._wait: Optional[Deferred[None]] = None
        self._decoder: Optional[AwsChunkedDecoder] = None
        payload = auth.payload if auth is not None else PayloadMode.UNSIGNED
        if payload not in (PayloadMode.SIGNED, PayloadMode.UNSIGNED):
            self._decoder = AwsChunkedDecoder(
                self._deliver,
                signer=auth.chunkSigner if auth is not None else None,
                trailer=payload in (PayloadMode.STREAMING_SIGNED_TRAILER, PayloadMode.STREAMING_UNSIGNED_TRAILER),
                decodedLength=spec.size,
            )

    @property
    def algorithms(self) -> Tuple[str, ...]:
        """The S3 checksum algorithms stored with the object."""
        return (self._spec.algorithm,)

    @property
    def received(self) -> int:
        """Decoded body bytes taken so far."""
        return self._received

    def dataReceived(self, data: bytes) -> Optional[Deferred[None]]:
        if self._error is not None:
            return None
        try:
            if self._decoder is not None:
                self._decoder.feed(data)
            else:
                self._deliver(data)
        except S3Error as e:
            self._fail(e)
            return None
        return self._wait

    def _deliver(self, data: bytes) -> None:
        self._received += len(data)
        limit = self._spec.size if self._spec.size is not None else self._maxSize
        if self._received > limit:
            if self._spec.size is None:
                raise S3Error("EntityTooLarge")
            raise S3Error("IncompleteBody", "The request body is longer than its declared length.")
        wait = self._writer.write(data)
        if wait is not None and self._wait is None:
            self._wait = wait
            wait.addBoth(self._waited)

    def _waited(self, result: object) -> None:
        self._wait = None
        if isinstance(result, Failure):
            self._fail(S3Error("InternalError"))
            result.trap(Exception)
        return None

    def _fail(self, error: S3Error) -> None:
        if self._error is None:
            self._error = error
            self._writer.abort()

    def connectionLost(self, reason: Failure) -> None:
        self._lost = True
        self._fail(S3Error("IncompleteBody"))

    def finish(self) -> Deferred[WrittenBlob]:
        """
        The body is complete: flush, verify, and return the written blob.
        Fails with an L{S3Error} (the bytes already discarded) if it is not
        what the headers promised.
        """
        if self._error is not None:
            err = self._error
            return fail(err)
        try:
            trailers = self._decoder.finish() if self._decoder is not None else {}
        except S3Error as e:
            self._fail(e)
            return fail(e)
        if self._spec.size is not None and self._received != self._spec.size:
            self._fail(S3Error("IncompleteBody"))
            return fail(S3Error("IncompleteBody"))
        return Deferred.fromCoroutine(self._verify(trailers))

    async def _verify(self, trailers: Dict[str, str]) -> WrittenBlob:
        blob = await self._writer.finish()
        try:
            self._check(blob, trailers)
        except S3Error:
            self._discard(blob)
            raise
        return blob

    def _check(self, blob: WrittenBlob, trailers: Mapping[str, str]) -> None:
        spec = self._spec
        auth = self._auth
        if auth is not None and auth.payload is PayloadMode.SIGNED and auth.payloadSHA256 is not None:
            if blob.digests["sha256"].hex() != auth.payloadSHA256.lower():
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    extra={
                        "ClientComputedContentSHA256": auth.payloadSHA256,
                        "S3ComputedContentSHA256": blob.digests["sha256"].hex(),
                    },
                )
        if spec.contentMD5 is not None and blob.digests["md5"] != spec.contentMD5:
            raise S3Error(
                "BadDigest",
                extra={
                    "ExpectedDigest": base64.b64encode(spec.contentMD5).decode(),
                    "CalculatedDigest": base64.b64encode(blob.digests["md5"]).decode(),
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
        if expected is not None and blob.digests[spec.algorithm] != expected:
            raise S3Error(
                "BadDigest",
                f"The {spec.algorithm.upper()} you specified did not match the calculated checksum.",
            )


@implementer(IBodyReceiver)
class SmallBody:
    """Collects a bounded body (the XML documents of bucket operations)."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self._parts: List[bytes] = []
        self._size = 0
        self._limit = limit
        self._error: Optional[S3Error] = None

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self._error = S3Error("MaxMessageLengthExceeded")
            self._parts = []
        elif self._error is None:
            self._parts.append(data)
        return None

    def connectionLost(self, reason: Failure) -> None:
        self._parts = []

    def finish(self) -> Deferred[bytes]:
        """The whole body, or the error that made it unusable."""
        if self._error is not None:
            return fail(self._error)
        return succeed(b"".join(self._parts))
