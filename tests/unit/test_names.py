"""
Tests for L{fasterstore.s3.names}.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.s3.names import (
    MAX_KEY_BYTES,
    METADATA_TOO_LARGE,
    validateBucketName,
    validateKey,
    validateUserMetadata,
)

bucketAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789.-"


class BucketNameTests(SynchronousTestCase):
    """
    L{validateBucketName} applies the AWS general purpose bucket rules.
    """

    def assertInvalid(self, name: str) -> None:
        """
        C{name} is refused with InvalidBucketName, echoing the name.
        """
        error = self.assertRaises(S3Error, validateBucketName, name)
        self.assertEqual((error.code, error.status), ("InvalidBucketName", 400))
        self.assertEqual(error.extra, {"BucketName": name})

    def test_valid(self) -> None:
        """
        Names AWS documents as valid are accepted.
        """
        for name in (
            "abc",
            "docexamplebucket1",
            "log-delivery-march-2020",
            "my-hosted-content",
            "docexamplewebsite.com",
            "www.docexamplewebsite.com",
            "my.example.s3.bucket",
            "a" * 63,
            "1bucket",
            "bucket1",
            "192.168.5.4.a",
            "xn-a",
            "a-.b",
        ):
            validateBucketName(name)

    def test_length(self) -> None:
        """
        Names must be 3 to 63 characters.
        """
        for name in ("", "a", "ab", "a" * 64):
            self.assertInvalid(name)

    def test_characters(self) -> None:
        """
        Only lowercase letters, digits, '.' and '-', so '_' (and thus
        C{_fasterstore}) is never a bucket.
        """
        for name in (
            "_fasterstore",
            "my_bucket",
            "MyBucket",
            "my bucket",
            "bücket",
            "bucket\n",
            "buc/ket",
            "ｂucket",
        ):
            self.assertInvalid(name)

    def test_ends(self) -> None:
        """
        Names start and end with a letter or digit.
        """
        for name in ("-bucket", "bucket-", ".bucket", "bucket."):
            self.assertInvalid(name)

    def test_adjacentPeriods(self) -> None:
        """
        Two periods in a row are refused.
        """
        self.assertInvalid("my..bucket")

    def test_ipAddress(self) -> None:
        """
        Names shaped like IP addresses are refused.
        """
        for name in ("192.168.5.4", "10.0.0.1", "999.999.999.999"):
            self.assertInvalid(name)

    def test_reservedPrefixes(self) -> None:
        """
        Reserved prefixes are refused.
        """
        for name in ("xn--bucket", "sthree-bucket", "sthree-configurator", "amzn-s3-demo-bucket"):
            self.assertInvalid(name)

    def test_reservedSuffixes(self) -> None:
        """
        Reserved suffixes are refused.
        """
        for name in (
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--x-s3",
            "bucket--table-s3",
        ):
            self.assertInvalid(name)

    @given(st.text(alphabet=bucketAlphabet, min_size=3, max_size=63))
    def test_model(self, name: str) -> None:
        """
        Over the allowed alphabet, acceptance agrees with the rules written
        out one by one.
        """
        valid = (
            name[0] not in ".-"
            and name[-1] not in ".-"
            and ".." not in name
            and re.fullmatch(r"[0-9]+(\.[0-9]+){3}", name) is None
            and not name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
            and not name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
        )
        if valid:
            validateBucketName(name)
        else:
            self.assertInvalid(name)

    @given(st.text())
    def test_anyText(self, name: str) -> None:
        """
        Any text is accepted or refused with InvalidBucketName, and only
        names made of the allowed characters are accepted.
        """
        try:
            validateBucketName(name)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidBucketName")
        else:
            self.assertTrue(set(name) <= set(bucketAlphabet))


class KeyTests(SynchronousTestCase):
    """
    L{validateKey} bounds object keys.
    """

    def test_valid(self) -> None:
        """
        Any non-empty key up to 1024 bytes of UTF-8 is accepted.
        """
        for key in ("a", "a/b/../c", " ", "\x00\r\n", "é" * 512, "a" * MAX_KEY_BYTES):
            validateKey(key)

    def test_empty(self) -> None:
        """
        The empty key is refused.
        """
        error = self.assertRaises(S3Error, validateKey, "")
        self.assertEqual(error.code, "InvalidArgument")

    def test_tooLong(self) -> None:
        """
        Length counts UTF-8 bytes, not characters.
        """
        for key in ("a" * (MAX_KEY_BYTES + 1), "é" * 513):
            error = self.assertRaises(S3Error, validateKey, key)
            self.assertEqual(error.code, "KeyTooLongError")

    def test_surrogates(self) -> None:
        """
        A key that is not representable in UTF-8 is refused.
        """
        error = self.assertRaises(S3Error, validateKey, "a\udcff")
        self.assertEqual(error.code, "InvalidArgument")

    @given(st.text())
    def test_anyText(self, key: str) -> None:
        """
        Any key is accepted exactly when it is 1 to 1024 bytes of UTF-8.
        """
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            size = -1
        if 1 <= size <= MAX_KEY_BYTES:
            validateKey(key)
        else:
            self.assertRaises(S3Error, validateKey, key)


class UserMetadataTests(SynchronousTestCase):
    """
    L{validateUserMetadata} enforces the 2 KB limit.
    """

    def test_limit(self) -> None:
        """
        Exactly 2048 bytes of names and values pass; one more fails.
        """
        validateUserMetadata([])
        validateUserMetadata([("a", "b" * 2047)])
        validateUserMetadata([("ab", "c" * 1000), ("d", "e" * 1045)])
        error = self.assertRaises(
            S3Error, validateUserMetadata, [("a", "b" * 1000), ("c", "d" * 1047)]
        )
        self.assertEqual(error.code, METADATA_TOO_LARGE)
        self.assertEqual(error.status, 400)

    def test_utf8Bytes(self) -> None:
        """
        The limit counts UTF-8 bytes.
        """
        self.assertRaises(S3Error, validateUserMetadata, [("a", "é" * 1024)])

    @given(st.lists(st.tuples(st.text(), st.text())))
    def test_model(self, pairs: list) -> None:
        """
        Any metadata is refused exactly when its UTF-8 size passes 2048.
        """
        size = sum(
            len(n.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
            for n, v in pairs
        )
        if size > 2048:
            self.assertRaises(S3Error, validateUserMetadata, pairs)
        else:
            validateUserMetadata(pairs)
