"""
An incremental decoder for S3's aws-chunked request bodies.

A body whose C{x-amz-content-sha256} is one of the C{STREAMING-*} values is
framed as a series of chunks::

    hex-size[;chunk-signature=64hex]\\r\\n <data> \\r\\n
    ...
    0[;chunk-signature=64hex]\\r\\n
    [name:value\\r\\n ... [x-amz-trailer-signature:64hex\\r\\n]]
    \\r\\n

L{AwsChunkedDecoder} takes the body in whatever pieces the transport hands
over and passes object bytes on as soon as they arrive: it never holds a
chunk, only a chunk header or trailer line (bounded by C{maxChunkHeader}),
so memory stays flat for 8 MiB chunks.  Chunk signatures (each chained on
the previous one, starting from the request signature) are checked as each
chunk ends, so a bad chunk stops the upload before the next one is
accepted; the caller must still discard what was delivered if L{feed} or
L{finish} raises.

Pure code: no reactor, no I/O.
Tests: tests/unit/test_chunked.py.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from typing import Callable, Dict, List, Optional

import attrs

from fasterstore.auth.payload import EMPTY_SHA256
from fasterstore.errors import S3Error
from fasterstore.numbers import parseHex

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


#: Most trailing header lines accepted (S3 sends one checksum and the
#: signature).
MAX_TRAILERS = 32

#: The largest chunk size a chunk header may declare (16 hex digits).
MAX_CHUNK_SIZE = 2**64 - 1
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


class _State(enum.Enum):
    HEADER = "chunk header"
    DATA = "chunk data"
    DATA_CRLF = "CRLF after chunk data"
    FINAL_CRLF = "CRLF after the final chunk"
    TRAILER = "trailing headers"
    DONE = "done"


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}")


def _unsignedTrailers() -> S3Error:
    return S3Error("IncompleteBody", "The trailing headers ended without x-amz-trailer-signature.")


def _badSignature(detail: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", f"The {detail} signature we calculated does not match the one provided.")


class AwsChunkedDecoder:
    """
    Turn an aws-chunked body back into the object's bytes.

    Feed it the body with L{feed}; call L{finish} when the body ends.  Once
    either raised, the decoder stays failed and raises the same error again.
    """

    def __init__(
        self,
        deliver: Callable[[bytes], None],
        *,
        signer: Optional[ChunkSigner],
        trailer: bool,
        decodedLength: Optional[int],
        maxChunkHeader: int = 4096,
    ) -> None:
        """
        @param deliver: called with each run of object bytes, in order.
        @param signer: verifies chunk signatures; C{None} for unsigned
            streaming (C{STREAMING-UNSIGNED-PAYLOAD-TRAILER}), whose chunk
            headers carry no signature.
        @param trailer: whether trailing headers follow the final chunk.
        @param decodedLength: C{x-amz-decoded-content-length}, the object's
            size, if the client gave it.
        @param maxChunkHeader: longest chunk header or trailer line, bytes.
        """
        self._deliver = deliver
        self._signer = signer
        self._trailer = trailer
        self._decodedLength = decodedLength
        self._maxLine = maxChunkHeader
        self._state = _State.HEADER
        self._line = bytearray()
        self._remaining = 0
        self._decoded = 0
        self._chunkHash = hashlib.sha256()
        self._chunkSignature = ""
        self._previous = signer.seedSignature if signer is not None else ""
        self._trailers: Dict[str, str] = {}
        self._trailerLines: List[bytes] = []
        self._trailerSigned = False
        self._failure: Optional[S3Error] = None

    @property
    def decoded(self) -> int:
        """Object bytes delivered so far."""
        return self._decoded

    def feed(self, data: bytes) -> None:
        """
        Decode the next piece of the body.

        @raise S3Error: C{InvalidRequest} for malformed framing,
            C{IncompleteBody} for more data than C{decodedLength},
            C{SignatureDoesNotMatch} for a bad chunk or trailer signature.
        """
        if self._failure is not None:
            raise self._failure
        try:
            self._feed(data)
        except S3Error as e:
            self._failure = e
            raise

    def finish(self) -> Dict[str, str]:
        """
        The body ended: check it was complete.

        @return: the trailing headers, lower-case names, without
            C{x-amz-trailer-signature}.
        @raise S3Error: C{IncompleteBody} if the final chunk (and trailers)
            were not all seen or the size is not C{decodedLength}.
        """
        if self._failure is not None:
            raise self._failure
        try:
            return self._finish()
        except S3Error as e:
            self._failure = e
            raise

    # ------------------------------------------------------------ internals

    def _feed(self, data: bytes) -> None:
        position = 0
        end = len(data)
        while position < end:
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, end - position)
                piece = data[position : position + take] if take != end else data
                position += take
                self._remaining -= take
                self._decoded += take
                if self._signer is not None:
                    self._chunkHash.update(piece)
                self._deliver(piece)
                if self._remaining == 0:
                    self._endOfChunk(final=False)
            elif state is _State.DONE:
                raise _malformed("data after the end of the body.")
            else:
                newline = data.find(b"\n", position)
                stop = end if newline < 0 else newline + 1
                if len(self._line) + stop - position > self._maxLine:
                    raise _malformed(f"{state.value} line too long.")
                self._line += data[position:stop]
                position = stop
                if newline >= 0:
                    line = bytes(self._line)
                    del self._line[:]
                    self._gotLine(line)

    def _finish(self) -> Dict[str, str]:
        if self._state is _State.TRAILER and self._line:
            # Some SDKs end the body right after the last trailer line,
            # with no CRLF at all.
            line = bytes(self._line)
            del self._line[:]
            self._gotLine(line)
        if self._state is _State.FINAL_CRLF and self._line.strip(b"\r"):
            raise _malformed("garbage after the final chunk.")
        if self._state is _State.TRAILER and self._signer is not None and self._trailers and not self._trailerSigned:
            raise _unsignedTrailers()
        if self._state not in (_State.DONE, _State.TRAILER, _State.FINAL_CRLF):
            raise S3Error("IncompleteBody", f"The body ended in the middle of a {self._state.value}.")
        self._state = _State.DONE
        if self._decodedLength is not None and self._decoded != self._decodedLength:
            raise S3Error(
                "IncompleteBody",
                f"The decoded body is {self._decoded} bytes, x-amz-decoded-content-length said {self._decodedLength}.",
            )
        return dict(self._trailers)

    def _gotLine(self, line: bytes) -> None:
        """Handle one complete line (it still has its line ending)."""
        content = line.rstrip(b"\n")
        if content.endswith(b"\r"):
            content = content[:-1]
        state = self._state
        if state is _State.HEADER:
            self._chunkHeader(content)
        elif state is _State.DATA_CRLF:
            if content:
                raise _malformed("chunk data longer than its declared size.")
            self._state = _State.HEADER
        elif state is _State.FINAL_CRLF:
            if content:
                raise _malformed("unexpected data after the final chunk.")
            self._state = _State.DONE
        elif state is _State.TRAILER:
            self._trailerLine(content)

    def _chunkHeader(self, content: bytes) -> None:
        sizeText, _, extensions = content.partition(b";")
        sizeText = sizeText.strip()
        size = parseHex(
            sizeText.decode("latin-1"), maximum=MAX_CHUNK_SIZE,
            error=lambda: _malformed(f"bad chunk size {sizeText[:32]!r}."),
        )
        if self._signer is not None:
            signature = None
            for extension in extensions.split(b";"):
                name, _, value = extension.partition(b"=")
                if name.strip() == b"chunk-signature":
                    signature = value.strip().decode("latin-1")
            if signature is None:
                raise _malformed("chunk without chunk-signature.")
            self._chunkSignature = signature
        if self._decodedLength is not None and self._decoded + size > self._decodedLength:
            raise S3Error(
                "IncompleteBody",
                f"The chunks hold more than the {self._decodedLength} bytes of x-amz-decoded-content-length.",
            )
        self._chunkHash = hashlib.sha256()
        self._remaining = size
        if size:
            self._state = _State.DATA
        else:
            self._endOfChunk(final=True)

    def _endOfChunk(self, final: bool) -> None:
        """
        All of a chunk's data arrived: check its signature.

        @param final: whether this is the zero-size chunk ending the data.
        """
        if self._signer is not None:
            expected = self._signer.chunkSignature(self._previous, self._chunkHash.hexdigest())
            if not hmac.compare_digest(expected.encode("ascii"), self._chunkSignature.encode("latin-1")):
                raise _badSignature("chunk")
            self._previous = expected
        if final:
            self._state = _State.TRAILER if self._trailer else _State.FINAL_CRLF
        else:
            self._state = _State.DATA_CRLF

    def _trailerLine(self, content: bytes) -> None:
        if not content:
            if self._signer is not None and self._trailers and not self._trailerSigned:
                raise _unsignedTrailers()
            if self._trailers or self._trailerSigned or self._signer is None:
                self._state = _State.DONE
            # else: a CRLF some clients put between the final chunk and
            # signed trailers; or the end of a body without trailers,
            # which finish() accepts.
            return
        if self._trailerSigned:
            raise _malformed("trailing header after x-amz-trailer-signature.")
        if len(self._trailerLines) >= MAX_TRAILERS:
            raise _malformed("too many trailing headers.")
        nameBytes, sep, valueBytes = content.partition(b":")
        name = nameBytes.strip().decode("latin-1").lower()
        if not sep or not name:
            raise _malformed(f"bad trailing header {content[:64]!r}.")
        value = valueBytes.strip().decode("latin-1")
        if name == _TRAILER_SIGNATURE:
            if self._signer is None:
                raise _malformed("x-amz-trailer-signature in an unsigned body.")
            self._checkTrailerSignature(value)
            self._trailerSigned = True
            return
        self._trailers[name] = value
        self._trailerLines.append(content + b"\n")

    def _checkTrailerSignature(self, provided: str) -> None:
        """
        Verify C{x-amz-trailer-signature}.

        The signed bytes are the trailer lines with C{\\n} endings.  The
        lines exactly as sent come first; the canonical form (lower-case
        names, trimmed values, sorted) second.  Each is tried with the
        documented C{AWS4-HMAC-SHA256-TRAILER} algorithm line and with the
        C{-PAYLOAD} one the S3 documentation's example was computed with.
        """
        assert self._signer is not None
        if not _SIGNATURE.match(provided):
            raise _badSignature("trailer")
        asSent = b"".join(self._trailerLines)
        canonical = "".join(f"{name}:{self._trailers[name]}\n" for name in sorted(self._trailers)).encode("latin-1")
        for trailerBytes in dict.fromkeys([asSent, canonical]):
            digest = hashlib.sha256(trailerBytes).hexdigest()
            for algorithm in ("AWS4-HMAC-SHA256-TRAILER", "AWS4-HMAC-SHA256-PAYLOAD"):
                expected = self._signer.trailerSignature(self._previous, digest, algorithm)
                if hmac.compare_digest(expected, provided):
                    return
        raise _badSignature("trailer")
