"""
Multipart uploads survive a clean restart and a SIGKILL between parts: the
upload, its acknowledged parts and their bytes come back, and it completes.
"""

from __future__ import annotations

import hashlib
import os

from tests.integration.harness import ServerTestCase

PART = 5 * 1024 * 1024


class MultipartRestartTests(ServerTestCase):
    """An upload in progress outlives the server process."""

    def test_killAndRestartBetweenParts(self) -> None:
        """
        Part 1 before a SIGKILL, part 2 before a SIGTERM restart, part 3
        after: ListParts shows every acknowledged part each time, and the
        completed object is their exact concatenation with the -3 ETag.
        """
        server = self.privateServer()
        s3 = server.client()
        bucket = self.bucketName("restart")
        s3.create_bucket(Bucket=bucket)
        uploadId = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
        parts = [os.urandom(PART), os.urandom(PART), os.urandom(1234)]
        etags = []

        def upload(number: int) -> None:
            client = server.client()
            response = client.upload_part(
                Bucket=bucket, Key="big", UploadId=uploadId, PartNumber=number, Body=parts[number - 1]
            )
            etags.append(response["ETag"])

        def listed() -> list:
            client = server.client()
            response = client.list_parts(Bucket=bucket, Key="big", UploadId=uploadId)
            return [(p["PartNumber"], p["ETag"], p["Size"]) for p in response.get("Parts", [])]

        upload(1)
        server.kill()
        server.start()
        self.assertEqual(listed(), [(1, etags[0], PART)])
        upload(2)
        server.stop()
        server.start()
        self.assertEqual(listed(), [(1, etags[0], PART), (2, etags[1], PART)])
        upload(3)
        client = server.client()
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        self.assertEqual([u["UploadId"] for u in uploads], [uploadId])
        client.complete_multipart_upload(
            Bucket=bucket, Key="big", UploadId=uploadId,
            MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
        )
        body = client.get_object(Bucket=bucket, Key="big")["Body"].read()
        self.assertEqual(body, b"".join(parts))
        expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
        self.assertEqual(client.head_object(Bucket=bucket, Key="big")["ETag"], f'"{expected}"')
        server.kill()
        server.start()
        self.assertEqual(server.client().get_object(Bucket=bucket, Key="big")["Body"].read(), b"".join(parts))
