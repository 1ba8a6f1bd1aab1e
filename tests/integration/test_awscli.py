"""
The aws cli (v1) against the real server: ``aws s3`` cp/sync/ls/rm/mb/rb/mv
(a 64 MiB multipart cp, a sync of 300 awkwardly named files), ``aws s3api``
for every operation of the core S3 surface and of issue 4 (multipart
uploads including upload-part-copy, list-parts, list-multipart-uploads and
abort; copy-object; delete-objects; object and bucket tagging;
list-object-versions; get-object-attributes; CORS with real preflights;
ACL, versioning, policy and other inspection sub-resources), and ``aws s3
presign`` (SigV2 query auth in us-east-1, SigV4 elsewhere) fetched with
requests.  The server runs in eu-central-1 so that LocationConstraint means
something.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Dict, List
from urllib.parse import parse_qs, quote, urlsplit

import requests

from tests.integration.harness import AwsCliMixin, ServerTestCase, checksumOf, quotedMD5, writeTree

REGION = "eu-central-1"


class AwsCliCase(AwsCliMixin, ServerTestCase):
    """Runs C{aws} with a config of its own in the temp dir."""

    serverOptions = {"region": REGION}

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.setUpAwsCli(REGION)


class S3ApiTests(AwsCliCase):
    """``aws s3api`` for each core operation."""

    def test_bucketOperations(self) -> None:
        """create-bucket with LocationConstraint, head-bucket, get-bucket-location, list-buckets, delete-bucket."""
        bucket = self.bucketName("cli")
        self.json(
            "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", f"LocationConstraint={REGION}"
        )
        self.run_aws("s3api", "head-bucket", "--bucket", bucket)
        self.assertEqual(self.json("s3api", "get-bucket-location", "--bucket", bucket)["LocationConstraint"], REGION)
        names = [b["Name"] for b in self.json("s3api", "list-buckets")["Buckets"]]
        self.assertIn(bucket, names)
        self.assertFails(
            "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", f"LocationConstraint={REGION}",
            expect="BucketAlreadyOwnedByYou",
        )
        self.json("s3api", "delete-bucket", "--bucket", bucket)
        self.assertFails("s3api", "head-bucket", "--bucket", bucket, expect="404")
        self.assertFails("s3api", "delete-bucket", "--bucket", bucket, expect="NoSuchBucket")

    def test_objectOperations(self) -> None:
        """put-object, head-object, get-object (whole, ranged, conditional), delete-object."""
        bucket = self.bucketName("cli")
        self.json("s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", f"LocationConstraint={REGION}")
        data = os.urandom(123_456)
        source = self.file("in.bin", data)
        put = self.json(
            "s3api", "put-object", "--bucket", bucket, "--key", "dir/obj name.bin", "--body", source,
            "--content-type", "application/x-cli", "--metadata", "color=green,owner=cli",
            "--cache-control", "no-cache", "--content-disposition", "inline",
        )
        self.assertEqual(put["ETag"], quotedMD5(data))
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "dir/obj name.bin")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["ETag"], quotedMD5(data))
        self.assertEqual(head["ContentType"], "application/x-cli")
        self.assertEqual(head["Metadata"], {"color": "green", "owner": "cli"})
        self.assertEqual(head["CacheControl"], "no-cache")
        self.assertEqual(head["ContentDisposition"], "inline")
        out = os.path.join(self.home, "out.bin")
        got = self.json("s3api", "get-object", "--bucket", bucket, "--key", "dir/obj name.bin", out)
        self.assertEqual(self.read(out), data)
        self.assertEqual(got["ContentLength"], len(data))
        ranged = self.json("s3api", "get-object", "--bucket", bucket, "--key", "dir/obj name.bin", "--range", "bytes=100-199", out)
        self.assertEqual(self.read(out), data[100:200])
        self.assertEqual(ranged["ContentRange"], f"bytes 100-199/{len(data)}")
        self.assertFails(
            "s3api", "get-object", "--bucket", bucket, "--key", "dir/obj name.bin", "--if-match", '"nope"', out,
            expect="PreconditionFailed",
        )
        self.assertFails(
            "s3api", "head-object", "--bucket", bucket, "--key", "dir/obj name.bin", "--if-none-match", quotedMD5(data),
            expect="304",
        )
        # Checksums: the cli's default CRC32, and an explicit SHA256.
        checked = self.json(
            "s3api", "put-object", "--bucket", bucket, "--key", "summed", "--body", source, "--checksum-algorithm", "SHA256"
        )
        self.assertEqual(checked.get("ChecksumSHA256"), checksumOf("sha256", data))
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "summed", "--checksum-mode", "ENABLED")
        self.assertEqual(head.get("ChecksumSHA256"), checksumOf("sha256", data))
        # Conditional create.
        self.json("s3api", "put-object", "--bucket", bucket, "--key", "once", "--body", source, "--if-none-match", "*")
        self.assertFails(
            "s3api", "put-object", "--bucket", bucket, "--key", "once", "--body", source, "--if-none-match", "*",
            expect="PreconditionFailed",
        )
        self.json("s3api", "delete-object", "--bucket", bucket, "--key", "dir/obj name.bin")
        self.assertFails("s3api", "head-object", "--bucket", bucket, "--key", "dir/obj name.bin", expect="404")
        self.assertFails("s3api", "get-object", "--bucket", bucket, "--key", "dir/obj name.bin", out, expect="NoSuchKey")
        self.assertFails("s3api", "delete-bucket", "--bucket", bucket, expect="BucketNotEmpty")

    def test_listing(self) -> None:
        """list-objects and list-objects-v2 with prefix, delimiter, start-after, max-keys, fetch-owner."""
        bucket = self.bucketName("cli")
        self.json("s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", f"LocationConstraint={REGION}")
        source = self.file("small", b"x")
        keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "sp ace", "plus+sign"]
        for key in keys:
            self.json("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", source)
        everything = sorted(keys)
        v1 = self.json("s3api", "list-objects", "--bucket", bucket)
        self.assertEqual([o["Key"] for o in v1["Contents"]], everything)
        v2 = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--no-paginate")
        self.assertEqual([o["Key"] for o in v2["Contents"]], everything)
        self.assertEqual(v2["KeyCount"], len(keys))
        grouped = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--delimiter", "/")
        self.assertEqual([p["Prefix"] for p in grouped["CommonPrefixes"]], ["a/", "b/"])
        self.assertEqual([o["Key"] for o in grouped["Contents"]], ["c", "plus+sign", "sp ace"])
        grouped = self.json("s3api", "list-objects", "--bucket", bucket, "--prefix", "a/", "--delimiter", "/")
        self.assertEqual([o["Key"] for o in grouped["Contents"]], ["a/1", "a/2"])
        self.assertEqual([p["Prefix"] for p in grouped["CommonPrefixes"]], ["a/b/"])
        after = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--start-after", "b/4", "--fetch-owner")
        self.assertEqual([o["Key"] for o in after["Contents"]], ["c", "plus+sign", "sp ace"])
        self.assertTrue(all(o.get("Owner", {}).get("ID") for o in after["Contents"]), after)
        page = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--max-keys", "2", "--no-paginate")
        self.assertEqual([o["Key"] for o in page["Contents"]], everything[:2])
        self.assertTrue(page["IsTruncated"])
        rest = self.json(
            "s3api", "list-objects-v2", "--bucket", bucket, "--no-paginate", "--continuation-token", page["NextContinuationToken"]
        )
        self.assertEqual([o["Key"] for o in rest["Contents"]], everything[2:])
        page = self.json("s3api", "list-objects", "--bucket", bucket, "--max-keys", "3", "--no-paginate")
        self.assertEqual([o["Key"] for o in page["Contents"]], everything[:3])
        self.assertTrue(page["IsTruncated"])
        rest = self.json("s3api", "list-objects", "--bucket", bucket, "--no-paginate", "--marker", everything[2])
        self.assertEqual([o["Key"] for o in rest["Contents"]], everything[3:])
        # The cli pages through on its own, too.
        paged = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "2")
        self.assertEqual([o["Key"] for o in paged["Contents"]], everything)


class S3CommandTests(AwsCliCase):
    """The high-level ``aws s3`` commands."""

    def _tree(self, root: str) -> Dict[str, bytes]:
        files = {
            "top.txt": b"top level\n",
            "empty": b"",
            "sub/one.bin": os.urandom(200_000),
            "sub/deeper/two.bin": os.urandom(3_000_000),
            "sub/with space.txt": b"spaces",
            "sub/plus+sign.txt": b"plus",
        }
        # Files an hour old: sync compares local mtime with LastModified, and
        # a file written in the same second as its upload would look newer
        # than a LastModified without sub-second precision.
        old = time.time() - 3600
        writeTree(root, files, old)
        return files

    def _readTree(self, root: str) -> Dict[str, bytes]:
        out = {}
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root)] = f.read()
        return out

    def test_cpSyncLsRm(self) -> None:
        """mb, cp both ways, sync up (and again: nothing), sync down, ls, rm --recursive, rb."""
        bucket = self.bucketName("cli")
        self.run_aws("s3", "mb", f"s3://{bucket}")
        self.assertIn(bucket, self.run_aws("s3", "ls").stdout)
        data = os.urandom(500_000)
        source = self.file("single.bin", data)
        self.run_aws("s3", "cp", source, f"s3://{bucket}/single.bin")
        target = os.path.join(self.home, "single.copy")
        self.run_aws("s3", "cp", f"s3://{bucket}/single.bin", target)
        self.assertEqual(self.read(target), data)

        local = os.path.join(self.home, "tree")
        files = self._tree(local)
        self.run_aws("s3", "sync", local, f"s3://{bucket}/tree/")
        listing = self.run_aws("s3", "ls", f"s3://{bucket}/tree/", "--recursive").stdout
        for name, content in files.items():
            line = [l for l in listing.splitlines() if l.endswith(" tree/" + name)]
            self.assertEqual(len(line), 1, (name, listing))
            self.assertEqual(int(line[0].split()[2]), len(content), line)
        top = self.run_aws("s3", "ls", f"s3://{bucket}/tree/").stdout
        self.assertIn("PRE sub/", top)
        self.assertIn("top.txt", top)
        self.assertNotIn("one.bin", top)
        again = self.run_aws("s3", "sync", "--no-progress", local, f"s3://{bucket}/tree/").stdout
        self.assertEqual(again.strip(), "", "second sync uploaded again: sizes/mtimes do not round-trip")
        with open(os.path.join(local, "sub", "one.bin"), "wb") as f:
            f.write(b"changed content")
        files["sub/one.bin"] = b"changed content"
        changed = self.run_aws("s3", "sync", "--no-progress", local, f"s3://{bucket}/tree/").stdout
        self.assertEqual(len(changed.strip().splitlines()), 1, changed)
        self.assertIn("one.bin", changed)
        down = os.path.join(self.home, "down")
        self.run_aws("s3", "sync", f"s3://{bucket}/tree/", down)
        self.assertEqual(self._readTree(down), files)

        self.run_aws("s3", "rm", f"s3://{bucket}/tree/", "--recursive")
        self.assertEqual(self.run_aws("s3", "ls", f"s3://{bucket}/tree/", check=False).stdout.strip(), "")
        self.run_aws("s3", "rm", f"s3://{bucket}/single.bin")
        self.run_aws("s3", "rb", f"s3://{bucket}")
        self.assertNotIn(bucket, self.run_aws("s3", "ls").stdout)

    def test_presign(self) -> None:
        """aws s3 presign: SigV2 (us-east-1 default) and SigV4 URLs work with requests; expired SigV2 does not."""
        bucket = self.bucketName("cli")
        self.run_aws("s3", "mb", f"s3://{bucket}")
        data = os.urandom(10_000)
        key = "pre/signed+key name"
        self.run_aws("s3", "cp", self.file("p.bin", data), f"s3://{bucket}/{key}")
        v2 = self.run_aws("s3", "presign", f"s3://{bucket}/{key}", "--region", "us-east-1").stdout.strip()
        self.assertIn("AWSAccessKeyId=", v2)
        self.assertIn("Signature=", v2)
        response = requests.get(v2, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.content, data)
        v4 = self.run_aws("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "600").stdout.strip()
        self.assertIn("X-Amz-Signature=", v4)
        response = requests.get(v4, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.content, data)
        # A tampered SigV2 signature is refused.
        query = parse_qs(urlsplit(v2).query)
        tampered = v2.replace(quote(query["Signature"][0], safe=""), quote("AAAA" + query["Signature"][0][4:], safe=""))
        self.assertNotEqual(tampered, v2)
        response = requests.get(tampered, timeout=30)
        self.assertEqual(response.status_code, 403, response.text)
        # A correctly signed SigV2 URL whose Expires has passed is refused.
        expires = str(int(time.time()) - 60)
        path = f"/{bucket}/" + quote(key, safe="/~")
        toSign = f"GET\n\n\n{expires}\n{path}"
        signature = base64.b64encode(
            hmac.new(self.server.secretKey.encode(), toSign.encode(), hashlib.sha1).digest()
        ).decode()
        url = (
            f"{self.server.endpoint}{path}?AWSAccessKeyId={self.server.accessKey}"
            f"&Expires={expires}&Signature={quote(signature, safe='')}"
        )
        response = requests.get(url, timeout=30)
        self.assertEqual(response.status_code, 403, response.text)
        self.assertIn(b"AccessDenied", response.content)
        # The same construction with a future Expires works: the check above is about time.
        expires = str(int(time.time()) + 600)
        toSign = f"GET\n\n\n{expires}\n{path}"
        signature = base64.b64encode(
            hmac.new(self.server.secretKey.encode(), toSign.encode(), hashlib.sha1).digest()
        ).decode()
        url = (
            f"{self.server.endpoint}{path}?AWSAccessKeyId={self.server.accessKey}"
            f"&Expires={expires}&Signature={quote(signature, safe='')}"
        )
        self.assertEqual(requests.get(url, timeout=30).content, data)


# -- issue 4: multipart, copy, batch delete, tagging, versions, CORS, inspection --


def multipartETag(partMD5s: List[bytes]) -> str:
    """The ETag AWS gives an object completed from parts with these MD5 digests."""
    return '"%s-%d"' % (hashlib.md5(b"".join(partMD5s)).hexdigest(), len(partMD5s))


class TransferCommandTests(AwsCliCase):
    """``aws s3`` at sizes and counts that need multipart uploads, batches and copies."""

    _tree = S3CommandTests._tree
    _readTree = S3CommandTests._readTree

    MIB = 1 << 20

    def test_largeCpMultipart(self) -> None:
        """aws s3 cp of 64 MiB goes up in eight 8 MiB parts (ETag ``-8``) and comes back byte-identical."""
        bucket = self.bucketName("cli")
        self.run_aws("s3", "mb", f"s3://{bucket}")
        source = os.path.join(self.home, "big.bin")
        whole, parts = hashlib.md5(), []
        with open(source, "wb") as f:
            for _ in range(8):
                chunk = os.urandom(8 * self.MIB)
                f.write(chunk)
                whole.update(chunk)
                parts.append(hashlib.md5(chunk).digest())
        self.run_aws("s3", "cp", "--no-progress", source, f"s3://{bucket}/big.bin")
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "big.bin")
        self.assertEqual(head["ContentLength"], 64 * self.MIB)
        self.assertTrue(head["ETag"].endswith('-8"'), head["ETag"])
        self.assertEqual(head["ETag"], multipartETag(parts))
        target = os.path.join(self.home, "big.down")
        self.run_aws("s3", "cp", "--no-progress", f"s3://{bucket}/big.bin", target)
        self.assertEqual(os.path.getsize(target), 64 * self.MIB)
        downloaded = hashlib.md5()
        with open(target, "rb") as f:
            for block in iter(lambda: f.read(self.MIB), b""):
                downloaded.update(block)
        self.assertEqual(downloaded.hexdigest(), whole.hexdigest())

    def _bigTree(self, root: str, count: int) -> Dict[str, bytes]:
        """C{count} small files under nested prefixes with unicode, spaces and plus signs, an hour old."""
        stems = ["plain", "with space", "plus+sign", "ünïcødé", "日本語", "mixed + ü x"]
        files: Dict[str, bytes] = {}
        for i in range(count):
            depth = i % 4
            directory = "/".join(f"d{(i >> level) % 3} {stems[(i + level) % len(stems)]}" for level in range(depth))
            name = f"{stems[i % len(stems)]}-{i:04d}.txt"
            files[f"{directory}/{name}" if directory else name] = f"file {i}\n".encode() * (1 + i % 7)
        old = time.time() - 3600
        writeTree(root, files, old)
        return files

    def test_syncManyFiles(self) -> None:
        """sync of 300 files with awkward names: all listed with their sizes; a second sync uploads nothing."""
        bucket = self.bucketName("cli")
        self.run_aws("s3", "mb", f"s3://{bucket}")
        local = os.path.join(self.home, "many")
        files = self._bigTree(local, 300)
        first = self.run_aws("s3", "sync", "--no-progress", local, f"s3://{bucket}/many/").stdout
        uploads = [l for l in first.splitlines() if l.startswith("upload:")]
        self.assertEqual(len(uploads), len(files), first[-2000:])
        listing = self.json("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "many/")
        listed = {o["Key"][len("many/"):]: o["Size"] for o in listing["Contents"]}
        self.assertEqual(listed, {name: len(data) for name, data in files.items()})
        again = self.run_aws("s3", "sync", "--no-progress", local, f"s3://{bucket}/many/").stdout
        self.assertEqual([l for l in again.splitlines() if l.strip()], [], "the second sync transferred files")
        down = os.path.join(self.home, "many-down")
        self.run_aws("s3", "sync", "--no-progress", f"s3://{bucket}/many/", down)
        self.assertEqual(self._readTree(down), files)

    def test_mvAndRecursiveRm(self) -> None:
        """aws s3 mv local->s3, s3->s3 and s3->local; rm --recursive removes a prefix and nothing else."""
        bucket = self.bucketName("cli")
        self.run_aws("s3", "mb", f"s3://{bucket}")
        data = os.urandom(300_000)
        source = self.file("moving + ü.bin", data)
        self.run_aws("s3", "mv", source, f"s3://{bucket}/a/moving + ü.bin")
        self.assertFalse(os.path.exists(source))
        self.run_aws("s3", "mv", f"s3://{bucket}/a/moving + ü.bin", f"s3://{bucket}/b/moved.bin")
        keys = [o["Key"] for o in self.json("s3api", "list-objects-v2", "--bucket", bucket)["Contents"]]
        self.assertEqual(keys, ["b/moved.bin"])
        target = os.path.join(self.home, "back.bin")
        self.run_aws("s3", "mv", f"s3://{bucket}/b/moved.bin", target)
        self.assertEqual(self.read(target), data)
        self.assertEqual(self.json("s3api", "list-objects-v2", "--bucket", bucket).get("Contents", []), [])

        tree = os.path.join(self.home, "rmtree")
        files = self._tree(tree)
        self.run_aws("s3", "sync", "--no-progress", tree, f"s3://{bucket}/gone/")
        self.run_aws("s3", "cp", self.file("keep.txt", b"keep"), f"s3://{bucket}/gone-not/keep.txt")
        removed = self.run_aws("s3", "rm", "--recursive", f"s3://{bucket}/gone/").stdout
        self.assertEqual(len([l for l in removed.splitlines() if l.startswith("delete:")]), len(files), removed)
        keys = [o["Key"] for o in self.json("s3api", "list-objects-v2", "--bucket", bucket)["Contents"]]
        self.assertEqual(keys, ["gone-not/keep.txt"])


class S3ApiMultipartTests(AwsCliCase):
    """``aws s3api`` for the multipart operations, copies, batch delete, tags, versions, CORS and inspection."""

    MIB = 1 << 20

    def newBucket(self) -> str:
        bucket = self.bucketName("cli")
        self.json("s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", f"LocationConstraint={REGION}")
        return bucket

    def test_multipartLifecycle(self) -> None:
        """create, upload-part, upload-part-copy with a range, list-parts, list/abort uploads, complete, part reads, attributes."""
        bucket = self.newBucket()
        source = os.urandom(7 * self.MIB)
        self.json("s3api", "put-object", "--bucket", bucket, "--key", "source obj+1", "--body", self.file("src", source))
        created = self.json(
            "s3api", "create-multipart-upload", "--bucket", bucket, "--key", "assembled",
            "--content-type", "application/x-parts", "--metadata", "origin=cli",
        )
        uploadId = created["UploadId"]
        self.assertEqual((created["Bucket"], created["Key"]), (bucket, "assembled"))
        other = self.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "abandoned")["UploadId"]

        part1 = os.urandom(5 * self.MIB)
        put1 = self.json(
            "s3api", "upload-part", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--part-number", "1", "--body", self.file("p1", part1),
        )
        self.assertEqual(put1["ETag"], quotedMD5(part1))
        # Part 2: 5 MiB of the source, from byte 1 MiB, copied server-side.
        start, end = self.MIB, 6 * self.MIB - 1
        copied = self.json(
            "s3api", "upload-part-copy", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--part-number", "2", "--copy-source", f"{bucket}/source obj+1",
            "--copy-source-range", f"bytes={start}-{end}",
        )
        part2 = source[start : end + 1]
        self.assertEqual(copied["CopyPartResult"]["ETag"], quotedMD5(part2))
        part3 = b"the small last part"
        self.json(
            "s3api", "upload-part", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--part-number", "3", "--body", self.file("p3", part3),
        )
        # A part uploaded twice keeps the last upload.
        part3 = b"the small last part, uploaded again"
        self.json(
            "s3api", "upload-part", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--part-number", "3", "--body", self.file("p3", part3),
        )
        listed = self.json("s3api", "list-parts", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId)
        self.assertEqual(
            [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]],
            [(1, quotedMD5(part1), len(part1)), (2, quotedMD5(part2), len(part2)), (3, quotedMD5(part3), len(part3))],
        )
        uploads = self.json("s3api", "list-multipart-uploads", "--bucket", bucket)
        self.assertEqual(
            sorted((u["Key"], u["UploadId"]) for u in uploads["Uploads"]),
            [("abandoned", other), ("assembled", uploadId)],
        )
        self.json("s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "abandoned", "--upload-id", other)
        uploads = self.json("s3api", "list-multipart-uploads", "--bucket", bucket)
        self.assertEqual([u["UploadId"] for u in uploads["Uploads"]], [uploadId])
        self.assertFails(
            "s3api", "list-parts", "--bucket", bucket, "--key", "abandoned", "--upload-id", other, expect="NoSuchUpload"
        )

        def manifest(*entries: tuple) -> str:
            return json.dumps({"Parts": [{"PartNumber": n, "ETag": e} for n, e in entries]})

        # Refused completes leave the upload as it was.
        self.assertFails(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--multipart-upload", manifest((2, quotedMD5(part2)), (1, quotedMD5(part1))), expect="InvalidPartOrder",
        )
        self.assertFails(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--multipart-upload", manifest((1, quotedMD5(part1)), (2, quotedMD5(b"not it"))), expect="InvalidPart",
        )
        self.assertFails(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--multipart-upload", manifest((3, quotedMD5(part3)), (4, quotedMD5(b"x"))), expect="InvalidPart",
        )
        done = self.json(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            "--multipart-upload",
            manifest((1, quotedMD5(part1)), (2, quotedMD5(part2)), (3, quotedMD5(part3))),
        )
        etag = multipartETag([hashlib.md5(p).digest() for p in (part1, part2, part3)])
        self.assertEqual(done["ETag"], etag)
        self.assertEqual((done["Bucket"], done["Key"]), (bucket, "assembled"))
        self.assertEqual(self.json("s3api", "list-multipart-uploads", "--bucket", bucket).get("Uploads", []), [])

        out = os.path.join(self.home, "out")
        got = self.json("s3api", "get-object", "--bucket", bucket, "--key", "assembled", out)
        self.assertEqual(self.read(out), part1 + part2 + part3)
        self.assertEqual(got["ETag"], etag)
        self.assertEqual(got["ContentType"], "application/x-parts")
        self.assertEqual(got["Metadata"], {"origin": "cli"})
        second = self.json("s3api", "get-object", "--bucket", bucket, "--key", "assembled", "--part-number", "2", out)
        self.assertEqual(self.read(out), part2)
        self.assertEqual(second["PartsCount"], 3)
        self.assertEqual(second["ContentRange"], f"bytes {len(part1)}-{len(part1) + len(part2) - 1}/{len(part1 + part2 + part3)}")
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "assembled", "--part-number", "3")
        self.assertEqual((head["ContentLength"], head["PartsCount"]), (len(part3), 3))
        attributes = self.json(
            "s3api", "get-object-attributes", "--bucket", bucket, "--key", "assembled",
            "--object-attributes", "ETag", "ObjectSize", "ObjectParts", "StorageClass",
        )
        self.assertEqual(attributes["ETag"], etag.strip('"'))
        self.assertEqual(attributes["ObjectSize"], len(part1 + part2 + part3))
        self.assertEqual(attributes["ObjectParts"]["TotalPartsCount"], 3)
        self.assertEqual(attributes["StorageClass"], "STANDARD")
        # Gone after completion.
        self.assertFails(
            "s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "assembled", "--upload-id", uploadId,
            expect="NoSuchUpload",
        )

    def test_entityTooSmall(self) -> None:
        """complete-multipart-upload refuses a part under 5 MiB that is not the last one."""
        bucket = self.newBucket()
        uploadId = self.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "k")["UploadId"]
        small = self.file("small", b"tiny")
        for number in ("1", "2"):
            self.json(
                "s3api", "upload-part", "--bucket", bucket, "--key", "k", "--upload-id", uploadId,
                "--part-number", number, "--body", small,
            )
        parts = json.dumps({"Parts": [{"PartNumber": n, "ETag": quotedMD5(b"tiny")} for n in (1, 2)]})
        self.assertFails(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "k", "--upload-id", uploadId,
            "--multipart-upload", parts, expect="EntityTooSmall",
        )
        # One small part alone is a valid object.
        one = json.dumps({"Parts": [{"PartNumber": 2, "ETag": quotedMD5(b"tiny")}]})
        done = self.json(
            "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "k", "--upload-id", uploadId,
            "--multipart-upload", one,
        )
        self.assertEqual(done["ETag"], multipartETag([hashlib.md5(b"tiny").digest()]))

    def test_copyObject(self) -> None:
        """copy-object with the COPY and REPLACE metadata directives, an encoded source, and onto itself."""
        bucket = self.newBucket()
        data = os.urandom(50_000)
        self.json(
            "s3api", "put-object", "--bucket", bucket, "--key", "dir/src + ü", "--body", self.file("c", data),
            "--content-type", "text/x-source", "--metadata", "a=1", "--tagging", "t=1",
        )
        copied = self.json("s3api", "copy-object", "--bucket", bucket, "--key", "copy", "--copy-source", f"{bucket}/dir/src + ü")
        self.assertEqual(copied["CopyObjectResult"]["ETag"], quotedMD5(data))
        self.assertIn("LastModified", copied["CopyObjectResult"])
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "copy")
        self.assertEqual((head["ContentType"], head["Metadata"], head["ContentLength"]), ("text/x-source", {"a": "1"}, len(data)))
        self.assertEqual(self.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "copy")["TagSet"], [{"Key": "t", "Value": "1"}])
        self.json(
            "s3api", "copy-object", "--bucket", bucket, "--key", "replaced", "--copy-source", f"{bucket}/dir/src + ü",
            "--metadata-directive", "REPLACE", "--content-type", "text/x-new", "--metadata", "b=2",
            "--tagging-directive", "REPLACE", "--tagging", "u=2",
        )
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "replaced")
        self.assertEqual((head["ContentType"], head["Metadata"]), ("text/x-new", {"b": "2"}))
        self.assertEqual(self.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "replaced")["TagSet"], [{"Key": "u", "Value": "2"}])
        out = os.path.join(self.home, "out")
        self.json("s3api", "get-object", "--bucket", bucket, "--key", "replaced", out)
        self.assertEqual(self.read(out), data)
        # Onto itself: only with REPLACE, which updates the metadata.
        self.assertFails(
            "s3api", "copy-object", "--bucket", bucket, "--key", "copy", "--copy-source", f"{bucket}/copy",
            expect="InvalidRequest",
        )
        self.json(
            "s3api", "copy-object", "--bucket", bucket, "--key", "copy", "--copy-source", f"{bucket}/copy",
            "--metadata-directive", "REPLACE", "--metadata", "c=3",
        )
        self.assertEqual(self.json("s3api", "head-object", "--bucket", bucket, "--key", "copy")["Metadata"], {"c": "3"})
        # Conditions on the source.
        self.assertFails(
            "s3api", "copy-object", "--bucket", bucket, "--key", "x", "--copy-source", f"{bucket}/copy",
            "--copy-source-if-match", '"0000"', expect="PreconditionFailed",
        )
        self.assertFails(
            "s3api", "copy-object", "--bucket", bucket, "--key", "x", "--copy-source", f"{bucket}/missing",
            expect="NoSuchKey",
        )

    def test_deleteObjects(self) -> None:
        """delete-objects: verbose and quiet, a missing key counts as deleted, only the named keys go."""
        bucket = self.newBucket()
        body = self.file("d", b"d")
        keys = ["a", "b/c", "sp ace", "plus+", "ünï"]
        for key in keys + ["kept"]:
            self.json("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", body)
        request = json.dumps({"Objects": [{"Key": k} for k in keys[:3] + ["never-existed"]]})
        result = self.json("s3api", "delete-objects", "--bucket", bucket, "--delete", request)
        self.assertEqual(sorted(d["Key"] for d in result["Deleted"]), sorted(keys[:3] + ["never-existed"]))
        self.assertEqual(result.get("Errors", []), [])
        quiet = json.dumps({"Objects": [{"Key": k} for k in keys[3:]], "Quiet": True})
        result = self.json("s3api", "delete-objects", "--bucket", bucket, "--delete", quiet)
        self.assertEqual(result.get("Deleted", []), [])
        self.assertEqual(result.get("Errors", []), [])
        remaining = [o["Key"] for o in self.json("s3api", "list-objects-v2", "--bucket", bucket)["Contents"]]
        self.assertEqual(remaining, ["kept"])

    def test_tagging(self) -> None:
        """put/get/delete-object-tagging and put/get/delete-bucket-tagging, and AWS's limits."""
        bucket = self.newBucket()
        self.json("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", self.file("t", b"t"), "--tagging", "first=1")
        self.assertEqual(self.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k")["TagSet"], [{"Key": "first", "Value": "1"}])
        tags = [{"Key": "color", "Value": "blue"}, {"Key": "with space", "Value": "a+b=c"}]
        self.json("s3api", "put-object-tagging", "--bucket", bucket, "--key", "k", "--tagging", json.dumps({"TagSet": tags}))
        got = self.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k")["TagSet"]
        self.assertEqual(sorted(got, key=lambda t: t["Key"]), tags)
        tooMany = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
        self.assertFails(
            "s3api", "put-object-tagging", "--bucket", bucket, "--key", "k", "--tagging", json.dumps(tooMany),
            expect="InvalidTag",
        )
        self.json("s3api", "delete-object-tagging", "--bucket", bucket, "--key", "k")
        self.assertEqual(self.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k")["TagSet"], [])
        self.assertFails("s3api", "get-object-tagging", "--bucket", bucket, "--key", "missing", expect="NoSuchKey")

        self.assertFails("s3api", "get-bucket-tagging", "--bucket", bucket, expect="NoSuchTagSet")
        bucketTags = [{"Key": "team", "Value": "storage"}, {"Key": "env", "Value": "test"}]
        self.json("s3api", "put-bucket-tagging", "--bucket", bucket, "--tagging", json.dumps({"TagSet": bucketTags}))
        got = self.json("s3api", "get-bucket-tagging", "--bucket", bucket)["TagSet"]
        self.assertEqual(sorted(got, key=lambda t: t["Key"]), sorted(bucketTags, key=lambda t: t["Key"]))
        self.json("s3api", "delete-bucket-tagging", "--bucket", bucket)
        self.assertFails("s3api", "get-bucket-tagging", "--bucket", bucket, expect="NoSuchTagSet")

    def test_listObjectVersions(self) -> None:
        """list-object-versions without versioning: one null version per object, paged; versionId=null works."""
        bucket = self.newBucket()
        body = self.file("v", b"version")
        keys = ["a", "b/1", "b/2", "c d", "e+f"]
        for key in keys:
            self.json("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", body)
        listing = self.json("s3api", "list-object-versions", "--bucket", bucket)
        self.assertEqual([v["Key"] for v in listing["Versions"]], keys)
        self.assertTrue(all(v["VersionId"] == "null" and v["IsLatest"] for v in listing["Versions"]), listing)
        self.assertEqual(listing.get("DeleteMarkers", []), [])
        # The cli's paginator follows NextKeyMarker / NextVersionIdMarker.
        paged = self.json("s3api", "list-object-versions", "--bucket", bucket, "--page-size", "2")
        self.assertEqual([v["Key"] for v in paged["Versions"]], keys)
        page = self.json("s3api", "list-object-versions", "--bucket", bucket, "--max-keys", "2", "--no-paginate")
        self.assertTrue(page["IsTruncated"])
        self.assertEqual((page["NextKeyMarker"], page["NextVersionIdMarker"]), ("b/1", "null"))
        grouped = self.json("s3api", "list-object-versions", "--bucket", bucket, "--delimiter", "/")
        self.assertEqual([p["Prefix"] for p in grouped["CommonPrefixes"]], ["b/"])
        self.assertEqual([v["Key"] for v in grouped["Versions"]], ["a", "c d", "e+f"])
        out = os.path.join(self.home, "out")
        got = self.json("s3api", "get-object", "--bucket", bucket, "--key", "c d", "--version-id", "null", out)
        self.assertEqual(self.read(out), b"version")
        self.assertEqual(got["ContentLength"], len(b"version"))
        self.json("s3api", "head-object", "--bucket", bucket, "--key", "c d", "--version-id", "null")
        self.json("s3api", "delete-object", "--bucket", bucket, "--key", "c d", "--version-id", "null")
        listing = self.json("s3api", "list-object-versions", "--bucket", bucket)
        self.assertEqual([v["Key"] for v in listing["Versions"]], ["a", "b/1", "b/2", "e+f"])
        self.assertFails("s3api", "get-object", "--bucket", bucket, "--key", "c d", "--version-id", "null", out, expect="NoSuchVersion")

    def test_cors(self) -> None:
        """put/get/delete-bucket-cors; browsers' preflights and actual requests are answered from the rules."""
        bucket = self.newBucket()
        self.json("s3api", "put-object", "--bucket", bucket, "--key", "page", "--body", self.file("p", b"page"))
        self.assertFails("s3api", "get-bucket-cors", "--bucket", bucket, expect="NoSuchCORSConfiguration")
        rules = {
            "CORSRules": [
                {
                    "AllowedOrigins": ["https://app.example.com"],
                    "AllowedMethods": ["GET", "PUT"],
                    "AllowedHeaders": ["x-amz-*", "content-type"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                },
                {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
            ]
        }
        self.json("s3api", "put-bucket-cors", "--bucket", bucket, "--cors-configuration", json.dumps(rules))
        self.assertEqual(self.json("s3api", "get-bucket-cors", "--bucket", bucket)["CORSRules"], rules["CORSRules"])

        url = f"{self.server.endpoint}/{bucket}/page"
        origin = "https://app.example.com"
        preflight = requests.options(
            url,
            headers={"Origin": origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-amz-date, Content-Type"},
            timeout=30,
        )
        self.assertEqual(preflight.status_code, 200, preflight.text)
        self.assertEqual(preflight.headers.get("Access-Control-Allow-Origin"), origin)
        self.assertIn("PUT", preflight.headers.get("Access-Control-Allow-Methods", ""))
        self.assertEqual(preflight.headers.get("Access-Control-Max-Age"), "600")
        allowedHeaders = preflight.headers.get("Access-Control-Allow-Headers", "").lower()
        self.assertIn("x-amz-date", allowedHeaders)
        self.assertIn("content-type", allowedHeaders)
        refused = requests.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}, timeout=30)
        self.assertEqual(refused.status_code, 403, refused.text)
        self.assertIn("AccessForbidden", refused.text)
        self.assertIsNone(refused.headers.get("Access-Control-Allow-Origin"))
        # An actual (signed) request with an Origin gets the rule's headers.
        presigned = self.run_aws("s3", "presign", f"s3://{bucket}/page", "--expires-in", "600").stdout.strip()
        actual = requests.get(presigned, headers={"Origin": origin}, timeout=30)
        self.assertEqual(actual.status_code, 200, actual.text)
        self.assertEqual(actual.headers.get("Access-Control-Allow-Origin"), origin)
        self.assertIn("ETag", actual.headers.get("Access-Control-Expose-Headers", ""))
        self.json("s3api", "delete-bucket-cors", "--bucket", bucket)
        self.assertFails("s3api", "get-bucket-cors", "--bucket", bucket, expect="NoSuchCORSConfiguration")
        gone = requests.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "GET"}, timeout=30)
        self.assertEqual(gone.status_code, 403, gone.text)

    def test_inspection(self) -> None:
        """get-bucket-acl, get-object-acl, get-bucket-versioning and the NoSuch... answers of absent configurations."""
        bucket = self.newBucket()
        self.json("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", self.file("i", b"i"))
        owner = self.json("s3api", "list-buckets")["Owner"]["ID"]
        for acl in (
            self.json("s3api", "get-bucket-acl", "--bucket", bucket),
            self.json("s3api", "get-object-acl", "--bucket", bucket, "--key", "k"),
        ):
            self.assertEqual(acl["Owner"]["ID"], owner)
            self.assertEqual(
                [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]], [(owner, "FULL_CONTROL")]
            )
        versioning = self.json("s3api", "get-bucket-versioning", "--bucket", bucket)
        self.assertNotIn("Status", versioning)
        self.assertFails("s3api", "get-bucket-policy", "--bucket", bucket, expect="NoSuchBucketPolicy")
        self.assertFails(
            "s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket, expect="NoSuchLifecycleConfiguration"
        )
        self.assertFails(
            "s3api", "get-bucket-encryption", "--bucket", bucket, expect="ServerSideEncryptionConfigurationNotFoundError"
        )
        self.assertFails(
            "s3api", "get-object-lock-configuration", "--bucket", bucket, expect="ObjectLockConfigurationNotFoundError"
        )
        self.json("s3api", "put-bucket-acl", "--bucket", bucket, "--acl", "private")
        self.assertFails("s3api", "put-bucket-acl", "--bucket", bucket, "--acl", "public-read", expect="NotImplemented")
