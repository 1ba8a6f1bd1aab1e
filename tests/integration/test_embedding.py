"""
docs/examples/embedded.tac, run by twistd exactly as docs/embedding.md shows:
an application's own Site with FasterStore's S3 resource mounted under
C{/storage/s3/}, driven by boto3 and the aws cli.  Every authentication
form must verify below the mount point: SigV4 header, presigned and
chunked; SigV2 header and presigned; browser POST forms.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import urllib.request
from typing import Dict, List

import requests

from tests.integration.harness import (
    REPO_ROOT,
    Server,
    ServerTestCase,
    _twistdCommand,
    amzDate,
    rawRequest,
    requireTool,
)

TAC = os.path.join(REPO_ROOT, "docs", "examples", "embedded.tac")
MOUNT = "/storage/s3"


class EmbeddedServer(Server):
    """The example application instead of C{twistd fasterstore}."""

    readyPath = MOUNT + "/_fasterstore/health/ready"

    def command(self) -> List[str]:
        return _twistdCommand() + ["-n", "--pidfile=", "-y", TAC]

    def _environment(self) -> Dict[str, str]:
        env = super()._environment()
        env.update(
            APP_PORT=str(self.port),
            APP_DATA=self.dataDir,
            APP_ACCESS_KEY=self.accessKey,
            APP_SECRET_KEY=self.secretKey,
        )
        return env


class EmbeddingTests(ServerTestCase):
    """The S3 API works mounted inside someone else's Site."""

    def setUp(self) -> None:
        self.server = EmbeddedServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.stop)

    def test_applicationPageStillServed(self) -> None:
        """The application's own resources are untouched."""
        with urllib.request.urlopen(f"{self.server.endpoint}/") as response:
            self.assertEqual(response.read(), b"<h1>My application</h1>")

    def test_s3BelowMountPoint(self) -> None:
        """boto3 signs the mounted path; buckets, keys with %2F and streamed uploads work."""
        s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT)
        s3.create_bucket(Bucket="embedded")
        body = os.urandom(3 * 1024 * 1024 + 17)
        key = "dir/a%2Fb c+d"
        put = s3.put_object(Bucket="embedded", Key=key, Body=body)
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
        self.assertEqual(s3.get_object(Bucket="embedded", Key=key)["Body"].read(), body)
        listed = s3.list_objects_v2(Bucket="embedded")["Contents"]
        self.assertEqual([o["Key"] for o in listed], [key])
        self.assertEqual([b["Name"] for b in s3.list_buckets()["Buckets"]], ["embedded"])

    def test_wrongSecretRefused(self) -> None:
        """Authentication is enforced below the mount point too."""
        from botocore.exceptions import ClientError

        self.server.secretKey = "not-the-secret"
        s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT)
        with self.assertRaises(ClientError) as caught:
            s3.list_buckets()
        self.assertEqual(caught.exception.response["Error"]["Code"], "SignatureDoesNotMatch")


class EmbeddedAuthenticationTests(ServerTestCase):
    """Each authentication form, as clients sign it, below the mount point."""

    def setUp(self) -> None:
        self.server = EmbeddedServer(self.mktemp())
        self.server.start()
        self.addCleanup(self.server.stop)
        self.s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT)
        self.s3.create_bucket(Bucket="photos")
        self.s3.put_object(Bucket="photos", Key="plain.txt", Body=b"plain")

    def fetch(self, url: str) -> bytes:
        with urllib.request.urlopen(url) as response:
            return response.read()

    def test_sigV4Presigned(self) -> None:
        """A SigV4 presigned GET (boto3's s3v4) verifies."""
        s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT, signature_version="s3v4")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "plain.txt"})
        self.assertEqual(self.fetch(url), b"plain")

    def test_sigV4Chunked(self) -> None:
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the seed and chunks verify."""
        data = os.urandom(150_000)
        signer = self.server.signer()
        path = MOUNT + "/photos/chunked"
        now = datetime.datetime.now(datetime.timezone.utc)
        length = len(signer.signedChunkedBody(amzDate(now), "0" * 64, data))
        headers = {
            "host": self.server.host,
            "x-amz-decoded-content-length": str(len(data)),
            "content-length": str(length),
        }
        seed = signer.signHeaders("PUT", path, [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now=now)
        body = signer.signedChunkedBody(amzDate(now), seed, data)
        response = rawRequest(self.server, "PUT", path, headers, body, sign=False)
        self.assertEqual(response.status, 200, response.body)
        self.assertEqual(self.s3.get_object(Bucket="photos", Key="chunked")["Body"].read(), data)

    def test_sigV2Header(self) -> None:
        """SigV2 in the Authorization header (boto3's signature_version 's3')."""
        s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT, signature_version="s3")
        s3.put_object(Bucket="photos", Key="v2.txt", Body=b"two")
        self.assertEqual(s3.get_object(Bucket="photos", Key="v2.txt")["Body"].read(), b"two")

    def test_sigV2Presigned(self) -> None:
        """A SigV2 presigned GET, signed over the path below the mount point, verifies."""
        s3 = self.server.client(endpoint_url=self.server.endpoint + MOUNT, signature_version="s3")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "plain.txt"})
        self.assertIn("Signature=", url)
        self.assertEqual(self.fetch(url), b"plain")

    def test_awsCliPresign(self) -> None:
        """C{aws s3 presign} (SigV2 by default) gives a URL that works below the mount point."""
        aws = requireTool("aws", nextToPython=True)
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=self.server.accessKey,
            AWS_SECRET_ACCESS_KEY=self.server.secretKey,
            AWS_DEFAULT_REGION=self.server.region,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        url = subprocess.run(
            [aws, "--endpoint-url", self.server.endpoint + MOUNT, "s3", "presign", "s3://photos/plain.txt"],
            check=True, capture_output=True, text=True, env=env, timeout=60,
        ).stdout.strip()
        self.assertEqual(self.fetch(url), b"plain")

    def test_browserPost(self) -> None:
        """A browser POST form from boto3's generate_presigned_post uploads."""
        post = self.s3.generate_presigned_post("photos", "posted.txt")
        response = requests.post(post["url"], data=post["fields"], files={"file": ("posted.txt", b"posted")}, timeout=30)
        self.assertEqual(response.status_code, 204, response.text)
        self.assertEqual(self.s3.get_object(Bucket="photos", Key="posted.txt")["Body"].read(), b"posted")
