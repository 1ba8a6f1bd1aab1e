"""
boto3 against the real server, with the installed version's defaults (it
sends CRC32 checksums on PutObject: in a header over http, in an aws-chunked
unsigned trailer over https).

Covers buckets, objects, metadata, response-* overrides, checksums,
Content-MD5, ranges, conditional GET/HEAD/PUT (including racing conditional
PUTs), listing v1/v2, presigned URLs, virtual-hosted-style addressing,
streaming signed payloads built by hand, boto3 over TLS and a 2 GiB object
with bounded server memory; and from issue 4: managed multipart transfers
with parallel parts, GetObject/HeadObject with PartNumber, copy_object with
the metadata directive, delete_objects of 1000 keys (checksum header, no
Content-MD5) and generate_presigned_post forms posted with requests.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import shutil
import socket
import struct
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List, Optional
from urllib.parse import unquote_plus

import requests
from botocore.exceptions import ClientError

from tests.integration.harness import (
    Server,
    ServerTestCase,
    amzDate,
    checksumOf,
    childText,
    findAll,
    md5b64,
    quotedMD5,
    rawRequest,
    s3Path,
    uniqueBody,
    unsignedChunkedBody,
)

ALGORITHMS = ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]


def errorOf(call: Callable[[], object]) -> ClientError:
    """Run C{call}, which must raise a ClientError; return it."""
    try:
        call()
    except ClientError as e:
        return e
    raise AssertionError("expected a ClientError, the call succeeded")


def headerDict(request) -> Dict[str, str]:
    """A botocore request's headers, lower-case names, str values."""
    return {
        k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v for k, v in request.headers.items()
    }


def status(error: ClientError) -> int:
    return error.response["ResponseMetadata"]["HTTPStatusCode"]


def code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class Boto3Case(ServerTestCase):
    """A boto3 client on the class's shared server, and assertion helpers."""

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.s3 = self.server.client(max_pool_connections=32)

    def newBucket(self) -> str:
        name = self.bucketName()
        self.s3.create_bucket(Bucket=name)
        return name

    def assertClientError(self, call: Callable[[], object], httpStatus: int, codes: object = None) -> ClientError:
        error = errorOf(call)
        self.assertEqual(status(error), httpStatus, error.response)
        if codes is not None:
            wanted = [codes] if isinstance(codes, str) else list(codes)  # type: ignore[arg-type]
            self.assertIn(code(error), wanted, error.response)
        return error

    def assertNoObject(self, bucket: str, key: str) -> None:
        self.assertClientError(lambda: self.s3.head_object(Bucket=bucket, Key=key), 404)

    def body(self, bucket: str, key: str, **kw: object) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


