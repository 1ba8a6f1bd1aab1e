"""
Body receivers: where request bodies go as they arrive.

L{ObjectBody} is the upload pipeline of PutObject: the aws-chunked decoder
(when the payload is streamed), then the segment engine's blob writer, which
hashes (MD5, BLAKE3 and whatever checksum the client asked for) off the
reactor thread while it appends.  Every check that needs the whole body
(length, payload SHA-256, Content-MD5, x-amz-checksum-*) runs in
L{ObjectBody.finish}, through L{fasterstore.auth.integrity.verifyDigests};
a failure there discards the written bytes, so nothing becomes visible.
A failed segment write (ENOSPC, EIO) is a L{StorageWriteError}: 507 for a
full disk, 500 otherwise; handlers await the body through L{written} so that
it is counted and the space guard looks again.
The bounded bodies of every other operation are
L{fasterstore.auth.integrity.DocumentBody}s.
Tests: tests/unit/test_resource.py, tests/unit/test_blob_writer.py.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Protocol, Tuple, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from fasterstore.auth.chunked import AwsChunkedDecoder
from fasterstore.auth.identity import Authenticated
from fasterstore.auth.integrity import UploadSpec, payloadOf, verifyDigests
from fasterstore.errors import S3Error, StorageWriteError
from fasterstore.http.request import IBodyReceiver
from fasterstore.numbers import INT64_MAX, readDecimal
from fasterstore.s3.context import S3Context
from fasterstore.storage.blob import WrittenBlob

T = TypeVar("T")


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
        payload = payloadOf(auth)
        if payload.streaming:
            self._decoder = AwsChunkedDecoder(
                self._deliver,
                signer=auth.chunkSigner if auth is not None else None,
                trailer=payload.trailer,
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
            result.trap(Exception)
            assert result.value is not None
            self._fail(StorageWriteError(result.value))
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
        try:
            blob = await self._writer.finish()
        except S3Error:
            raise
        except Exception as e:
            raise StorageWriteError(e) from e
        try:
            self._check(blob, trailers)
        except S3Error:
            self._discard(blob)
            raise
        return blob

    def _check(self, blob: WrittenBlob, trailers: Mapping[str, str]) -> None:
        verifyDigests(self._spec, self._auth, blob.digests, trailers)


def declaredLength(headers: Mapping[str, str], auth: Optional[Authenticated]) -> int:
    """
    The object bytes a request's headers announce, for the space check
    before its body is read: C{x-amz-decoded-content-length} for an
    aws-chunked body, else C{Content-Length}; 0 when neither is usable (a
    chunked body: only the reserve can be checked).
    """
    name = "x-amz-decoded-content-length" if payloadOf(auth).streaming else "content-length"
    value = headers.get(name)
    length = readDecimal(value, maximum=INT64_MAX) if value is not None else None
    return length if length is not None else 0


async def written(ctx: S3Context, pending: Awaitable[T]) -> T:
    """
    Await an upload's data (a body's C{finish}, a server-side copy): a
    failed segment write is reported to C{ctx} (counted; a full disk makes
    the space guard look again), then raised for the client.
    """
    try:
        return await pending
    except StorageWriteError as e:
        ctx.writeFailed(e)
        raise
