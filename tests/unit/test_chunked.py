"""
Tests for L{fasterstore.auth.chunked}.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from typing import Dict, List, Optional, Sequence

from botocore.httpchecksum import AwsChunkedWrapper, CrtCrc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.auth.chunked import AwsChunkedDecoder
from fasterstore.auth.chunked import ChunkSigner
from fasterstore.auth.sigv4 import signingKey

# The S3 documentation's examples ("sigv4-streaming", "sigv4-streaming-trailers").
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_TIMESTAMP = "20130524T000000Z"
DOC_SCOPE = "20130524/us-east-1/s3/aws4_request"
DOC_KEY = signingKey(DOC_SECRET, "20130524", "us-east-1")


def docSigner(seed: str) -> ChunkSigner:
    """The signer of the documentation's examples, from a seed signature."""
    return ChunkSigner(DOC_KEY, DOC_TIMESTAMP, DOC_SCOPE, seed)


SIGNER = ChunkSigner(signingKey("secret", "20240102", "us-east-1"), "20240102T030405Z", "20240102/us-east-1/s3/aws4_request", "0" * 64)


def encode(
    payload: bytes,
    chunkSize: int,
    signer: Optional[ChunkSigner],
    trailers: Optional[Dict[str, str]] = None,
    finalCRLF: bool = True,
) -> bytes:
    """
    Frame C{payload} as aws-chunked, as an SDK would.

    @param trailers: trailing headers to send after the final chunk (signed
        when C{signer} is given), or C{None} for the no-trailer format.
    """
    out = bytearray()
    previous = signer.seedSignature if signer is not None else ""
    pieces = [payload[i : i + chunkSize] for i in range(0, len(payload), chunkSize)] + [b""]
    for piece in pieces:
        if signer is not None:
            previous = signer.chunkSignature(previous, hashlib.sha256(piece).hexdigest())
            out += b"%x;chunk-signature=%s\r\n" % (len(piece), previous.encode())
        else:
            out += b"%x\r\n" % (len(piece),)
        if piece:
            out += piece + b"\r\n"
    if trailers is None:
        out += b"\r\n"
        return bytes(out)
    signed = b""
    for name, value in trailers.items():
        line = f"{name}:{value}".encode()
        out += line + b"\r\n"
        signed += line + b"\n"
    if signer is not None:
        signature = signer.trailerSignature(previous, hashlib.sha256(signed).hexdigest())
        out += b"x-amz-trailer-signature:" + signature.encode() + b"\r\n"
    if finalCRLF:
        out += b"\r\n"
    return bytes(out)


def crc32(payload: bytes) -> str:
    """The base64 CRC-32 S3 sends as C{x-amz-checksum-crc32}."""
    return base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()