class BucketTests(Boto3Case):
    """CreateBucket, ListBuckets, HeadBucket, GetBucketLocation, DeleteBucket."""

    def test_lifecycle(self) -> None:
        """A bucket is created, listed, headed, located and deleted."""
        name = self.bucketName()
        created = self.s3.create_bucket(Bucket=name)
        self.assertEqual(created["ResponseMetadata"]["HTTPStatusCode"], 200)
        listed = self.s3.list_buckets()
        names = [b["Name"] for b in listed["Buckets"]]
        self.assertIn(name, names)
        self.assertEqual(names, sorted(names))
        entry = [b for b in listed["Buckets"] if b["Name"] == name][0]
        self.assertIsInstance(entry["CreationDate"], datetime.datetime)
        age = datetime.datetime.now(datetime.timezone.utc) - entry["CreationDate"]
        self.assertLess(abs(age.total_seconds()), 300)
        self.assertIn("ID", listed["Owner"])
        self.assertEqual(self.s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"], 200)
        # us-east-1 is reported as an empty LocationConstraint, as AWS does.
        self.assertIsNone(self.s3.get_bucket_location(Bucket=name).get("LocationConstraint"))
        self.s3.delete_bucket(Bucket=name)
        self.assertNotIn(name, [b["Name"] for b in self.s3.list_buckets()["Buckets"]])
        self.assertClientError(lambda: self.s3.head_bucket(Bucket=name), 404)

    def test_createTwice(self) -> None:
        """Creating a bucket you own again in us-east-1 succeeds, as on AWS (legacy rule)."""
        name = self.newBucket()
        self.s3.create_bucket(Bucket=name)
        self.assertIn(name, [b["Name"] for b in self.s3.list_buckets()["Buckets"]])

    def test_missingBucket(self) -> None:
        """Operations on a missing bucket say NoSuchBucket."""
        name = self.bucketName("missing")
        self.assertClientError(lambda: self.s3.head_bucket(Bucket=name), 404)
        self.assertClientError(lambda: self.s3.delete_bucket(Bucket=name), 404, "NoSuchBucket")
        self.assertClientError(lambda: self.s3.list_objects_v2(Bucket=name), 404, "NoSuchBucket")
        self.assertClientError(lambda: self.s3.get_object(Bucket=name, Key="k"), 404, "NoSuchBucket")
        self.assertClientError(lambda: self.s3.put_object(Bucket=name, Key="k", Body=b"x"), 404, "NoSuchBucket")

    def test_deleteNotEmpty(self) -> None:
        """A bucket with an object in it cannot be deleted."""
        name = self.newBucket()
        self.s3.put_object(Bucket=name, Key="k", Body=b"x")
        self.assertClientError(lambda: self.s3.delete_bucket(Bucket=name), 409, "BucketNotEmpty")
        self.s3.delete_object(Bucket=name, Key="k")
        self.s3.delete_bucket(Bucket=name)
        self.assertClientError(lambda: self.s3.head_bucket(Bucket=name), 404)


class ObjectTests(Boto3Case):
    """PutObject, GetObject, HeadObject, DeleteObject and their headers."""

    def test_roundTrip(self) -> None:
        """An object reads back byte-identical with an MD5 ETag."""
        bucket = self.newBucket()
        data = os.urandom(300_000)
        put = self.s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data)
        self.assertEqual(put["ETag"], quotedMD5(data))
        got = self.s3.get_object(Bucket=bucket, Key="dir/obj.bin")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["ContentLength"], len(data))
        self.assertEqual(got["ETag"], quotedMD5(data))
        self.assertEqual(got["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges"), "bytes")
        head = self.s3.head_object(Bucket=bucket, Key="dir/obj.bin")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["ETag"], quotedMD5(data))
        age = datetime.datetime.now(datetime.timezone.utc) - head["LastModified"]
        self.assertLess(abs(age.total_seconds()), 300)
        deleted = self.s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
        self.assertEqual(deleted["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertNoObject(bucket, "dir/obj.bin")
        self.assertClientError(lambda: self.s3.get_object(Bucket=bucket, Key="dir/obj.bin"), 404, "NoSuchKey")

    def test_emptyAndOverwrite(self) -> None:
        """An empty object is fine; an overwrite replaces the content."""
        bucket = self.newBucket()
        self.s3.put_object(Bucket=bucket, Key="k", Body=b"")
        self.assertEqual(self.body(bucket, "k"), b"")
        self.assertEqual(self.s3.head_object(Bucket=bucket, Key="k")["ETag"], quotedMD5(b""))
        self.s3.put_object(Bucket=bucket, Key="k", Body=b"second")
        self.assertEqual(self.body(bucket, "k"), b"second")
        self.s3.put_object(Bucket=bucket, Key="k", Body=b"third!")
        self.assertEqual(self.body(bucket, "k"), b"third!")

    def test_deleteMissingKey(self) -> None:
        """Deleting a key that does not exist succeeds (204)."""
        bucket = self.newBucket()
        result = self.s3.delete_object(Bucket=bucket, Key="never")
        self.assertEqual(result["ResponseMetadata"]["HTTPStatusCode"], 204)

    def test_sameContentTwoKeys(self) -> None:
        """Identical content under two keys: deleting one keeps the other."""
        bucket = self.newBucket()
        data = os.urandom(100_000)
        self.s3.put_object(Bucket=bucket, Key="one", Body=data)
        self.s3.put_object(Bucket=bucket, Key="two", Body=data)
        self.s3.delete_object(Bucket=bucket, Key="one")
        self.assertEqual(self.body(bucket, "two"), data)
        self.s3.put_object(Bucket=bucket, Key="two", Body=b"other")
        self.s3.put_object(Bucket=bucket, Key="three", Body=data)
        self.assertEqual(self.body(bucket, "three"), data)

    def test_keyNames(self) -> None:
        """Keys with awkward characters round-trip and list as themselves."""
        bucket = self.newBucket()
        keys = [
            "plus+sign",
            "percent%2Bliteral",
            "space in name",
            "unicodé/☃/日本",
            "double//slash///run",
            "/leading-slash",
            "trailing/",
            "tilde~star*quote'paren()",
            "question?hash#amp&eq=",
            "ctl\x01char",
        ]
        for i, key in enumerate(keys):
            self.s3.put_object(Bucket=bucket, Key=key, Body=f"body-{i}".encode())
        for i, key in enumerate(keys):
            self.assertEqual(self.body(bucket, key), f"body-{i}".encode(), key)
        listed = [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket)["Contents"]]
        self.assertEqual(listed, sorted(keys, key=lambda k: k.encode()))
        listedV1 = [o["Key"] for o in self.s3.list_objects(Bucket=bucket)["Contents"]]
        self.assertEqual(listedV1, listed)

    def test_metadataRoundTrip(self) -> None:
        """User metadata and the system headers come back on GET and HEAD."""
        bucket = self.newBucket()
        self.s3.put_object(
            Bucket=bucket,
            Key="meta",
            Body=b"content",
            Metadata={"color": "blue", "Multi-Word": "Hello World"},
            ContentType="application/x-fasterstore-test",
            ContentEncoding="x-test-encoding",
            ContentDisposition='attachment; filename="a b.txt"',
            ContentLanguage="de-CH",
            CacheControl="max-age=3600, private",
            Expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        )
        for response in (
            self.s3.head_object(Bucket=bucket, Key="meta"),
            self.s3.get_object(Bucket=bucket, Key="meta"),
        ):
            self.assertEqual(response["Metadata"], {"color": "blue", "multi-word": "Hello World"})
            self.assertEqual(response["ContentType"], "application/x-fasterstore-test")
            self.assertEqual(response["ContentEncoding"], "x-test-encoding")
            self.assertEqual(response["ContentDisposition"], 'attachment; filename="a b.txt"')
            self.assertEqual(response["ContentLanguage"], "de-CH")
            self.assertEqual(response["CacheControl"], "max-age=3600, private")
            self.assertEqual(
                response["ResponseMetadata"]["HTTPHeaders"].get("expires"), "Wed, 02 Jan 2030 03:04:05 GMT"
            )
        # No metadata: nothing invented.
        self.s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
        head = self.s3.head_object(Bucket=bucket, Key="plain")
        self.assertEqual(head["Metadata"], {})
        self.assertNotIn("ContentEncoding", head)
        self.assertNotIn("ContentDisposition", head)

    def test_responseOverrides(self) -> None:
        """response-* query parameters override the stored headers on GET."""
        bucket = self.newBucket()
        self.s3.put_object(Bucket=bucket, Key="o", Body=b"data", ContentType="text/plain")
        got = self.s3.get_object(
            Bucket=bucket,
            Key="o",
            ResponseContentType="application/x-override",
            ResponseContentLanguage="fr",
            ResponseCacheControl="no-store",
            ResponseContentDisposition='attachment; filename="o.txt"',
            ResponseContentEncoding="x-enc",
            ResponseExpires=datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        )
        self.assertEqual(got["Body"].read(), b"data")
        self.assertEqual(got["ContentType"], "application/x-override")
        self.assertEqual(got["ContentLanguage"], "fr")
        self.assertEqual(got["CacheControl"], "no-store")
        self.assertEqual(got["ContentDisposition"], 'attachment; filename="o.txt"')
        self.assertEqual(got["ContentEncoding"], "x-enc")
        self.assertEqual(got["ResponseMetadata"]["HTTPHeaders"].get("expires"), "Tue, 06 May 2031 07:08:09 GMT")
        # Without overrides the stored type comes back.
        self.assertEqual(self.s3.get_object(Bucket=bucket, Key="o")["ContentType"], "text/plain")

    def test_defaultChecksum(self) -> None:
        """boto3's default CRC32 is verified, stored and returned on request."""
        bucket = self.newBucket()
        data = os.urandom(70_000)
        captured: Dict[str, str] = {}

        def capture(request, **kw):
            captured.update(headerDict(request))

        self.s3.meta.events.register("before-send.s3.PutObject", capture)
        self.s3.put_object(Bucket=bucket, Key="k", Body=data)
        self.assertEqual(captured.get("x-amz-checksum-crc32"), checksumOf("crc32", data))
        head = self.s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        self.assertEqual(head.get("ChecksumCRC32"), checksumOf("crc32", data))
        got = self.s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        self.assertEqual(got.get("ChecksumCRC32"), checksumOf("crc32", data))
        self.assertEqual(got["Body"].read(), data)
        # Not asked for: not sent (raw request: botocore asks by default).
        plain = rawRequest(self.server, "GET", s3Path(bucket, "k"))
        self.assertEqual(plain.body, data)
        self.assertNotIn("x-amz-checksum-crc32", plain.headers)
        asked = rawRequest(self.server, "GET", s3Path(bucket, "k"), {"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual(asked.headers.get("x-amz-checksum-crc32"), checksumOf("crc32", data))

    def test_checksumAlgorithms(self) -> None:
        """Each checksum algorithm is verified on upload and returned."""
        bucket = self.newBucket()
        for algorithm in ALGORITHMS:
            data = os.urandom(50_000 + len(algorithm))
            key = "sum-" + algorithm
            put = self.s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
            expected = checksumOf(algorithm, data)
            self.assertEqual(put.get("Checksum" + algorithm), expected, algorithm)
            got = self.s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            self.assertEqual(got.get("Checksum" + algorithm), expected, algorithm)
            self.assertEqual(got["Body"].read(), data)
            head = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            self.assertEqual(head.get("Checksum" + algorithm), expected, algorithm)
            # A ranged GET never carries the whole-object checksum.
            ranged = self.s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", Range="bytes=0-99")
            self.assertEqual(ranged["Body"].read(), data[:100])
            headers = ranged["ResponseMetadata"]["HTTPHeaders"]
            self.assertEqual([h for h in headers if h.startswith("x-amz-checksum-")], [], algorithm)

    def test_wrongChecksum(self) -> None:
        """A checksum that does not match the body is refused; nothing stored."""
        bucket = self.newBucket()
        self.s3.put_object(Bucket=bucket, Key="kept", Body=b"original")
        for algorithm in ALGORITHMS:
            wrong = checksumOf(algorithm, b"something else")
            for key in ("new-" + algorithm, "kept"):
                self.assertClientError(
                    lambda: self.s3.put_object(
                        Bucket=bucket, Key=key, Body=b"the body", **{"Checksum" + algorithm: wrong}
                    ),
                    400,
                    ("BadDigest", "InvalidDigestChecksum", "XAmzContentChecksumMismatch"),
                )
            self.assertNoObject(bucket, "new-" + algorithm)
        self.assertEqual(self.body(bucket, "kept"), b"original")

    def test_contentMD5(self) -> None:
        """A right Content-MD5 passes; a wrong one is BadDigest, nothing stored."""
        bucket = self.newBucket()
        data = b"md5 checked body"
        self.s3.put_object(Bucket=bucket, Key="good", Body=data, ContentMD5=md5b64(data))
        self.assertEqual(self.body(bucket, "good"), data)
        self.assertClientError(
            lambda: self.s3.put_object(Bucket=bucket, Key="bad", Body=data, ContentMD5=md5b64(b"other")),
            400,
            "BadDigest",
        )
        self.assertNoObject(bucket, "bad")
        self.assertClientError(
            lambda: self.s3.put_object(Bucket=bucket, Key="good", Body=b"replacement", ContentMD5=md5b64(b"other")),
            400,
            "BadDigest",
        )
        self.assertEqual(self.body(bucket, "good"), data)

    def test_ranges(self) -> None:
        """Single, open-ended, suffix and clipped ranges; 416 beyond the end."""
        bucket = self.newBucket()
        data = bytes(range(100)) * 3
        size = len(data)
        self.s3.put_object(Bucket=bucket, Key="r", Body=data)
        cases = [
            ("bytes=0-9", 0, 9),
            ("bytes=10-19", 10, 19),
            ("bytes=290-", 290, size - 1),
            ("bytes=-7", size - 7, size - 1),
            ("bytes=295-100000", 295, size - 1),
            ("bytes=-100000", 0, size - 1),
            ("bytes=0-0", 0, 0),
            ("bytes=299-299", 299, 299),
        ]
        for header, first, last in cases:
            got = self.s3.get_object(Bucket=bucket, Key="r", Range=header)
            self.assertEqual(got["ResponseMetadata"]["HTTPStatusCode"], 206, header)
            self.assertEqual(got["Body"].read(), data[first : last + 1], header)
            self.assertEqual(got["ContentRange"], f"bytes {first}-{last}/{size}", header)
            self.assertEqual(got["ContentLength"], last - first + 1, header)
        head = self.s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-9")
        self.assertEqual(head["ContentLength"], 10)
        for header in ("bytes=300-", "bytes=1000-2000"):
            error = self.assertClientError(
                lambda: self.s3.get_object(Bucket=bucket, Key="r", Range=header), 416, "InvalidRange"
            )
            self.assertEqual(error.response["ResponseMetadata"]["HTTPHeaders"].get("content-range"), f"bytes */{size}")

    def test_conditionalGetHead(self) -> None:
        """If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, with RFC 7232 precedence."""
        bucket = self.newBucket()
        data = b"conditional"
        self.s3.put_object(Bucket=bucket, Key="c", Body=data)
        head = self.s3.head_object(Bucket=bucket, Key="c")
        etag = head["ETag"]
        modified = head["LastModified"]
        before = modified - datetime.timedelta(days=1)
        other = '"0123456789abcdef0123456789abcdef"'
        cases = [
            ({"IfMatch": etag}, 200),
            ({"IfMatch": other}, 412),
            ({"IfMatch": "*"}, 200),
            ({"IfNoneMatch": etag}, 304),
            ({"IfNoneMatch": other}, 200),
            ({"IfNoneMatch": "*"}, 304),
            ({"IfModifiedSince": before}, 200),
            ({"IfModifiedSince": modified}, 304),
            ({"IfUnmodifiedSince": before}, 412),
            ({"IfUnmodifiedSince": modified}, 200),
            # If-Match true wins over If-Unmodified-Since false.
            ({"IfMatch": etag, "IfUnmodifiedSince": before}, 200),
            # If-None-Match false with If-Modified-Since true: 304.
            ({"IfNoneMatch": etag, "IfModifiedSince": before}, 304),
            # If-None-Match true makes If-Modified-Since irrelevant.
            ({"IfNoneMatch": other, "IfModifiedSince": modified}, 200),
            # If-Match false fails even when If-Unmodified-Since holds.
            ({"IfMatch": other, "IfUnmodifiedSince": modified}, 412),
        ]
        for conditions, expected in cases:
            for operation in ("get_object", "head_object"):
                call = lambda: getattr(self.s3, operation)(Bucket=bucket, Key="c", **conditions)
                if expected == 200:
                    response = call()
                    self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 200, (operation, conditions))
                    if operation == "get_object":
                        self.assertEqual(response["Body"].read(), data)
                else:
                    error = errorOf(call)
                    self.assertEqual(status(error), expected, (operation, conditions, error.response))
                    if expected == 412 and operation == "get_object":
                        self.assertEqual(code(error), "PreconditionFailed")
                    if expected == 304:
                        self.assertEqual(
                            error.response["ResponseMetadata"]["HTTPHeaders"].get("etag"), etag, conditions
                        )

    def test_conditionalPut(self) -> None:
        """If-None-Match: * creates only once; If-Match replaces only the named version."""
        bucket = self.newBucket()
        self.s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
        self.assertClientError(
            lambda: self.s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*"),
            412,
            "PreconditionFailed",
        )
        self.assertEqual(self.body(bucket, "once"), b"first")
        etag = quotedMD5(b"first")
        self.assertClientError(
            lambda: self.s3.put_object(Bucket=bucket, Key="once", Body=b"third", IfMatch=quotedMD5(b"nope")),
            412,
            "PreconditionFailed",
        )
        self.assertEqual(self.body(bucket, "once"), b"first")
        put = self.s3.put_object(Bucket=bucket, Key="once", Body=b"fourth", IfMatch=etag)
        self.assertEqual(put["ETag"], quotedMD5(b"fourth"))
        self.assertEqual(self.body(bucket, "once"), b"fourth")
        error = errorOf(lambda: self.s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag))
        self.assertIn(status(error), (404, 412), error.response)
        self.assertNoObject(bucket, "absent")
        self.s3.delete_object(Bucket=bucket, Key="once")
        self.s3.put_object(Bucket=bucket, Key="once", Body=b"again", IfNoneMatch="*")
        self.assertEqual(self.body(bucket, "once"), b"again")

    def _race(self, bucket: str, key: str, threads: int, **conditions: str) -> List[bytes]:
        """Race C{threads} conditional PUTs; return the bodies that won."""
        barrier = threading.Barrier(threads)
        bodies = [uniqueBody(20_000 + i * 1000, f"racer{i}") for i in range(threads)]
        outcomes: List[object] = [None] * threads

        def racer(i: int) -> None:
            try:
                barrier.wait(timeout=30)
                self.s3.put_object(Bucket=bucket, Key=key, Body=bodies[i], **conditions)
                outcomes[i] = "ok"
            except ClientError as e:
                outcomes[i] = (status(e), code(e))
            except BaseException as e:  # noqa: B902 - reported below
                outcomes[i] = e

        workers = [threading.Thread(target=racer, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        winners = [bodies[i] for i, o in enumerate(outcomes) if o == "ok"]
        losers = [o for o in outcomes if o != "ok"]
        for loser in losers:
            self.assertIn(loser, [(412, "PreconditionFailed"), (409, "ConditionalRequestConflict")], outcomes)
        self.assertEqual(len(winners), 1, outcomes)
        self.assertEqual(self.body(bucket, key), winners[0])
        return winners

    def test_racingConditionalPuts(self) -> None:
        """Of racing If-None-Match: * PUTs, and of racing If-Match PUTs, exactly one wins."""
        bucket = self.newBucket()
        for round in range(4):
            self._race(bucket, f"race-{round}", 8, IfNoneMatch="*")
        for round in range(3):
            key = f"match-{round}"
            self.s3.put_object(Bucket=bucket, Key=key, Body=b"base")
            self._race(bucket, key, 8, IfMatch=quotedMD5(b"base"))

    def test_presignedUrls(self) -> None:
        """Presigned GET and PUT URLs work with a plain HTTP client."""
        bucket = self.newBucket()
        data = os.urandom(10_000)
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": "pre signed+key"}, ExpiresIn=300
        )
        response = requests.put(url, data=data, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers.get("ETag"), quotedMD5(data))
        self.assertEqual(self.body(bucket, "pre signed+key"), data)
        url = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "pre signed+key"}, ExpiresIn=300
        )
        response = requests.get(url, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.content, data)
        # A tampered signature fails.
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        response = requests.get(tampered, timeout=30)
        self.assertEqual(response.status_code, 403, response.text)
        self.assertIn(b"SignatureDoesNotMatch", response.content)
        # Presigned for another key does not open this one.
        response = requests.get(url.replace("pre%20signed", "pre%20signex"), timeout=30)
        self.assertEqual(response.status_code, 403, response.text)


