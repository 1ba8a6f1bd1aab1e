"""
Tests for L{fasterstore.checksums}.
"""

from __future__ import annotations

import hashlib
from typing import List

import blake3
from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.checksums import ALGORITHMS, Digests, fromBase64, newHasher, toBase64

# botocore's implementations: what S3 clients will compare our values with.
BOTOCORE = {
    "crc32": httpchecksum.CrtCrc32Checksum,
    "crc32c": httpchecksum.CrtCrc32cChecksum,
    "crc64nvme": httpchecksum.CrtCrc64NvmeChecksum,
    "sha1": httpchecksum.Sha1Checksum,
    "sha256": httpchecksum.Sha256Checksum,
}


def botocoreDigest(name: str, chunks: List[bytes]) -> bytes:
    checksum = BOTOCORE[name]()
    for chunk in chunks:
        checksum.update(chunk)
    return bytes(checksum.digest())


class CheckValueTests(SynchronousTestCase):
    """Published check values (input C{b"123456789"}) for each CRC."""

    def test_crc32(self) -> None:
        """zlib's CRC-32 is the IEEE one S3 calls crc32."""
        h = newHasher("crc32")
        h.update(b"123456789")
        self.assertEqual(h.digest(), bytes.fromhex("cbf43926"))

    def test_crc32c(self) -> None:
        """CRC-32C (Castagnoli) check value."""
        h = newHasher("crc32c")
        h.update(b"123456789")
        self.assertEqual(h.digest(), bytes.fromhex("e3069283"))

    def test_crc64nvme(self) -> None:
        """CRC-64/NVME check value, as 8 big-endian bytes."""
        h = newHasher("crc64nvme")
        h.update(b"123456789")
        self.assertEqual(h.digest(), bytes.fromhex("ae8b14860a799888"))

    def test_unknown(self) -> None:
        """An unknown algorithm name is a ValueError, not a KeyError."""
        self.assertRaises(ValueError, newHasher, "crc16")
        self.assertRaises(ValueError, Digests, ["md4"])


class DigestsTests(SynchronousTestCase):
    """L{Digests} agrees with botocore, hashlib and blake3."""

    def test_alwaysMD5AndBLAKE3(self) -> None:
        """md5 and blake3 are computed even when nothing else is asked for."""
        d = Digests([])
        self.assertEqual(d.algorithms, ("md5", "blake3"))
        self.assertEqual(
            d.result(),
            {"md5": hashlib.md5(b"").digest(), "blake3": blake3.blake3(b"").digest()},
        )

    def test_duplicatesIgnored(self) -> None:
        """Asking twice for an algorithm, or for md5, computes it once."""
        d = Digests(["sha256", "md5", "sha256"])
        self.assertEqual(d.algorithms, ("md5", "blake3", "sha256"))

    def test_widths(self) -> None:
        """CRC32s are 4 bytes and CRC64NVME 8, as S3 base64-encodes them."""
        d = Digests(ALGORITHMS)
        d.update(b"x")
        r = d.result()
        self.assertEqual(len(r["crc32"]), 4)
        self.assertEqual(len(r["crc32c"]), 4)
        self.assertEqual(len(r["crc64nvme"]), 8)

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.binary(max_size=3000), max_size=8))
    def test_matchesBotocore(self, chunks: List[bytes]) -> None:
        """Fed in any chunking, every digest equals botocore's over the whole stream."""
        d = Digests(ALGORITHMS)
        for chunk in chunks:
            d.update(memoryview(chunk))
        r = d.result()
        whole = b"".join(chunks)
        for name in ALGORITHMS:
            self.assertEqual(r[name], botocoreDigest(name, [whole]), name)
        self.assertEqual(r["md5"], hashlib.md5(whole).digest())
        self.assertEqual(r["blake3"], blake3.blake3(whole).digest())

    def test_base64(self) -> None:
        """Digests round-trip through the base64 of S3 headers."""
        raw = hashlib.md5(b"hello").digest()
        self.assertEqual(toBase64(raw), "XUFAKrxLKna5cZ2REBfFkg==")
        self.assertEqual(fromBase64("XUFAKrxLKna5cZ2REBfFkg=="), raw)
        self.assertRaises(ValueError, fromBase64, "not base64!")