class Collector:
    """A deliver() callback that remembers what it got."""

    def __init__(self) -> None:
        self.pieces: List[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.pieces.append(data)

    @property
    def data(self) -> bytes:
        """Everything delivered so far."""
        return b"".join(self.pieces)


def decode(
    wire: bytes,
    splits: Sequence[int] = (),
    *,
    signer: Optional[ChunkSigner],
    trailer: bool,
    decodedLength: Optional[int] = None,
) -> "tuple[bytes, Dict[str, str]]":
    """Feed C{wire} cut at C{splits}; return the object and trailers."""
    out = Collector()
    decoder = AwsChunkedDecoder(out, signer=signer, trailer=trailer, decodedLength=decodedLength)
    cuts = [0] + sorted(set(s for s in splits if 0 < s < len(wire))) + [len(wire)]
    for start, stop in zip(cuts, cuts[1:]):
        decoder.feed(wire[start:stop])
    trailers = decoder.finish()
    return out.data, trailers


class DocumentationExampleTests(SynchronousTestCase):
    """The worked examples in the S3 documentation, byte for byte."""

    SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"

    def wire(self) -> bytes:
        """The documented 66560-byte body of 'a' as three chunks."""
        return (
            b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
            + b"a" * 65536
            + b"\r\n"
            + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
            + b"a" * 1024
            + b"\r\n"
            + b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
        )

    def test_chunkSignatures(self) -> None:
        """L{ChunkSigner.chunkSignature} reproduces the documented chain."""
        signer = docSigner(self.SEED)
        first = signer.chunkSignature(self.SEED, hashlib.sha256(b"a" * 65536).hexdigest())
        self.assertEqual(first, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648")
        second = signer.chunkSignature(first, hashlib.sha256(b"a" * 1024).hexdigest())
        self.assertEqual(second, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497")
        self.assertEqual(encode(b"a" * 66560, 65536, signer), self.wire())

    def test_decode(self) -> None:
        """The documented body decodes to its 66560 bytes, no trailers."""
        data, trailers = decode(self.wire(), [1, 100, 70000], signer=docSigner(self.SEED), trailer=False, decodedLength=66560)
        self.assertEqual(data, b"a" * 66560)
        self.assertEqual(trailers, {})

    def test_wrongSeed(self) -> None:
        """The same body under another seed signature fails its first chunk."""
        decoder = AwsChunkedDecoder(Collector(), signer=docSigner("1" * 64), trailer=False, decodedLength=66560)
        error = self.assertRaises(S3Error, decoder.feed, self.wire())
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_signedTrailerExample(self) -> None:
        """
        The documented trailer example (seed, chunk and trailer signatures,
        body ending without a final CRLF) decodes with its checksum.
        """
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        wire = (
            b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
            + b"a" * 65536
            + b"\r\n"
            + b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
            + b"a" * 1024
            + b"\r\n"
            + b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
            + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
            + b"x-amz-trailer-signature:63bddb248ad2590c92712055f51b8e78ab024eead08276b24f010b0efd74843f\r\n"
        )
        data, trailers = decode(wire, signer=docSigner(seed), trailer=True, decodedLength=66560)
        self.assertEqual(len(data), 66560)
        self.assertEqual(trailers, {"x-amz-checksum-crc32c": "sOO8/Q=="})
        tampered = wire.replace(b"sOO8/Q==", b"sOO8/Q=A")
        error = self.assertRaises(S3Error, decode, tampered, signer=docSigner(seed), trailer=True)
        self.assertEqual(error.code, "SignatureDoesNotMatch")


MODES = st.sampled_from(["signed", "signed-trailer", "unsigned-trailer"])


def modeArgs(mode: str) -> "tuple[Optional[ChunkSigner], bool]":
    """The decoder's signer and trailer arguments for a mode name."""
    return (SIGNER if mode.startswith("signed") else None), mode.endswith("trailer")


class RoundTripTests(SynchronousTestCase):
    """Whatever our encoder frames, the decoder gives back, however cut."""

    @settings(max_examples=200, deadline=None)
    @given(
        payload=st.binary(max_size=3000),
        chunkSize=st.integers(min_value=1, max_value=1500),
        mode=MODES,
        splits=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
        finalCRLF=st.booleans(),
    )
    def test_roundTrip(self, payload: bytes, chunkSize: int, mode: str, splits: List[int], finalCRLF: bool) -> None:
        """Any payload, chunk size, mode and split points round-trip."""
        signer, trailer = modeArgs(mode)
        trailers = {"x-amz-checksum-crc32": crc32(payload)} if trailer else None
        wire = encode(payload, chunkSize, signer, trailers, finalCRLF=finalCRLF)
        data, got = decode(wire, splits, signer=signer, trailer=trailer, decodedLength=len(payload))
        self.assertEqual(data, payload)
        self.assertEqual(got, trailers or {})

    @settings(max_examples=100, deadline=None)
    @given(payload=st.binary(min_size=1, max_size=2000), mode=MODES, data=st.data())
    def test_truncated(self, payload: bytes, mode: str, data: st.DataObject) -> None:
        """Any cut before the final chunk's header ends is IncompleteBody."""
        signer, trailer = modeArgs(mode)
        wire = encode(payload, 700, signer, {"x-amz-checksum-crc32": crc32(payload)} if trailer else None)
        lastHeader = wire.rindex(b"\r\n0") + 3
        cut = data.draw(st.integers(min_value=0, max_value=lastHeader))
        decoder = AwsChunkedDecoder(Collector(), signer=signer, trailer=trailer, decodedLength=None)
        decoder.feed(wire[:cut])
        error = self.assertRaises(S3Error, decoder.finish)
        self.assertEqual(error.code, "IncompleteBody")

    @settings(max_examples=100, deadline=None)
    @given(payload=st.binary(min_size=1, max_size=2000), data=st.data())
    def test_corruptedData(self, payload: bytes, data: st.DataObject) -> None:
        """Changing any one object byte breaks that chunk's signature."""
        wire = bytearray(encode(payload, 500, SIGNER))
        index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        offset = 0
        for start in range(0, len(payload), 500):
            header = wire.index(b"\r\n", offset) + 2
            if start <= index < start + 500:
                wire[header + index - start] ^= 0x01
                break
            offset = header + min(500, len(payload) - start) + 2
        error = self.assertRaises(S3Error, decode, bytes(wire), signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "SignatureDoesNotMatch")


class DecoderTests(SynchronousTestCase):
    """Framing, signature and length failures, and streaming behaviour."""

    def test_incrementalDelivery(self) -> None:
        """
        Object bytes are delivered during the feed that brought them: an
        8 MiB chunk fed in 64 KiB pieces never sits in the decoder.
        """
        payload = bytes(range(256)) * (8 * 1024 * 4)
        wire = encode(payload, len(payload), SIGNER)
        out = Collector()
        decoder = AwsChunkedDecoder(out, signer=SIGNER, trailer=False, decodedLength=len(payload))
        header = wire.index(b"\r\n") + 2
        decoder.feed(wire[:header])
        self.assertEqual(out.pieces, [])
        fed = 0
        for start in range(header, header + len(payload), 65536):
            piece = wire[start : start + 65536]
            decoder.feed(piece)
            fed += len(piece)
            self.assertEqual(len(out.data), fed)
            self.assertEqual(len(out.pieces[-1]), len(piece))
        decoder.feed(wire[header + len(payload) :])
        self.assertEqual(decoder.finish(), {})
        self.assertEqual(out.data, payload)

    def test_badChunkSignature(self) -> None:
        """A chunk signed with the wrong previous signature is refused."""
        wire = encode(b"hello", 5, SIGNER)
        other = ChunkSigner(SIGNER.signingKey, SIGNER.timestamp, SIGNER.scope, "f" * 64)
        error = self.assertRaises(S3Error, decode, encode(b"hello", 5, other), signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "SignatureDoesNotMatch")
        self.assertEqual(decode(wire, signer=SIGNER, trailer=False)[0], b"hello")

    def test_reorderedChunks(self) -> None:
        """Swapping two validly signed chunks breaks the chain."""
        wire = encode(b"aaaabbbb", 4, SIGNER)
        first = wire.index(b"4;")
        second = wire.index(b"4;", first + 1)
        third = wire.index(b"0;")
        swapped = wire[:first] + wire[second:third] + wire[first:second] + wire[third:]
        error = self.assertRaises(S3Error, decode, swapped, signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_missingChunkSignature(self) -> None:
        """A signed body whose chunk header lacks chunk-signature is malformed."""
        error = self.assertRaises(S3Error, decode, encode(b"hello", 5, None), signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "InvalidRequest")

    def test_badFinalSignature(self) -> None:
        """The zero-size final chunk's signature is checked too."""
        wire = encode(b"hello", 5, SIGNER)
        end = wire.rindex(b"0;chunk-signature=") + len(b"0;chunk-signature=")
        tampered = wire[:end] + b"0" * 64 + wire[end + 64 :]
        decoder = AwsChunkedDecoder(Collector(), signer=SIGNER, trailer=False, decodedLength=None)
        error = self.assertRaises(S3Error, decoder.feed, tampered)
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_failureIsSticky(self) -> None:
        """After an error every later call raises it again."""
        decoder = AwsChunkedDecoder(Collector(), signer=None, trailer=True, decodedLength=None)
        error = self.assertRaises(S3Error, decoder.feed, b"zz\r\n")
        self.assertIs(self.assertRaises(S3Error, decoder.feed, b"0\r\n\r\n"), error)
        self.assertIs(self.assertRaises(S3Error, decoder.finish), error)

    def test_badSize(self) -> None:
        """A chunk size that is not hex, or absurdly long, is malformed."""
        for header in [b"xyz\r\n", b"\r\n", b"-1\r\n", b"1" * 17 + b"\r\n"]:
            decoder = AwsChunkedDecoder(Collector(), signer=None, trailer=True, decodedLength=None)
            error = self.assertRaises(S3Error, decoder.feed, header)
            self.assertEqual(error.code, "InvalidRequest", header)

    def test_headerTooLong(self) -> None:
        """A chunk header without end is refused once past maxChunkHeader."""
        decoder = AwsChunkedDecoder(Collector(), signer=None, trailer=True, decodedLength=None, maxChunkHeader=100)
        decoder.feed(b"5;" + b"x" * 90)
        error = self.assertRaises(S3Error, decoder.feed, b"x" * 20)
        self.assertEqual(error.code, "InvalidRequest")

    def test_dataLongerThanSize(self) -> None:
        """Chunk data running past its declared size is malformed."""
        error = self.assertRaises(S3Error, decode, b"3\r\nhello\r\n0\r\n\r\n", signer=None, trailer=True)
        self.assertEqual(error.code, "InvalidRequest")

    def test_dataAfterEnd(self) -> None:
        """Bytes after the end of the body are malformed."""
        wire = encode(b"hello", 5, SIGNER) + b"5\r\n"
        error = self.assertRaises(S3Error, decode, wire, signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "InvalidRequest")

    def test_decodedLengthShort(self) -> None:
        """Fewer bytes than x-amz-decoded-content-length is IncompleteBody."""
        error = self.assertRaises(S3Error, decode, encode(b"hello", 2, SIGNER), signer=SIGNER, trailer=False, decodedLength=6)
        self.assertEqual(error.code, "IncompleteBody")

    def test_decodedLengthLong(self) -> None:
        """A chunk taking the body past the declared length fails at once."""
        out = Collector()
        decoder = AwsChunkedDecoder(out, signer=SIGNER, trailer=False, decodedLength=4)
        error = self.assertRaises(S3Error, decoder.feed, encode(b"hello", 2, SIGNER))
        self.assertEqual(error.code, "IncompleteBody")
        self.assertEqual(out.data, b"hell")

    def test_signedTrailer(self) -> None:
        """A signed checksum trailer is returned, its signature checked."""
        payload = b"x" * 1000
        trailers = {"x-amz-checksum-crc32": crc32(payload)}
        wire = encode(payload, 300, SIGNER, trailers)
        self.assertEqual(decode(wire, signer=SIGNER, trailer=True, decodedLength=1000), (payload, trailers))
        tampered = wire.replace(crc32(payload).encode(), b"AAAAAA==")
        error = self.assertRaises(S3Error, decode, tampered, signer=SIGNER, trailer=True)
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_signedTrailerWithoutSignature(self) -> None:
        """Signed-trailer bodies must sign their trailers."""
        wire = encode(b"hello", 5, SIGNER, {"x-amz-checksum-crc32": crc32(b"hello")})
        unsigned = wire[: wire.index(b"x-amz-trailer-signature")] + b"\r\n"
        error = self.assertRaises(S3Error, decode, unsigned, signer=SIGNER, trailer=True)
        self.assertEqual(error.code, "IncompleteBody")

    def test_trailerAfterSignature(self) -> None:
        """Nothing may follow x-amz-trailer-signature but the end."""
        wire = encode(b"hello", 5, SIGNER, {"x-amz-checksum-crc32": crc32(b"hello")})
        injected = wire[:-2] + b"x-amz-checksum-sha1:AAAA\r\n\r\n"
        error = self.assertRaises(S3Error, decode, injected, signer=SIGNER, trailer=True)
        self.assertEqual(error.code, "InvalidRequest")

    def test_signedTrailerCRLFBeforeTrailers(self) -> None:
        """Some clients send an empty line between the final chunk and signed trailers."""
        trailers = {"x-amz-checksum-crc32": crc32(b"hello")}
        wire = encode(b"hello", 5, SIGNER, trailers)
        zero = wire.index(b"0;chunk-signature=")
        lineEnd = wire.index(b"\r\n", zero) + 2
        wire = wire[:lineEnd] + b"\r\n" + wire[lineEnd:]
        self.assertEqual(decode(wire, signer=SIGNER, trailer=True), (b"hello", trailers))

    def test_trailerWithoutLineEnd(self) -> None:
        """A body ending in the middle of the last trailer line (no CRLF) is accepted."""
        trailers = {"x-amz-checksum-crc32": crc32(b"hello")}
        wire = encode(b"hello", 5, SIGNER, trailers, finalCRLF=False)
        self.assertEqual(decode(wire[:-2], signer=SIGNER, trailer=True), (b"hello", trailers))
        unsigned = encode(b"hello", 5, None, trailers, finalCRLF=False)
        self.assertEqual(decode(unsigned[:-2], signer=None, trailer=True), (b"hello", trailers))

    def test_malformedTrailer(self) -> None:
        """A trailer line without a colon is malformed."""
        error = self.assertRaises(S3Error, decode, b"0\r\nnot a header\r\n\r\n", signer=None, trailer=True)
        self.assertEqual(error.code, "InvalidRequest")

    def test_unsignedTrailerSignature(self) -> None:
        """An unsigned body cannot carry x-amz-trailer-signature."""
        wire = b"0\r\nx-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n"
        error = self.assertRaises(S3Error, decode, wire, signer=None, trailer=True)
        self.assertEqual(error.code, "InvalidRequest")

    def test_trailerNeverDelivered(self) -> None:
        """Trailer bytes never reach deliver(), and names are lower-cased."""
        wire = b"5\r\nhello\r\n0\r\nX-Amz-Checksum-CRC32: " + crc32(b"hello").encode() + b"\r\n\r\n"
        data, trailers = decode(wire, range(len(wire)), signer=None, trailer=True, decodedLength=5)
        self.assertEqual(data, b"hello")
        self.assertEqual(trailers, {"x-amz-checksum-crc32": crc32(b"hello")})

    def test_noTrailerButTrailerSent(self) -> None:
        """Without the trailer mode, header lines after the final chunk are refused."""
        wire = b"0;chunk-signature=" + SIGNER.chunkSignature("0" * 64, hashlib.sha256(b"").hexdigest()).encode()
        wire += b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
        error = self.assertRaises(S3Error, decode, wire, signer=SIGNER, trailer=False)
        self.assertEqual(error.code, "InvalidRequest")


class BotocoreTests(SynchronousTestCase):
    """botocore's own aws-chunked encoder (unsigned, with a checksum trailer)."""

    @settings(max_examples=50, deadline=None)
    @given(payload=st.binary(max_size=5000), chunkSize=st.integers(min_value=1, max_value=2000), withChecksum=st.booleans())
    def test_awsChunkedWrapper(self, payload: bytes, chunkSize: int, withChecksum: bool) -> None:
        """L{AwsChunkedWrapper} output decodes to the payload and its checksum."""
        wrapper = AwsChunkedWrapper(
            io.BytesIO(payload),
            checksum_cls=CrtCrc32Checksum if withChecksum else None,
            checksum_name="x-amz-checksum-crc32",
            chunk_size=chunkSize,
        )
        wire = wrapper.read()
        data, trailers = decode(wire, [len(wire) // 3, len(wire) // 2], signer=None, trailer=True, decodedLength=len(payload))
        self.assertEqual(data, payload)
        self.assertEqual(trailers, {"x-amz-checksum-crc32": crc32(payload)} if withChecksum else {})