class ListTests(Boto3Case):
    """ListObjects v1 and v2: prefix, delimiter, pagination, encoding."""

    KEYS = (
        ["a/1", "a/2", "a/b/3", "a/b/4", "b/5", "c", "d e", "f+g", "h%i", "ü/7", "z//y"]
        + [f"p/{i:04d}" for i in range(23)]
    )

    _bucket: Optional[str] = None
    _server: Optional[Server] = None

    def setUp(self) -> None:
        super().setUp()
        cls = type(self)
        if cls._server is not self.server:
            bucket = self.newBucket()
            for key in self.KEYS:
                self.s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
            cls._bucket, cls._server = bucket, self.server
        self.bucket = cls._bucket
        self.sortedKeys = sorted(self.KEYS, key=lambda k: k.encode())

    def test_v2All(self) -> None:
        """Everything, in UTF-8 binary order, with sizes and ETags."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket)
        self.assertEqual([o["Key"] for o in listed["Contents"]], self.sortedKeys)
        self.assertEqual(listed["KeyCount"], len(self.KEYS))
        self.assertFalse(listed["IsTruncated"])
        for entry in listed["Contents"]:
            self.assertEqual(entry["Size"], len(entry["Key"].encode()))
            self.assertEqual(entry["ETag"], quotedMD5(entry["Key"].encode()))
            self.assertNotIn("Owner", entry)

    def test_v2PrefixDelimiter(self) -> None:
        """Prefix and delimiter give Contents and CommonPrefixes."""
        s3 = self.s3
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix="a/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["a/1", "a/2", "a/b/3", "a/b/4"])
        listed = s3.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["c", "d e", "f+g", "h%i"])
        self.assertEqual(
            [p["Prefix"] for p in listed["CommonPrefixes"]], ["a/", "b/", "p/", "z/", "ü/"]
        )
        self.assertEqual(listed["KeyCount"], 9)
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix="a/", Delimiter="/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["a/1", "a/2"])
        self.assertEqual([p["Prefix"] for p in listed["CommonPrefixes"]], ["a/b/"])
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix="z/", Delimiter="/")
        self.assertNotIn("Contents", listed)
        self.assertEqual([p["Prefix"] for p in listed["CommonPrefixes"]], ["z//"])
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix="nothing-here")
        self.assertEqual(listed["KeyCount"], 0)
        self.assertNotIn("Contents", listed)

    def test_v2Pagination(self) -> None:
        """Continuation tokens walk every key exactly once, max-keys per page."""
        keys: List[str] = []
        token = None
        pages = 0
        while True:
            kwargs = {"ContinuationToken": token} if token else {}
            page = self.s3.list_objects_v2(Bucket=self.bucket, MaxKeys=7, **kwargs)
            pages += 1
            self.assertEqual(page["MaxKeys"], 7)
            self.assertLessEqual(len(page.get("Contents", [])), 7)
            self.assertEqual(page["KeyCount"], len(page.get("Contents", [])))
            keys += [o["Key"] for o in page.get("Contents", [])]
            if token:
                self.assertEqual(page["ContinuationToken"], token)
            if not page["IsTruncated"]:
                self.assertNotIn("NextContinuationToken", page)
                break
            token = page["NextContinuationToken"]
            self.assertLess(pages, 50)
        self.assertEqual(keys, self.sortedKeys)
        self.assertEqual(pages, -(-len(self.KEYS) // 7))

    def test_v2PaginationWithDelimiter(self) -> None:
        """Common prefixes count toward max-keys and are never repeated."""
        seen: List[str] = []
        token = None
        for _ in range(50):
            kwargs = {"ContinuationToken": token} if token else {}
            page = self.s3.list_objects_v2(Bucket=self.bucket, MaxKeys=2, Delimiter="/", **kwargs)
            items = [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            self.assertLessEqual(len(items), 2)
            self.assertEqual(page["KeyCount"], len(items))
            seen += items
            if not page["IsTruncated"]:
                break
            token = page["NextContinuationToken"]
        self.assertEqual(len(seen), len(set(seen)), f"repeated entries across pages: {seen}")
        self.assertEqual(sorted(seen, key=lambda k: k.encode()), ["a/", "b/", "c", "d e", "f+g", "h%i", "p/", "z/", "ü/"])

    def test_v2StartAfterFetchOwner(self) -> None:
        """start-after skips through a key; fetch-owner adds Owner."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter="p/0010")
        self.assertEqual([o["Key"] for o in listed["Contents"]], [k for k in self.sortedKeys if k.encode() > b"p/0010"])
        self.assertEqual(listed["StartAfter"], "p/0010")
        listed = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter="p/0020", Prefix="p/", MaxKeys=2)
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["p/0021", "p/0022"])
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="a/", FetchOwner=True)
        for entry in listed["Contents"]:
            self.assertTrue(entry["Owner"]["ID"], entry)

    def test_v1Markers(self) -> None:
        """ListObjects v1: Marker, NextMarker with a delimiter, Owner."""
        keys: List[str] = []
        marker = ""
        for _ in range(50):
            page = self.s3.list_objects(Bucket=self.bucket, MaxKeys=5, Marker=marker)
            contents = page.get("Contents", [])
            self.assertLessEqual(len(contents), 5)
            keys += [o["Key"] for o in contents]
            for entry in contents:
                self.assertIn("Owner", entry)
            if not page["IsTruncated"]:
                break
            marker = page.get("NextMarker") or contents[-1]["Key"]
        self.assertEqual(keys, self.sortedKeys)
        seen: List[str] = []
        marker = ""
        for _ in range(50):
            page = self.s3.list_objects(Bucket=self.bucket, MaxKeys=3, Marker=marker, Delimiter="/")
            seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            if not page["IsTruncated"]:
                break
            self.assertIn("NextMarker", page)
            marker = page["NextMarker"]
        self.assertEqual(len(seen), len(set(seen)), f"repeated entries across pages: {seen}")
        self.assertEqual(sorted(seen, key=lambda k: k.encode()), ["a/", "b/", "c", "d e", "f+g", "h%i", "p/", "z/", "ü/"])
        page = self.s3.list_objects(Bucket=self.bucket, Prefix="a/", Delimiter="/")
        self.assertEqual([o["Key"] for o in page["Contents"]], ["a/1", "a/2"])
        self.assertEqual([p["Prefix"] for p in page["CommonPrefixes"]], ["a/b/"])

    def test_encodingTypeUrl(self) -> None:
        """encoding-type=url encodes keys and prefixes; boto3 leaves them encoded when asked explicitly."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, EncodingType="url")
        self.assertEqual(listed.get("EncodingType"), "url")
        raw = [o["Key"] for o in listed["Contents"]]
        self.assertEqual([unquote_plus(k) for k in raw], self.sortedKeys)
        self.assertIn("f%2Bg", raw)
        self.assertIn("h%25i", raw)
        self.assertNotIn("d e", raw)
        listed = self.s3.list_objects_v2(Bucket=self.bucket, EncodingType="url", Delimiter="/")
        self.assertIn("%C3%BC/", [p["Prefix"] for p in listed["CommonPrefixes"]])
        # Raw: the XML says so itself.
        response = rawRequest(
            self.server, "GET", s3Path(self.bucket) + "?list-type=2&encoding-type=url&prefix=f"
        )
        self.assertEqual(response.status, 200, response.body)
        root = ET.fromstring(response.body)
        self.assertEqual(childText(root, "EncodingType"), "url")
        self.assertEqual([childText(c, "Key") for c in findAll(root, "Contents")], ["f%2Bg"])
        response = rawRequest(self.server, "GET", s3Path(self.bucket) + "?list-type=2&prefix=f")
        root = ET.fromstring(response.body)
        self.assertEqual([childText(c, "Key") for c in findAll(root, "Contents")], ["f+g"])
        self.assertIsNone(childText(root, "EncodingType"))


class VirtualHostTests(Boto3Case):
    """Virtual-hosted-style addressing with --domain example.test."""

    serverOptions = {"domain": "example.test"}

    def setUp(self) -> None:
        super().setUp()
        original = socket.getaddrinfo

        def resolve(host, *args, **kwargs):
            if isinstance(host, bytes):
                host = host.decode()
            if host == "example.test" or (isinstance(host, str) and host.endswith(".example.test")):
                host = "127.0.0.1"
            return original(host, *args, **kwargs)

        self.patch(socket, "getaddrinfo", resolve)
        self.virtual = self.server.client(
            endpoint_url=f"http://example.test:{self.server.port}", s3={"addressing_style": "virtual"}
        )

    def test_virtualHosted(self) -> None:
        """Create, write, list, read and delete through BUCKET.example.test."""
        sent: List[str] = []
        self.virtual.meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.url))
        bucket = self.bucketName("vh")
        self.virtual.create_bucket(Bucket=bucket)
        self.virtual.put_object(Bucket=bucket, Key="dir/key one", Body=b"virtual")
        self.assertEqual(self.virtual.get_object(Bucket=bucket, Key="dir/key one")["Body"].read(), b"virtual")
        self.assertEqual(self.virtual.head_object(Bucket=bucket, Key="dir/key one")["ContentLength"], 7)
        listed = self.virtual.list_objects_v2(Bucket=bucket, Prefix="dir/")
        self.assertEqual([o["Key"] for o in listed["Contents"]], ["dir/key one"])
        self.assertIsNone(self.virtual.get_bucket_location(Bucket=bucket).get("LocationConstraint"))
        self.assertIn(bucket, [b["Name"] for b in self.virtual.list_buckets()["Buckets"]])
        # It really went virtual-hosted.
        self.assertTrue(any(url.startswith(f"http://{bucket}.example.test:") for url in sent), sent)
        # The same data is visible path-style.
        self.assertEqual(self.body(bucket, "dir/key one"), b"virtual")
        self.virtual.delete_object(Bucket=bucket, Key="dir/key one")
        self.virtual.delete_bucket(Bucket=bucket)
        self.assertClientError(lambda: self.s3.head_bucket(Bucket=bucket), 404)

    def test_pathStyleStillWorks(self) -> None:
        """With --domain, path-style on the IP and on the bare domain still work."""
        bucket = self.newBucket()
        self.s3.put_object(Bucket=bucket, Key="k", Body=b"path")
        pathOnDomain = self.server.client(
            endpoint_url=f"http://example.test:{self.server.port}", s3={"addressing_style": "path"}
        )
        self.assertEqual(pathOnDomain.get_object(Bucket=bucket, Key="k")["Body"].read(), b"path")


class StreamingTests(Boto3Case):
    """aws-chunked payloads built by hand: signed chunks, signed and unsigned trailers."""

    def _send(self, bucket: str, key: str, headers: Dict[str, str], body: bytes):
        return rawRequest(self.server, "PUT", s3Path(bucket, key), headers, body, sign=False)

    def test_signedChunks(self) -> None:
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: chunks verified, decoded size stored."""
        bucket = self.newBucket()
        data = os.urandom(200_000)
        payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        signer = self.server.signer()
        # Compute the body length first: it is signed as content-length.
        now = datetime.datetime.now(datetime.timezone.utc)
        provisional = signer.signedChunkedBody(amzDate(now), "0" * 64, data)
        headers = {
            "host": self.server.host,
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "content-length": str(len(provisional)),
        }
        seed = signer.signHeaders("PUT", s3Path(bucket, "chunked"), [], headers, payload, now=now)
        body = signer.signedChunkedBody(amzDate(now), seed, data)
        self.assertEqual(len(body), len(provisional))
        response = self._send(bucket, "chunked", headers, body)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(response.headers.get("etag"), quotedMD5(data))
        self.assertEqual(self.body(bucket, "chunked"), data)
        head = self.s3.head_object(Bucket=bucket, Key="chunked")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertNotIn("ContentEncoding", head)

    def test_signedChunksWithoutContentEncoding(self) -> None:
        """The streaming payload is recognised from x-amz-content-sha256 alone."""
        bucket = self.newBucket()
        data = os.urandom(70_000)
        signer = self.server.signer()
        now = datetime.datetime.now(datetime.timezone.utc)
        length = len(signer.signedChunkedBody(amzDate(now), "0" * 64, data))
        headers = {
            "host": self.server.host,
            "x-amz-decoded-content-length": str(len(data)),
            "content-length": str(length),
        }
        seed = signer.signHeaders("PUT", s3Path(bucket, "k"), [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now=now)
        response = self._send(bucket, "k", headers, signer.signedChunkedBody(amzDate(now), seed, data))
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(self.body(bucket, "k"), data)

    def test_badChunkSignature(self) -> None:
        """A wrong chunk signature fails the PUT and stores nothing."""
        bucket = self.newBucket()
        data = os.urandom(200_000)
        signer = self.server.signer()
        for corrupt in (0, 2, 4):  # first, middle, final (empty) chunk
            key = f"bad-{corrupt}"
            now = datetime.datetime.now(datetime.timezone.utc)
            length = len(signer.signedChunkedBody(amzDate(now), "0" * 64, data))
            headers = {
                "host": self.server.host,
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "content-length": str(length),
            }
            seed = signer.signHeaders("PUT", s3Path(bucket, key), [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now=now)
            body = signer.signedChunkedBody(amzDate(now), seed, data, corruptChunk=corrupt)
            response = self._send(bucket, key, headers, body)
            self.assertS3Error(response, 403, "SignatureDoesNotMatch")
            self.assertNoObject(bucket, key)

    def test_signedTrailer(self) -> None:
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: checksum verified, trailer not in data."""
        bucket = self.newBucket()
        data = os.urandom(150_000)
        signer = self.server.signer()
        for key, value, ok in (("good", checksumOf("crc32c", data), True), ("bad", checksumOf("crc32c", b"x"), False)):
            now = datetime.datetime.now(datetime.timezone.utc)
            trailer = ("x-amz-checksum-crc32c", value)
            length = len(signer.signedChunkedBody(amzDate(now), "0" * 64, data, trailer=trailer))
            headers = {
                "host": self.server.host,
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "content-length": str(length),
                "x-amz-trailer": "x-amz-checksum-crc32c",
            }
            seed = signer.signHeaders(
                "PUT", s3Path(bucket, key), [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", now=now
            )
            response = self._send(bucket, key, headers, signer.signedChunkedBody(amzDate(now), seed, data, trailer=trailer))
            if ok:
                self.assertEqual(response.status, 200, response.body)
                got = self.s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
                self.assertEqual(got["Body"].read(), data)
                self.assertEqual(got.get("ChecksumCRC32C"), value)
            else:
                self.assertS3Error(response, 400, ("BadDigest", "InvalidDigestChecksum"))
                self.assertNoObject(bucket, key)

    def test_unsignedTrailer(self) -> None:
        """STREAMING-UNSIGNED-PAYLOAD-TRAILER: checksum verified, trailer not in data."""
        bucket = self.newBucket()
        data = os.urandom(130_000)
        for key, value, ok in (("good", checksumOf("crc32", data), True), ("bad", checksumOf("crc32", b"x"), False)):
            body = unsignedChunkedBody(data, trailer=("x-amz-checksum-crc32", value))
            headers = {
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": "x-amz-checksum-crc32",
            }
            response = rawRequest(
                self.server, "PUT", s3Path(bucket, key), headers, body, payloadHash="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
            )
            if ok:
                self.assertEqual(response.status, 200, response.body)
                self.assertEqual(self.body(bucket, key), data)
            else:
                self.assertS3Error(response, 400, ("BadDigest", "InvalidDigestChecksum"))
                self.assertNoObject(bucket, key)


class TLSDefaultsTests(ServerTestCase):
    """boto3 defaults over an ssl: endpoint: PutObject goes aws-chunked with an unsigned CRC32 trailer."""

    serverOptions = {"tls": True}

    def test_trailerChecksumUpload(self) -> None:
        """The default upload path over https stores exactly the payload."""
        server = self.sharedServer()
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        s3 = server.client()
        sent: Dict[str, str] = {}
        s3.meta.events.register(
            "before-send.s3.PutObject", lambda request, **kw: sent.update(headerDict(request))
        )
        bucket = self.bucketName()
        s3.create_bucket(Bucket=bucket)
        data = os.urandom(1_500_000)
        s3.put_object(Bucket=bucket, Key="k", Body=data)
        self.assertEqual(sent.get("x-amz-content-sha256"), "STREAMING-UNSIGNED-PAYLOAD-TRAILER", sent)
        self.assertEqual(sent.get("x-amz-trailer"), "x-amz-checksum-crc32")
        got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["ContentLength"], len(data))
        self.assertEqual(got.get("ChecksumCRC32"), checksumOf("crc32", data))
        self.assertEqual(got["ETag"], quotedMD5(data))
        self.assertNotIn("ContentEncoding", got)
        # A client Content-Encoding survives without "aws-chunked".
        s3.put_object(Bucket=bucket, Key="gz", Body=b"not really gzip", ContentEncoding="gzip")
        self.assertEqual(s3.head_object(Bucket=bucket, Key="gz").get("ContentEncoding"), "gzip")
        self.assertEqual(s3.get_object(Bucket=bucket, Key="gz")["Body"].read(), b"not really gzip")


class GeneratedStream:
    """
    A seekable, read-only file of C{size} deterministic bytes, generated on
    demand: block i of 1 MiB is a fixed random block with i in its first 8
    bytes.  Nothing like the whole object is ever held in memory.
    """

    BLOCK = 1 << 20

    def __init__(self, size: int, seed: int = 1) -> None:
        self.size = size
        self.position = 0
        self.base = random.Random(seed).randbytes(self.BLOCK)

    def block(self, index: int) -> bytes:
        return struct.pack(">Q", index) + self.base[8:]

    def range(self, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of the stream."""
        out = []
        end = min(self.size, start + length)
        while start < end:
            index, offset = divmod(start, self.BLOCK)
            piece = self.block(index)[offset : offset + (end - start)]
            out.append(piece)
            start += len(piece)
        return b"".join(out)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.position
        data = self.range(self.position, min(n, 8 * self.BLOCK))
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.position = offset
        elif whence == 1:
            self.position += offset
        else:
            self.position = self.size + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def __len__(self) -> int:
        return self.size


class LargeObjectTests(ServerTestCase):
    """A 2 GiB object goes up and comes back with server RSS growth < 100 MB."""

    SIZE = int(os.environ.get("FASTERSTORE_TEST_LARGE_SIZE", str(2 << 30)))
    LIMIT = 100 * 1000 * 1000

    def test_twoGiBBoundedMemory(self) -> None:
        """Upload and download 2 GiB, streaming, comparing every byte."""
        server = self.privateServer()
        # 2 GiB of segments need not outlive the test (the log does).
        self.addCleanup(lambda: (server.kill(), shutil.rmtree(server.dataDir, ignore_errors=True)))
        s3 = server.client(read_timeout=600, s3={"payload_signing_enabled": False})
        bucket = self.bucketName()
        s3.create_bucket(Bucket=bucket)
        # Warm up the code paths so imports and pools are not counted.
        s3.put_object(Bucket=bucket, Key="warm", Body=os.urandom(3 << 20))
        s3.get_object(Bucket=bucket, Key="warm")["Body"].read()
        before = server.procStatus()
        samples: List[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    samples.append(server.rss())
                except (OSError, KeyError):
                    return
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            stream = GeneratedStream(self.SIZE)
            put = s3.put_object(Bucket=bucket, Key="big", Body=stream)
            uploaded = time.monotonic()
            got = s3.get_object(Bucket=bucket, Key="big")
            self.assertEqual(got["ContentLength"], self.SIZE)
            md5 = hashlib.md5()
            offset = 0
            mismatch = None
            for chunk in got["Body"].iter_chunks(1 << 20):
                if mismatch is None and chunk != stream.range(offset, len(chunk)):
                    mismatch = offset
                md5.update(chunk)
                offset += len(chunk)
            downloaded = time.monotonic()
        finally:
            done.set()
            sampler.join(5)
        after = server.procStatus()
        self.assertEqual(offset, self.SIZE)
        self.assertIsNone(mismatch, f"downloaded bytes differ from uploaded ones near offset {mismatch}")
        self.assertEqual(put["ETag"], '"' + md5.hexdigest() + '"')
        peak = max(samples + [after["VmRSS"], after.get("VmHWM", 0)])
        growth = peak - before["VmRSS"]
        print(
            f"\n2 GiB: upload {uploaded - started:.1f}s, download {downloaded - uploaded:.1f}s, "
            f"RSS before {before['VmRSS'] >> 20} MiB, peak {peak >> 20} MiB, growth {growth >> 20} MiB"
        )
        self.assertLess(growth, self.LIMIT, f"server RSS grew by {growth / 1e6:.0f} MB (limit 100 MB)")


# -- issue 4: managed transfers, browser POST, copies, batch delete, part reads --

MIB = 1 << 20


def multipartETag(parts: List[bytes]) -> str:
    """The ETag of an object completed from these parts: MD5 of the part MD5s, ``-N``."""
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


class ManagedTransferTests(Boto3Case):
    """boto3's managed transfers with a low threshold: parts go up in parallel."""

    def test_uploadAndDownloadFile(self) -> None:
        """upload_file of 40 MiB in 5 MiB parts, 8 threads: ETag ``-8``, parts overlap; download_file is identical."""
        from boto3.s3.transfer import TransferConfig

        bucket = self.newBucket()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        source = os.path.join(directory, "forty.bin")
        parts = [os.urandom(5 * MIB) for _ in range(8)]
        with open(source, "wb") as f:
            for part in parts:
                f.write(part)
        lock = threading.Lock()
        state = {"inFlight": 0, "peak": 0, "calls": 0}

        def started(**kw: object) -> None:
            with lock:
                state["inFlight"] += 1
                state["calls"] += 1
                state["peak"] = max(state["peak"], state["inFlight"])

        def finished(**kw: object) -> None:
            with lock:
                state["inFlight"] -= 1

        self.s3.meta.events.register("before-send.s3.UploadPart", started)
        self.s3.meta.events.register("needs-retry.s3.UploadPart", finished)
        config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=8)
        self.s3.upload_file(source, bucket, "dir/forty.bin", Config=config)
        self.assertEqual(state["calls"], 8)
        self.assertGreater(state["peak"], 1, "the parts did not go up in parallel")
        head = self.s3.head_object(Bucket=bucket, Key="dir/forty.bin")
        self.assertEqual(head["ContentLength"], 40 * MIB)
        self.assertTrue(head["ETag"].endswith('-8"'), head["ETag"])
        self.assertEqual(head["ETag"], multipartETag(parts))
        target = os.path.join(directory, "forty.down")
        self.s3.download_file(bucket, "dir/forty.bin", target, Config=config)
        with open(target, "rb") as f:
            for index, part in enumerate(parts):
                self.assertEqual(f.read(5 * MIB), part, f"part {index + 1} differs")
            self.assertEqual(f.read(), b"")


class MultipartPartReadTests(Boto3Case):
    """The low-level multipart calls, and GetObject/HeadObject with PartNumber."""

    def test_partNumberReads(self) -> None:
        """Each part reads back with PartNumber (206, Content-Range, PartsCount); a missing part is 416."""
        bucket = self.newBucket()
        parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"last part"]
        uploadId = self.s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        etags = [
            self.s3.upload_part(Bucket=bucket, Key="mp", UploadId=uploadId, PartNumber=n, Body=data)["ETag"]
            for n, data in enumerate(parts, 1)
        ]
        self.assertEqual(etags, [quotedMD5(p) for p in parts])
        listed = self.s3.list_parts(Bucket=bucket, Key="mp", UploadId=uploadId)
        self.assertEqual([(p["PartNumber"], p["Size"]) for p in listed["Parts"]], [(1, 5 * MIB), (2, 5 * MIB), (3, 9)])
        done = self.s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=uploadId,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
        )
        self.assertEqual(done["ETag"], multipartETag(parts))
        offset = 0
        total = sum(len(p) for p in parts)
        for number, data in enumerate(parts, 1):
            got = self.s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
            self.assertEqual(got["ResponseMetadata"]["HTTPStatusCode"], 206)
            self.assertEqual(got["Body"].read(), data)
            self.assertEqual(got["PartsCount"], 3)
            self.assertEqual(got["ContentRange"], f"bytes {offset}-{offset + len(data) - 1}/{total}")
            self.assertEqual(got["ETag"], multipartETag(parts))
            offset += len(data)
        head = self.s3.head_object(Bucket=bucket, Key="mp", PartNumber=2)
        self.assertEqual((head["ContentLength"], head["PartsCount"]), (5 * MIB, 3))
        self.assertClientError(lambda: self.s3.get_object(Bucket=bucket, Key="mp", PartNumber=4), 416, "InvalidPartNumber")
        whole = self.s3.get_object(Bucket=bucket, Key="mp")
        self.assertEqual(whole["Body"].read(), b"".join(parts))
        # A plain object has one part: the whole of it.
        self.s3.put_object(Bucket=bucket, Key="plain", Body=b"plain body")
        self.assertEqual(self.body(bucket, "plain", PartNumber=1), b"plain body")
        self.assertClientError(lambda: self.s3.get_object(Bucket=bucket, Key="plain", PartNumber=2), 416, "InvalidPartNumber")


