"""
A model-based test of multipart uploads: hypothesis drives random sequences
of CreateMultipartUpload, UploadPart (including re-uploads of a part number),
AbortMultipartUpload and CompleteMultipartUpload (valid part lists and
invalid ones: out of order, repeated numbers, unknown parts, wrong ETags,
small parts before the last) through the real resource tree (StubTreq, real
engines, botocore's signer, see L{tests.unit.test_resource}), and after each
step checks that the server agrees with a plain dictionary model:

  - every request's status (and error code) is the one the model predicts;
  - ListParts of every live upload shows exactly the model's parts, with
    their sizes and MD5 ETags; ListParts of a finished upload is
    NoSuchUpload;
  - ListMultipartUploads of the bucket shows exactly the live uploads;
  - every completed object reads back as the concatenation of the parts
    chosen, with the ETag MD5-of-MD5s ``-N``, and ``partNumber=`` reads
    return each chosen part.

The 5 MiB minimum part size is lowered to L{MIN_PART} bytes (the
C{S3Context.minPartSize} field) so that parts on either side of it are cheap.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Set, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.unit.test_multipart import completeDocument, expectedETag, parse
from tests.unit.test_resource import ResourceTestCase

#: The lowered minimum size of every part but the last.
MIN_PART = 32

KEYS = ["k", "dir/k", "dir/sp ace+plus", "ünï/☃"]

BUCKET = "bucket"


def md5ETag(data: bytes) -> str:
    return '"%s"' % hashlib.md5(data).hexdigest()


class UploadModel:
    """What the model knows about one upload."""

    def __init__(self, uploadId: str, key: str) -> None:
        self.uploadId = uploadId
        self.key = key
        #: part number -> bytes of the latest upload of that number
        self.parts: Dict[int, bytes] = {}


class MultipartModelTests(ResourceTestCase):
    """Random operation sequences agree with the model."""

    def setUp(self) -> None:
        super().setUp()
        self.server.context.minPartSize = MIN_PART
        self.buckets = 0
        #: how often each interesting outcome happened, over all examples
        self.seen: Dict[str, int] = {}

    def saw(self, outcome: str) -> None:
        self.seen[outcome] = self.seen.get(outcome, 0) + 1

    def freshBucket(self) -> str:
        """A new bucket for one hypothesis example (one server for them all: fast)."""
        self.buckets += 1
        name = f"model-{self.buckets}"
        self.createBucket(name)
        return name

    def test_randomSequences(self) -> None:
        """Random create / upload / re-upload / abort / complete sequences match the model."""
        case = self

        class Machine(RuleBasedStateMachine):
            uploads = Bundle("uploads")

            def __init__(self) -> None:
                super().__init__()
                self.bucket = case.freshBucket()
                self.live: Dict[str, UploadModel] = {}
                self.finished: Dict[str, UploadModel] = {}
                #: key -> (content, ETag, [(part number, part content)] in order)
                self.objects: Dict[str, Tuple[bytes, str, List[Tuple[int, bytes]]]] = {}
                # Which upload completed each key's current object, with which parts.
                self.completedBy: Dict[str, Tuple[str, List[Tuple[int, str]]]] = {}

            # -- helpers --------------------------------------------------

            def path(self, key: str) -> str:
                return f"/{self.bucket}/{quote(key, safe='/')}"

            def uploadFor(self, uploadId: str) -> UploadModel:
                return self.live.get(uploadId) or self.finished[uploadId]

            def expectError(self, response: Tuple[int, Dict[str, str], bytes], allowed: Set[Tuple[int, str]]) -> None:
                status, _, body = response
                code = ElementTree.fromstring(body).findtext("Code") if body else None
                case.assertIn((status, code), allowed, body)

            # -- rules ----------------------------------------------------

            @rule(target=uploads, key=st.sampled_from(KEYS))
            def create(self, key: str) -> str:
                response = case.request("POST", self.path(key) + "?uploads")
                case.assertEqual(response[0], 200, response[2])
                parsed = parse("CreateMultipartUpload", response)
                case.assertEqual((parsed["Bucket"], parsed["Key"]), (self.bucket, key))
                uploadId = str(parsed["UploadId"])
                case.assertNotIn(uploadId, self.live)
                case.assertNotIn(uploadId, self.finished)
                self.live[uploadId] = UploadModel(uploadId, key)
                return uploadId

            @rule(
                uploadId=uploads,
                number=st.integers(1, 8),
                data=st.one_of(
                    st.binary(min_size=0, max_size=MIN_PART - 1),
                    st.binary(min_size=MIN_PART, max_size=MIN_PART * 3),
                ),
            )
            def uploadPart(self, uploadId: str, number: int, data: bytes) -> None:
                """An upload (or re-upload) of part C{number}."""
                model = self.uploadFor(uploadId)
                response = case.request(
                    "PUT", self.path(model.key) + f"?partNumber={number}&uploadId={uploadId}", data
                )
                if uploadId in self.live:
                    case.assertEqual(response[0], 200, response[2])
                    case.assertEqual(response[1]["etag"], md5ETag(data))
                    if number in model.parts:
                        case.saw("re-upload")
                    model.parts[number] = data
                else:
                    self.expectError(response, {(404, "NoSuchUpload")})

            @rule(
                uploadId=uploads,
                first=st.integers(1, 4),
                sizes=st.lists(st.integers(MIN_PART, MIN_PART * 2), min_size=2, max_size=4),
                last=st.integers(0, MIN_PART * 2),
                seed=st.integers(0, 255),
            )
            def uploadRun(self, uploadId: str, first: int, sizes: List[int], last: int, seed: int) -> None:
                """Consecutive parts from C{first}, all large enough but the last, which may be small."""
                for offset, size in enumerate(sizes + [last]):
                    number = first + offset
                    data = bytes((seed + number + i) % 256 for i in range(size))
                    self.uploadPart(uploadId, number, data)

            @rule(
                uploadId=uploads,
                first=st.integers(1, 4),
                sizes=st.lists(st.integers(MIN_PART, MIN_PART * 2), min_size=2, max_size=4),
                last=st.integers(0, MIN_PART * 2),
                seed=st.integers(0, 255),
                choice=st.data(),
            )
            def uploadRunThenComplete(
                self, uploadId: str, first: int, sizes: List[int], last: int, seed: int, choice: st.DataObject
            ) -> None:
                """A run of parts, then a complete of the large enough ones (the common, successful path)."""
                self.uploadRun(uploadId, first, sizes, last, seed)
                self.completeValid(uploadId, "sized", choice)

            @rule(uploadId=uploads)
            def abort(self, uploadId: str) -> None:
                model = self.uploadFor(uploadId)
                response = case.request("DELETE", self.path(model.key) + f"?uploadId={uploadId}")
                if uploadId in self.live:
                    case.assertEqual(response[0], 204, response[2])
                    case.saw("abort")
                    self.finished[uploadId] = self.live.pop(uploadId)
                else:
                    self.expectError(response, {(404, "NoSuchUpload")})

            @rule(uploadId=uploads, mode=st.sampled_from(["all", "sized", "subset"]), choice=st.data())
            def completeValid(self, uploadId: str, mode: str, choice: st.DataObject) -> None:
                """
                Complete with real ETags of an ascending list of uploaded
                parts: all of them, a subset whose parts but the last are
                large enough (it should succeed), or any subset.
                """
                model = self.uploadFor(uploadId)
                available = sorted(model.parts)
                numbers = [1]
                if uploadId in self.live and available:
                    if mode == "all":
                        numbers = available
                    elif mode == "sized":
                        numbers = [n for n in available if len(model.parts[n]) >= MIN_PART]
                        later = [n for n in available if not numbers or n > numbers[-1]]
                        if later and (not numbers or choice.draw(st.booleans(), "add a last part")):
                            numbers.append(choice.draw(st.sampled_from(later), "last"))
                    else:
                        numbers = choice.draw(
                            st.lists(st.sampled_from(available), min_size=1, unique=True).map(sorted), "parts"
                        )
                self.complete(model, [(n, md5ETag(model.parts.get(n, b"?"))) for n in numbers])

            @rule(
                uploadId=uploads,
                entries=st.lists(
                    st.tuples(st.integers(1, 9), st.booleans()), min_size=1, max_size=5
                ),
            )
            def completeAnything(self, uploadId: str, entries: List[Tuple[int, bool]]) -> None:
                """Complete with any list: possibly unordered, repeated, unknown parts, wrong ETags."""
                model = self.uploadFor(uploadId)
                parts = []
                for number, rightETag in entries:
                    data = model.parts.get(number)
                    etag = md5ETag(data) if data is not None and rightETag else md5ETag(b"wrong %d" % number)
                    parts.append((number, etag))
                self.complete(model, parts)

            def complete(self, model: UploadModel, parts: List[Tuple[int, str]]) -> None:
                """Send a complete; the model predicts the outcome (any applicable error)."""
                response = case.request(
                    "POST", self.path(model.key) + f"?uploadId={model.uploadId}", completeDocument(parts)
                )
                errors: Set[Tuple[int, str]] = set()
                numbers = [n for n, _ in parts]
                if any(b <= a for a, b in zip(numbers, numbers[1:])):
                    errors.add((400, "InvalidPartOrder"))
                if model.uploadId not in self.live:
                    retried = self.completedBy.get(model.key) == (
                        model.uploadId, [(n, e.strip('"')) for n, e in parts]
                    )
                    if retried and (400, "InvalidPartOrder") not in errors:
                        # The same complete again: the same answer (as AWS).
                        case.assertEqual(response[0], 200, response[2])
                        etag = self.objects[model.key][1]
                        case.assertEqual(parse("CompleteMultipartUpload", response)["ETag"], etag)
                        case.saw("retried complete")
                        return
                    errors.add((404, "NoSuchUpload"))
                else:
                    chosen = []
                    for number, etag in parts:
                        data = model.parts.get(number)
                        if data is None or md5ETag(data) != etag:
                            errors.add((400, "InvalidPart"))
                        else:
                            chosen.append((number, data))
                    if not errors and any(len(data) < MIN_PART for _, data in chosen[:-1]):
                        errors.add((400, "EntityTooSmall"))
                if errors:
                    self.expectError(response, errors)
                    case.saw("refused complete")
                    return
                case.assertEqual(response[0], 200, response[2])
                parsed = parse("CompleteMultipartUpload", response)
                contents = [data for _, data in chosen]
                case.assertEqual(parsed["ETag"], expectedETag(contents))
                case.assertEqual((parsed["Bucket"], parsed["Key"]), (self.bucket, model.key))
                self.objects[model.key] = (b"".join(contents), expectedETag(contents), chosen)
                self.completedBy[model.key] = (model.uploadId, [(n, md5ETag(d).strip('"')) for n, d in chosen])
                self.finished[model.uploadId] = self.live.pop(model.uploadId)
                case.saw("complete")
                if len(chosen) > 1:
                    case.saw("complete of several parts")

            @rule(uploadId=uploads)
            def listPartsOfFinished(self, uploadId: str) -> None:
                """ListParts of an aborted or completed upload is NoSuchUpload."""
                model = self.uploadFor(uploadId)
                if uploadId in self.live:
                    return
                response = case.request("GET", self.path(model.key) + f"?uploadId={uploadId}")
                self.expectError(response, {(404, "NoSuchUpload")})

            # -- invariants -----------------------------------------------

            @invariant()
            def partsAgree(self) -> None:
                for uploadId, model in self.live.items():
                    response = case.request("GET", self.path(model.key) + f"?uploadId={uploadId}")
                    case.assertEqual(response[0], 200, response[2])
                    parsed = parse("ListParts", response)
                    got = [(p["PartNumber"], p["ETag"], p["Size"]) for p in parsed.get("Parts", [])]
                    want = [(n, md5ETag(d), len(d)) for n, d in sorted(model.parts.items())]
                    case.assertEqual(got, want)
                    case.assertFalse(parsed["IsTruncated"])

            @invariant()
            def uploadsAgree(self) -> None:
                response = case.request("GET", f"/{self.bucket}?uploads")
                case.assertEqual(response[0], 200, response[2])
                parsed = parse("ListMultipartUploads", response)
                got = sorted((u["Key"], u["UploadId"]) for u in parsed.get("Uploads", []))
                want = sorted((m.key, m.uploadId) for m in self.live.values())
                case.assertEqual(got, want)
                keys = [u["Key"] for u in parsed.get("Uploads", [])]
                case.assertEqual(keys, sorted(keys, key=lambda k: k.encode()))

            @invariant()
            def objectsAgree(self) -> None:
                for key, (content, etag, chosen) in self.objects.items():
                    status, headers, body = case.request("GET", self.path(key))
                    case.assertEqual(status, 200, body)
                    case.assertEqual(body, content)
                    case.assertEqual(headers["etag"], etag)
                    for number, data in chosen:
                        status, headers, body = case.request("GET", self.path(key) + f"?partNumber={number}")
                        # An empty part has no byte range to name: 200 or 206.
                        case.assertIn(status, (206,) if data else (200, 206), body)
                        case.assertEqual(body, data)
                        case.assertEqual(headers.get("x-amz-mp-parts-count"), str(len(chosen)))

        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=50,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
        # The sequences did exercise what they are meant to.
        for outcome in ("re-upload", "abort", "refused complete", "complete", "complete of several parts"):
            self.assertGreater(self.seen.get(outcome, 0), 0, f"no {outcome!r} in any example: {self.seen}")
