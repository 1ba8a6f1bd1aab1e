"""Tests for L{fasterstore.s3.operations}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.s3.operations import SUBRESOURCES, levelOf, select
from fasterstore.s3.routing import route


def pick(method: bytes, uri: bytes, headers: dict[str, str] | None = None) -> str:
    r = route(uri, 0, None, ())
    return select(levelOf(r), method, r, headers or {}).name


class SelectTests(SynchronousTestCase):
    """The table picks operations the way S3 does."""

    def test_defaults(self) -> None:
        """Plain requests map to the basic operations."""
        self.assertEqual(pick(b"GET", b"/"), "ListBuckets")
        self.assertEqual(pick(b"GET", b"/b"), "ListObjects")
        self.assertEqual(pick(b"GET", b"/b?list-type=2"), "ListObjectsV2")
        self.assertEqual(pick(b"GET", b"/b?location"), "GetBucketLocation")
        self.assertEqual(pick(b"PUT", b"/b/k"), "PutObject")
        self.assertEqual(pick(b"GET", b"/b/k?versionId=null&partNumber=1"), "GetObject")

    def test_subresourceNeverFallsToDefault(self) -> None:
        """Every unclaimed sub-resource is NotImplemented, on every level and method."""
        for name in SUBRESOURCES:
            for method in (b"GET", b"PUT", b"DELETE"):
                for uri in (b"/b?" + name.encode(), b"/b/k?" + name.encode()):
                    try:
                        operation = pick(method, uri)
                    except S3Error as e:
                        self.assertIn(e.code, ("NotImplemented", "MethodNotAllowed"))
                    else:
                        self.assertNotIn(operation, ("ListObjects", "PutObject", "GetObject", "DeleteObject",
                                                     "CreateBucket", "DeleteBucket"), (method, uri))

    def test_versioning(self) -> None:
        """?versioning reads and writes the bucket's state; ?versions lists; versionId selects nothing by itself."""
        self.assertEqual(pick(b"PUT", b"/b?versioning"), "PutBucketVersioning")
        self.assertEqual(pick(b"GET", b"/b?versioning"), "GetBucketVersioning")
        self.assertEqual(pick(b"GET", b"/b?versions"), "ListObjectVersions")
        self.assertEqual(pick(b"DELETE", b"/b/k?versionId=0000000000001"), "DeleteObject")
        self.assertEqual(pick(b"GET", b"/b/k?tagging&versionId=0000000000001"), "GetObjectTagging")
        e = self.assertRaises(S3Error, pick, b"DELETE", b"/b?versioning")
        self.assertEqual(e.code, "NotImplemented")

    def test_headerRule(self) -> None:
        """A PUT with x-amz-copy-source is CopyObject, not PutObject."""
        self.assertEqual(pick(b"PUT", b"/b/k", {"x-amz-copy-source": "/a/b"}), "CopyObject")

    def test_methodNotAllowed(self) -> None:
        """A method S3 does not define on a level is MethodNotAllowed."""
        e = self.assertRaises(S3Error, pick, b"PATCH", b"/b/k")
        self.assertEqual(e.code, "MethodNotAllowed")
        e = self.assertRaises(S3Error, pick, b"POST", b"/b/k")
        self.assertEqual(e.code, "NotImplemented")