class CopyObjectTests(Boto3Case):
    """copy_object with the metadata directive."""

    def test_metadataDirective(self) -> None:
        """COPY keeps the source's headers and metadata, REPLACE takes the request's; the copy has the source's ETag."""
        bucket = self.newBucket()
        target = self.newBucket()
        data = os.urandom(200_000)
        self.s3.put_object(
            Bucket=bucket, Key="src/ü + sp ace", Body=data, ContentType="image/x-test",
            Metadata={"color": "red"}, CacheControl="max-age=5",
        )
        source = {"Bucket": bucket, "Key": "src/ü + sp ace"}
        copied = self.s3.copy_object(Bucket=target, Key="copied", CopySource=source)
        self.assertEqual(copied["CopyObjectResult"]["ETag"], quotedMD5(data))
        head = self.s3.head_object(Bucket=target, Key="copied")
        self.assertEqual(
            (head["ContentType"], head["Metadata"], head["CacheControl"], head["ETag"]),
            ("image/x-test", {"color": "red"}, "max-age=5", quotedMD5(data)),
        )
        self.s3.copy_object(
            Bucket=target, Key="replaced", CopySource=source, MetadataDirective="REPLACE",
            ContentType="text/x-replaced", Metadata={"shape": "round"},
        )
        head = self.s3.head_object(Bucket=target, Key="replaced")
        self.assertEqual((head["ContentType"], head["Metadata"]), ("text/x-replaced", {"shape": "round"}))
        self.assertNotIn("CacheControl", head)
        self.assertEqual(self.body(target, "replaced"), data)
        # The copies outlive the source.
        self.s3.delete_object(Bucket=bucket, Key="src/ü + sp ace")
        self.assertEqual(self.body(target, "copied"), data)
        # A metadata update in place.
        self.s3.copy_object(
            Bucket=target, Key="copied", CopySource={"Bucket": target, "Key": "copied"},
            MetadataDirective="REPLACE", Metadata={"color": "green"},
        )
        self.assertEqual(self.s3.head_object(Bucket=target, Key="copied")["Metadata"], {"color": "green"})
        self.assertClientError(
            lambda: self.s3.copy_object(Bucket=target, Key="x", CopySource={"Bucket": bucket, "Key": "src/ü + sp ace"}),
            404, "NoSuchKey",
        )


