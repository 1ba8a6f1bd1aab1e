"""Tests for L{fasterstore.s3.routing}."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.auth.canonical import queryParameters
from fasterstore.s3.routing import hostBucket, route


class RouteTests(SynchronousTestCase):
    """Path-style, virtual-hosted-style and mounted routing on the raw URI."""

    def test_service(self) -> None:
        """C{/} addresses the service."""
        r = route(b"/", 0, b"localhost:9000", ())
        self.assertEqual((r.bucket, r.key), (None, None))

    def test_bucketTrailingSlash(self) -> None:
        """A bucket with or without a trailing slash is the same bucket."""
        self.assertEqual(route(b"/b", 0, None, ()).bucket, "b")
        r = route(b"/b/", 0, None, ())
        self.assertEqual((r.bucket, r.key), ("b", None))

    def test_keyDecodedFromRawURI(self) -> None:
        """Keys are percent-decoded once; C{%2F} becomes C{/}, C{+} stays C{+}."""
        r = route(b"/b/a%2Fb/c+d%2B%20e/%C3%A9//x", 0, None, ())
        self.assertEqual(r.key, "a/b/c+d+ e/\u00e9//x")
        self.assertEqual(r.rawPath, b"/b/a%2Fb/c+d%2B%20e/%C3%A9//x")

    def test_query(self) -> None:
        """Query values decode C{+} as space; bare names map to empty strings."""
        r = route(b"/b?list-type=2&prefix=a+b%2Bc&uploads", 0, None, ())
        self.assertEqual(r.query, {"list-type": "2", "prefix": "a b+c", "uploads": ""})
        self.assertEqual(r.rawQuery, b"list-type=2&prefix=a+b%2Bc&uploads")

    def test_mounted(self) -> None:
        """Segments of the mount point are not part of the bucket or key."""
        r = route(b"/api/s3/b/k%2Fx?acl", 2, None, ())
        self.assertEqual((r.bucket, r.key), ("b", "k/x"))
        self.assertEqual(r.rawPath, b"/api/s3/b/k%2Fx")
        self.assertEqual(route(b"/api/s3", 2, None, ()).bucket, None)

    def test_virtualHost(self) -> None:
        """With a configured domain, the Host names the bucket."""
        r = route(b"/k/y", 0, b"My-Bucket.s3.example.com:9000", ("s3.example.com",))
        self.assertEqual((r.bucket, r.key, r.virtualHost), ("my-bucket", "k/y", True))
        r = route(b"/b/k", 0, b"s3.example.com", ("s3.example.com",))
        self.assertEqual((r.bucket, r.key, r.virtualHost), ("b", "k", False))

    def test_hostBucketIgnoresOtherHosts(self) -> None:
        """Hosts outside the configured domains are path-style."""
        self.assertIsNone(hostBucket(b"b.other.com", ("example.com",)))
        self.assertIsNone(hostBucket(b"[::1]:9000", ("example.com",)))
        self.assertIsNone(hostBucket(b"b.example.com", ()))

    def test_invalidUTF8(self) -> None:
        """A key that is not UTF-8 is an InvalidURI error, not a crash."""
        e = self.assertRaises(S3Error, route, b"/b/%FF", 0, None, ())
        self.assertEqual(e.code, "InvalidURI")

    def test_absoluteForm(self) -> None:
        """An absolute-form request target routes on its path."""
        r = route(b"http://host:9000/b/k", 0, None, ())
        self.assertEqual((r.bucket, r.key), ("b", "k"))

    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
    def test_keyRoundTrip(self, key: str) -> None:
        """Any key quoted the way botocore quotes it routes back to itself."""
        from urllib.parse import quote

        uri = ("/bucket/" + quote(key, safe="/~")).encode("ascii")
        self.assertEqual(route(uri, 0, None, ()).key, key)

    def test_repeatedParameterRefused(self) -> None:
        """
        A repeated parameter is refused, however it is spelled: the signature
        covers both values and only one could be acted on.
        """
        for query in (b"a=1&a=2", b"a=1&%61=2", b"uploadId=x&uploadId", b"a+b=1&a%20b=2"):
            with self.assertRaises(S3Error) as caught:
                queryParameters(query)
            self.assertEqual(caught.exception.code, "InvalidArgument")
            with self.assertRaises(S3Error):
                route(b"/bucket/key?" + query, 0, None, ())

    def test_localPath(self) -> None:
        """The path below a mount point is kept as sent, for SigV2."""
        r = route(b"/storage/s3/photos/a%20b.txt?acl", 2, None, ())
        self.assertEqual((r.bucket, r.key, r.localPath), ("photos", "a b.txt", b"/photos/a%20b.txt"))
        self.assertEqual(route(b"/photos/x", 0, None, ()).localPath, b"/photos/x")
