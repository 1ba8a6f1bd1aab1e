"""
The aws cli (v1) against the real server: ``aws s3`` cp/sync/ls/rm/mb/rb,
``aws s3api`` for every operation of the core S3 surface, and ``aws s3
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
import subprocess
import time
from typing import Dict
from urllib.parse import parse_qs, quote, urlsplit

import requests

from tests.integration.harness import ServerTestCase, checksumOf, quotedMD5, requireTool

REGION = "eu-central-1"


class AwsCliCase(ServerTestCase):
    """Runs C{aws} with a config of its own in the temp dir."""

    serverOptions = {"region": REGION}

    def setUp(self) -> None:
        self.aws = requireTool("aws", nextToPython=True)
        self.server = self.sharedServer()
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        config = os.path.join(self.home, "config")
        credentials = os.path.join(self.home, "credentials")
        with open(config, "w") as f:
            f.write(f"[default]\nregion = {REGION}\noutput = json\ns3 =\n    addressing_style = path\n")
        with open(credentials, "w") as f:
            f.write(
                f"[default]\naws_access_key_id = {self.server.accessKey}\n"
                f"aws_secret_access_key = {self.server.secretKey}\n"
            )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH", "PYTHONHOME"))}
        self.env.update(
            {
                "AWS_CONFIG_FILE": config,
                "AWS_SHARED_CREDENTIALS_FILE": credentials,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_RETRY_MODE": "standard",
                "AWS_MAX_ATTEMPTS": "1",
                "HOME": self.home,
            }
        )

    def run_aws(self, *args: str, check: bool = True, endpoint: bool = True) -> subprocess.CompletedProcess:
        command = [self.aws] + (["--endpoint-url", self.server.endpoint] if endpoint else []) + list(args)
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            self.fail(f"{' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def json(self, *args: str) -> Dict:
        out = self.run_aws(*args).stdout
        return json.loads(out) if out.strip() else {}

    def assertFails(self, *args: str, expect: str) -> subprocess.CompletedProcess:
        result = self.run_aws(*args, check=False)
        self.assertNotEqual(result.returncode, 0, f"{args} succeeded: {result.stdout}")
        self.assertIn(expect, result.stderr, result.stderr)
        return result

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.home, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()


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
        for name, data in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (old, old))
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
