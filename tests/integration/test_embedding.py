"""
docs/examples/embedded.tac, run by twistd exactly as docs/embedding.md shows:
an application's own Site with FasterStore's S3 resource mounted under
C{/storage/s3/}, driven by boto3.  SigV4 must verify below the mount point.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from typing import Dict, List

from tests.integration.harness import REPO_ROOT, Server, ServerTestCase, _twistdCommand

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