class DeleteObjectsTests(Boto3Case):
    """delete_objects as current botocore sends it."""

    def test_thousandKeys(self) -> None:
        """1000 keys in one request with a checksum header and no Content-MD5; all deleted, nothing else."""
        from concurrent.futures import ThreadPoolExecutor

        bucket = self.newBucket()
        keys = [f"many/{i:04d}{' +ü' if i % 10 == 0 else ''}" for i in range(1000)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: self.s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys + ["kept"]))
        sent: Dict[str, str] = {}
        self.s3.meta.events.register("before-send.s3.DeleteObjects", lambda request, **kw: sent.update(headerDict(request)))
        result = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
        self.assertNotIn("content-md5", sent)
        self.assertTrue([h for h in sent if h.startswith("x-amz-checksum-")], sent)
        self.assertEqual(sorted(d["Key"] for d in result["Deleted"]), sorted(keys))
        self.assertEqual(result.get("Errors", []), [])
        remaining = self.s3.list_objects_v2(Bucket=bucket)
        self.assertEqual([o["Key"] for o in remaining["Contents"]], ["kept"])
        quiet = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "kept"}], "Quiet": True})
        self.assertEqual(quiet.get("Deleted", []), [])
        self.assertEqual(self.s3.list_objects_v2(Bucket=bucket)["KeyCount"], 0)
        # 1001 keys is one too many.
        self.assertClientError(
            lambda: self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]}),
            400, "MalformedXML",
        )


