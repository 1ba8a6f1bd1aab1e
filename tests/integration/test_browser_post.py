"""
Browser-based uploads (POST Object) against the real server, with forms
built as a browser sends them and POST policies signed here with the
harness's own SigV4 (independently of botocore and of the server): every
condition type (exact match in both spellings, starts-with, starts-with ""
for any value, content-length-range), ``success_action_status`` (200, 201,
204 and an unknown value), ``success_action_redirect``, ``x-amz-meta-*``
and ``Content-Type`` fields, the ``${filename}`` substitution, the
refusals S3 gives (failed condition, extra field, expired policy, bad
signature, file too large), CORS headers on a cross-origin POST, and a
128 MiB file streamed into the server without its memory growing by the
file's size.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from typing import Dict, Iterator, List, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import requests

from tests.integration.harness import ServerTestCase, SigV4, amzDate, quotedMD5, rawRequest

MIB = 1 << 20


class BrowserPostTests(ServerTestCase):
    """POST Object with hand-built, hand-signed forms."""

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.s3 = self.server.client()
        self.bucket = self.bucketName("post")
        self.s3.create_bucket(Bucket=self.bucket)
        self.url = f"{self.server.endpoint}/{self.bucket}"

    # -- forms -----------------------------------------------------------

    def signedFields(
        self,
        conditions: Sequence[object],
        fields: Dict[str, str],
        expires: datetime.timedelta = datetime.timedelta(minutes=10),
        secret: Optional[str] = None,
    ) -> Dict[str, str]:
        """
        C{fields} plus the SigV4 fields, and a policy with C{conditions}
        and the conditions every SigV4 form needs (bucket and credential
        fields), signed with the server's secret (or C{secret}).
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        timestamp = amzDate(now)
        signer = self.server.signer()
        credential = f"{self.server.accessKey}/{signer.scope(timestamp[:8])}"
        allFields = dict(fields)
        allFields.update({"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "x-amz-date": timestamp})
        policy = {
            "expiration": (now + expires).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                {"bucket": self.bucket},
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                {"x-amz-credential": credential},
                {"x-amz-date": timestamp},
                *conditions,
            ],
        }
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        if secret is not None:
            signer = SigV4(self.server.accessKey, secret, self.server.region)
        signature = hmac.new(signer.signingKey(timestamp[:8]), encoded.encode(), hashlib.sha256).hexdigest()
        allFields.update({"policy": encoded, "x-amz-signature": signature})
        return allFields

    def post(
        self, fields: Dict[str, str], data: bytes, filename: str = "file.bin", headers: Optional[Dict[str, str]] = None
    ) -> requests.Response:
        """The form as a browser posts it: the fields, then the file last."""
        return requests.post(
            self.url,
            data=list(fields.items()),
            files={"file": (filename, data, "application/octet-stream")},
            headers=headers or {},
            allow_redirects=False,
            timeout=60,
        )

    def assertRefused(self, response: requests.Response, status: int, code: str, message: str = "") -> None:
        self.assertEqual(response.status_code, status, response.text)
        document = ET.fromstring(response.content)
        self.assertEqual(document.findtext("Code"), code, response.text)
        self.assertIn(message, document.findtext("Message") or "", response.text)

    # -- tests -----------------------------------------------------------

    def test_everyConditionType(self) -> None:
        """eq (both spellings), starts-with, starts-with "" and content-length-range all hold: 204, object stored."""
        data = os.urandom(70_000)
        fields = self.signedFields(
            [
                ["starts-with", "$key", "user/alice/"],
                ["eq", "$Content-Type", "image/png"],
                {"x-amz-meta-uploader": "alice"},
                ["starts-with", "$x-amz-meta-note", ""],
                ["starts-with", "$Cache-Control", "max-age="],
                ["content-length-range", 1, 100_000],
            ],
            {
                "key": "user/alice/${filename}",
                "Content-Type": "image/png",
                "x-amz-meta-uploader": "alice",
                "x-amz-meta-note": "anything at all",
                "Cache-Control": "max-age=60",
            },
        )
        response = self.post(fields, data, filename="C:\\Users\\alice\\holiday photo.png")
        self.assertEqual(response.status_code, 204, response.text)
        self.assertEqual(response.headers.get("ETag"), quotedMD5(data))
        self.assertTrue(response.headers.get("Location", "").endswith(f"/{self.bucket}/user%2Falice%2Fholiday%20photo.png"), response.headers)
        # ${filename} is the base name of what the browser sent.
        head = self.s3.head_object(Bucket=self.bucket, Key="user/alice/holiday photo.png")
        self.assertEqual(head["ContentType"], "image/png")
        self.assertEqual(head["Metadata"], {"uploader": "alice", "note": "anything at all"})
        self.assertEqual(head["CacheControl"], "max-age=60")
        got = self.s3.get_object(Bucket=self.bucket, Key="user/alice/holiday photo.png")["Body"].read()
        self.assertEqual(got, data)

    def test_successActions(self) -> None:
        """success_action_status 200, 201 (PostResponse XML), an unknown value (204), and success_action_redirect (303)."""
        data = b"status test"
        ok = self.post(self.signedFields([{"key": "s200"}, {"success_action_status": "200"}], {"key": "s200", "success_action_status": "200"}), data)
        self.assertEqual((ok.status_code, ok.content), (200, b""))
        created = self.post(self.signedFields([{"key": "s201"}, {"success_action_status": "201"}], {"key": "s201", "success_action_status": "201"}), data)
        self.assertEqual(created.status_code, 201, created.text)
        document = ET.fromstring(created.content)
        self.assertEqual(
            (document.tag, document.findtext("Bucket"), document.findtext("Key"), document.findtext("ETag")),
            ("PostResponse", self.bucket, "s201", quotedMD5(data)),
        )
        self.assertEqual(document.findtext("Location"), f"{self.url}/s201")
        other = self.post(self.signedFields([{"key": "s404"}, {"success_action_status": "404"}], {"key": "s404", "success_action_status": "404"}), data)
        self.assertEqual(other.status_code, 204, other.text)
        target = "https://app.example.com/done?from=upload"
        redirected = self.post(
            self.signedFields(
                [{"key": "redirected"}, {"success_action_redirect": target}],
                {"key": "redirected", "success_action_redirect": target},
            ),
            data,
        )
        self.assertEqual(redirected.status_code, 303, redirected.text)
        location = urlsplit(redirected.headers["Location"])
        self.assertEqual((location.scheme, location.netloc, location.path), ("https", "app.example.com", "/done"))
        query = parse_qs(location.query)
        self.assertEqual(query["from"], ["upload"])
        self.assertEqual((query["bucket"], query["key"], query["etag"]), ([self.bucket], ["redirected"], [quotedMD5(data)]))
        for key in ("s200", "s201", "s404", "redirected"):
            self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read(), data, key)

    def test_refusals(self) -> None:
        """A failed condition, an extra field, an expired policy, a bad signature, a file too large: refused, nothing stored."""
        data = b"refused"
        failed = self.post(self.signedFields([["starts-with", "$key", "allowed/"]], {"key": "elsewhere/k"}), data)
        self.assertRefused(failed, 403, "AccessDenied", "Policy Condition failed")
        extra = self.post(self.signedFields([{"key": "k"}], {"key": "k", "x-amz-meta-sneaky": "1"}), data)
        self.assertRefused(extra, 403, "AccessDenied", "Extra input fields: x-amz-meta-sneaky")
        # x-ignore-* fields need no condition.
        ignored = self.post(self.signedFields([{"key": "ignored"}], {"key": "ignored", "x-ignore-tracking": "1"}), data)
        self.assertEqual(ignored.status_code, 204, ignored.text)
        expired = self.post(self.signedFields([{"key": "k"}], {"key": "k"}, expires=datetime.timedelta(minutes=-1)), data)
        self.assertRefused(expired, 403, "AccessDenied", "Policy expired")
        forged = self.post(self.signedFields([{"key": "k"}], {"key": "k"}, secret="not-the-secret"), data)
        self.assertRefused(forged, 403, "SignatureDoesNotMatch")
        tooLarge = self.post(self.signedFields([{"key": "k"}, ["content-length-range", 0, 5]], {"key": "k"}), data)
        self.assertRefused(tooLarge, 400, "EntityTooLarge")
        unsigned = requests.post(self.url, data={"key": "k"}, files={"file": ("f", data)}, timeout=30)
        self.assertRefused(unsigned, 403, "AccessDenied")
        listed = self.s3.list_objects_v2(Bucket=self.bucket)
        self.assertEqual([o["Key"] for o in listed.get("Contents", [])], ["ignored"])

    def test_crossOriginPost(self) -> None:
        """With a CORS rule allowing POST, the preflight and the POST itself carry the CORS headers."""
        origin = "https://uploader.example.com"
        self.s3.put_bucket_cors(
            Bucket=self.bucket,
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": [origin], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag", "Location"]}]},
        )
        preflight = requests.options(self.url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}, timeout=30)
        self.assertEqual(preflight.status_code, 200, preflight.text)
        self.assertEqual(preflight.headers.get("Access-Control-Allow-Origin"), origin)
        response = self.post(self.signedFields([{"key": "cors"}], {"key": "cors"}), b"cors", headers={"Origin": origin})
        self.assertEqual(response.status_code, 204, response.text)
        self.assertEqual(response.headers.get("Access-Control-Allow-Origin"), origin)
        self.assertIn("ETag", response.headers.get("Access-Control-Expose-Headers", ""))
        denied = requests.options(self.url, headers={"Origin": "https://other.example", "Access-Control-Request-Method": "POST"}, timeout=30)
        self.assertEqual(denied.status_code, 403, denied.text)

    def test_largeFileStreamed(self) -> None:
        """A 128 MiB file posted in pieces is stored intact while the server's RSS grows far less than 128 MiB."""
        size = 128 * MIB
        block = os.urandom(MIB)
        fields = self.signedFields([{"key": "big"}, ["content-length-range", size, size]], {"key": "big"})
        boundary = "----fasterstore" + uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ) + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        md5 = hashlib.md5()
        for i in range(size // MIB):
            md5.update(bytes([i % 256]) + block[1:])

        def body() -> Iterator[bytes]:
            yield head
            for i in range(size // MIB):
                yield bytes([i % 256]) + block[1:]
            yield tail

        before = self.server.rss()
        samples: List[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    samples.append(self.server.rss())
                except (OSError, KeyError):
                    return
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            response = rawRequest(
                self.server, "POST", f"/{self.bucket}",
                {"content-type": f"multipart/form-data; boundary={boundary}", "content-length": str(len(head) + size + len(tail))},
                body(), sign=False, timeout=120,
            )
        finally:
            done.set()
            sampler.join(5)
        self.assertEqual(response.status, 204, response.body[:500])
        self.assertEqual(response.headers.get("etag"), '"%s"' % md5.hexdigest())
        growth = max(samples + [self.server.rss()]) - before
        self.assertLess(growth, 64 * MIB, f"server RSS grew by {growth >> 20} MiB for a 128 MiB form upload")
        stat = self.s3.head_object(Bucket=self.bucket, Key="big")
        self.assertEqual((stat["ContentLength"], stat["ETag"]), (size, '"%s"' % md5.hexdigest()))
        stored = hashlib.md5()
        for chunk in self.s3.get_object(Bucket=self.bucket, Key="big")["Body"].iter_chunks(MIB):
            stored.update(chunk)
        self.assertEqual(stored.hexdigest(), md5.hexdigest())