class PresignedPostTests(Boto3Case):
    """generate_presigned_post, then the form posted with requests."""

    def post(self, bucket: str, key: str, data: bytes, filename: str = "upload.txt", **kw: object) -> requests.Response:
        presigned = self.s3.generate_presigned_post(Bucket=bucket, Key=key, ExpiresIn=600, **kw)
        return requests.post(
            presigned["url"], data=presigned["fields"], files={"file": (filename, data, "text/plain")}, timeout=30
        )

    def test_formUpload(self) -> None:
        """The default answer is 204; the object has the form's metadata and content type; ${filename} is substituted."""
        bucket = self.newBucket()
        data = b"posted from a browser form\n" * 100
        response = self.post(
            bucket, "uploads/${filename}", data, filename="report ü.txt",
            Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "form"},
            Conditions=[["starts-with", "$Content-Type", "text/"], {"x-amz-meta-origin": "form"}, ["content-length-range", 1, 1 << 20]],
        )
        self.assertEqual(response.status_code, 204, response.text)
        self.assertEqual(response.headers.get("ETag"), quotedMD5(data))
        head = self.s3.head_object(Bucket=bucket, Key="uploads/report ü.txt")
        self.assertEqual((head["ContentType"], head["Metadata"], head["ETag"]), ("text/plain", {"origin": "form"}, quotedMD5(data)))
        self.assertEqual(self.body(bucket, "uploads/report ü.txt"), data)

    def test_successActionStatus201(self) -> None:
        """success_action_status=201 answers a PostResponse document naming the object."""
        bucket = self.newBucket()
        data = os.urandom(100_000)
        response = self.post(
            bucket, "created", data, Fields={"success_action_status": "201"}, Conditions=[{"success_action_status": "201"}]
        )
        self.assertEqual(response.status_code, 201, response.text)
        document = ET.fromstring(response.content)
        self.assertEqual(childText(document, "Bucket"), bucket)
        self.assertEqual(childText(document, "Key"), "created")
        self.assertEqual(childText(document, "ETag"), quotedMD5(data))
        self.assertTrue((childText(document, "Location") or "").endswith(f"/{bucket}/created"), response.text)
        self.assertEqual(self.body(bucket, "created"), data)

    def test_contentLengthRange(self) -> None:
        """A file outside content-length-range is EntityTooLarge / EntityTooSmall and stores nothing."""
        bucket = self.newBucket()
        limits = [["content-length-range", 10, 1000]]
        tooLarge = self.post(bucket, "big", b"x" * 1001, Conditions=limits)
        self.assertEqual(tooLarge.status_code, 400, tooLarge.text)
        self.assertEqual(ET.fromstring(tooLarge.content).findtext("Code"), "EntityTooLarge")
        tooSmall = self.post(bucket, "small", b"x" * 9, Conditions=limits)
        self.assertEqual(tooSmall.status_code, 400, tooSmall.text)
        self.assertEqual(ET.fromstring(tooSmall.content).findtext("Code"), "EntityTooSmall")
        self.assertNoObject(bucket, "big")
        self.assertNoObject(bucket, "small")
        fits = self.post(bucket, "fits", b"x" * 1000, Conditions=limits)
        self.assertEqual(fits.status_code, 204, fits.text)
        self.assertEqual(self.body(bucket, "fits"), b"x" * 1000)
