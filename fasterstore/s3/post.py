"""
POST Object: browser-based uploads with an HTML form and a POST policy.

A C{multipart/form-data} POST to a bucket URL carries no Authorization
header: the form's fields carry a base64 JSON policy and its signature
(SigV4: C{x-amz-algorithm}, C{x-amz-credential}, C{x-amz-date},
C{x-amz-signature}; SigV2: C{AWSAccessKeyId}, C{signature}), and the C{file}
field carries the object.

twisted.web would read such a body whole into memory; here the body streams
through python-multipart's incremental parser (L{FormUpload}, an
L{IBodyReceiver}).  The fields before the file are buffered, at most 20 KiB
in all as on S3; when the file part begins the signature, the policy
(expiration, every condition, no uncovered field) and the object's
metadata are checked, and only then are its bytes streamed through an
L{ObjectBody} into the segment engine, with backpressure, checking
C{content-length-range} as they arrive.  Fields after the file are ignored,
as S3 ignores them.  The handler, L{postObject}, commits the object and
answers as C{success_action_redirect} or C{success_action_status} ask,
naming the new version (C{x-amz-version-id}) in a bucket with versioning.
In a bucket with Object Lock the new version takes the retention and legal
hold its C{x-amz-object-lock-*} fields name, or the bucket's default
retention (a form need not carry a digest of its file).
A form the drive has no room for (by its C{Content-Length}) is refused with
C{507 InsufficientStorage} before any of it is read.

Errors follow what S3 answers (see tests for the exact texts): C{403
AccessDenied} "Invalid according to Policy: ..." for a failed condition,
an expired policy or an extra field; C{400 InvalidPolicyDocument} for a
policy that is not one; C{400 InvalidArgument} for a missing field.
Tests: tests/unit/test_post.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

import attrs
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from fasterstore.metadata.records import BucketRecord
from fasterstore.auth.postpolicy import Signer, checkPolicy, missingField, parsePolicy, verifySignature
from fasterstore.errors import S3Error
from fasterstore.http.request import EarlyResponse, IBodyReceiver
from fasterstore.s3 import objectlock, xml
from fasterstore.auth.integrity import uploadSpec
from fasterstore.s3.body import ObjectBody, declaredLength, written
from fasterstore.s3.context import S3Context
from fasterstore.s3.names import validateKey
from fasterstore.s3.objects import StoredAttributes, newObjectRecord, storedAttributes, uploadResponseHeaders
from fasterstore.s3.responses import sendEmpty, sendXML, setHeaders
from fasterstore.s3.tagging import parseTagging
from fasterstore.storage.blob import WrittenBlob

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: S3's limit on the form data before the file part.
MAX_PRE_DATA = 20480
FORM_TYPE = b"multipart/form-data"
#: Fields that are never subject to C{${filename}} substitution.
_NOT_EXPANDED = frozenset({"policy", "x-amz-signature", "signature"})
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


# -- the form --------------------------------------------------------------


def expandFilename(value: str, filename: Optional[str]) -> str:
    """
    C{${filename}} replaced with the file's base name.  Without a
    C{filename} parameter S3 leaves the variable as it is.
    """
    if filename is None:
        return value
    base = re.split(r"[/\\]", filename)[-1]
    return value.replace("${filename}", base)


@attrs.frozen
class PreparedUpload:
    """
    Everything about a form upload known when its file part begins.

    @ivar fields: every field by lower-case name, expanded; repeated
        fields are joined with commas.
    @ivar key: the object key.
    @ivar signer: who signed the policy.
    @ivar lengthRange: the policy's allowed file sizes, if any.
    @ivar attributes: the headers, metadata and tags the object stores.
    @ivar lock: the Object Lock the form's C{x-amz-object-lock-*} fields
        ask for, if any.
    """

    fields: Mapping[str, str]
    key: str
    signer: Signer
    lengthRange: Optional[Tuple[int, int]]
    attributes: StoredAttributes
    lock: Optional[objectlock.Lock] = None


@attrs.frozen
class FormResult:
    """A form upload whose file has been written and verified."""

    upload: PreparedUpload
    blob: WrittenBlob
    algorithms: Tuple[str, ...]


async def formBody(ctx: S3Context, call: "Call", refuse: Callable[[S3Error], EarlyResponse]) -> "FormUpload":
    """
    The body receiver of a POST Object request, chosen at header time.

    @raise S3Error: C{PreconditionFailed} when the body is not
        C{multipart/form-data}, C{MalformedPOSTRequest} without a boundary,
        C{NoSuchBucket}; C{InsufficientStorage} when the drive has no room
        for the form (its C{Content-Length}, which bounds the file's size).
    """
    contentType, options = parse_options_header(call.headers.get("content-type", ""))
    if contentType != FORM_TYPE:
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
            extra={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
        )
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise S3Error("MalformedPOSTRequest")
    assert call.route.bucket is not None
    bucket = await ctx.metadata.getBucket(call.route.bucket)
    if bucket is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": call.route.bucket})
    ctx.checkSpace(declaredLength(call.headers, None))
    return FormUpload(ctx, bucket, boundary, refuse)


@implementer(IBodyReceiver)
class FormUpload:
    """
    Streams a POST Object form: fields buffered (bounded), the file part
    checked against the policy before its first byte is stored and then
    written as it arrives.

    @ivar peakBuffered: the most field bytes held at once (never file bytes).
    @ivar prepared: set once the file part began and the policy held.
    """

    def __init__(
        self, ctx: S3Context, bucket: BucketRecord, boundary: bytes, refuse: Callable[[S3Error], EarlyResponse]
    ) -> None:
        """
        @param bucket: the addressed bucket as found at header time: its
            owner must have signed the policy.
        @param refuse: turns an error found before the policy checked out
            into the answer sent at once: the rest of an unauthenticated
            body is never read.
        """
        self._ctx = ctx
        self._refuse = refuse
        #: The bucket as found at header time (its Object Lock and default
        #: retention apply to the new version).
        self.bucket = bucket
        self._bucket = bucket.name
        self._owner = bucket.owner
        #: The bucket's versioning state at header time, for the answer's
        #: C{x-amz-version-id}.
        self.versioning = bucket.versioning
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._partBegin,
                "on_header_field": self._headerField,
                "on_header_value": self._headerValue,
                "on_header_end": self._headerEnd,
                "on_headers_finished": self._headersFinished,
                "on_part_data": self._partData,
                "on_part_end": self._partEnd,
            },
        )
        self._fields: List[Tuple[str, str]] = []
        self._preData = 0
        self.peakBuffered = 0
        # "fields" until the file part's data begins, then "file", then "done".
        self._state = "fields"
        self._error: Optional[S3Error] = None
        self._headerName: List[bytes] = []
        self._headerValueParts: List[bytes] = []
        self._partHeaders: Dict[str, str] = {}
        self._partName: Optional[str] = None
        self._partValue: List[bytes] = []
        self._partSize = 0
        self.prepared: Optional[PreparedUpload] = None
        self._body: Optional[ObjectBody] = None
        self._writer: Any = None
        self._received = 0
        self._limit = ctx.maxObjectSize
        self._wait: Optional[Deferred[None]] = None
        self._fileEnded = False

    # -- IBodyReceiver

    def dataReceived(self, data: bytes) -> Optional[Deferred[None]]:
        """Parse the next piece; a Deferred while the segment writer lags."""
        if self._error is not None or self._state == "done":
            return None
        self._wait = None
        try:
            self._parser.write(data)
        except S3Error as e:
            self._fail(e)
        except FormParserError:
            self._fail(S3Error("MalformedPOSTRequest"))
        if self._error is not None and self.prepared is None:
            # Nobody has signed for this body: stop reading it.
            raise self._refuse(self._error)
        return self._wait

    def connectionLost(self, reason: Failure) -> None:
        """The body is gone: release what the writer holds."""
        self._fail(S3Error("IncompleteBody"))

    def _fail(self, error: S3Error) -> None:
        if self._error is None:
            self._error = error
            self._fields = []
            self._partValue = []
            if self._writer is not None:
                self._writer.abort()

    # -- parser callbacks

    def _countPreData(self, size: int) -> None:
        self._preData += size
        self.peakBuffered = max(self.peakBuffered, self._preData)
        if self._preData > MAX_PRE_DATA:
            raise S3Error("MaxPostPreDataLengthExceeded", extra={"MaxPostPreDataLengthBytes": str(MAX_PRE_DATA)})

    def _partBegin(self) -> None:
        self._partHeaders = {}
        self._partName = None
        self._partValue = []

    def _headerField(self, data: bytes, start: int, end: int) -> None:
        if self._state == "fields":
            self._countPreData(end - start)
            self._headerName.append(data[start:end])

    def _headerValue(self, data: bytes, start: int, end: int) -> None:
        if self._state == "fields":
            self._countPreData(end - start)
            self._headerValueParts.append(data[start:end])

    def _headerEnd(self) -> None:
        name = b"".join(self._headerName).decode("latin-1").strip().lower()
        value = b"".join(self._headerValueParts).decode("latin-1").strip()
        self._headerName, self._headerValueParts = [], []
        if self._state == "fields":
            self._partHeaders[name] = value

    def _headersFinished(self) -> None:
        if self._state != "fields":
            return
        disposition, options = parse_options_header(self._partHeaders.get("content-disposition", ""))
        name = options.get(b"name")
        self._partName = _text(name) if name is not None else None
        if disposition == b"form-data" and self._partName is not None and self._partName.lower() == "file":
            filename = options.get(b"filename")
            self._startFile(_text(filename) if filename is not None else None)

    def _partData(self, data: bytes, start: int, end: int) -> None:
        if self._state == "fields":
            self._countPreData(end - start)
            self._partValue.append(data[start:end])
        elif self._state == "file":
            self._fileData(data[start:end])

    def _partEnd(self) -> None:
        if self._state == "file":
            self._state = "done"
            self._fileEnded = True
        elif self._state == "fields" and self._partName is not None:
            raw = b"".join(self._partValue)
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise S3Error("MalformedPOSTRequest") from None
            self._fields.append((self._partName, value))
        self._partValue = []

    # -- the file

    def _startFile(self, filename: Optional[str]) -> None:
        """The file part begins: verify everything before a byte is stored."""
        ctx = self._ctx
        lower: Dict[str, str] = {}
        for name, value in self._fields:
            key = name.lower()
            lower[key] = lower[key] + "," + value if key in lower else value
        if "key" not in lower:
            raise missingField("key")
        signer = verifySignature(lower, ctx.lookup, ctx.region)
        policy = parsePolicy(lower["policy"])
        fields = {
            name: value if name in _NOT_EXPANDED else expandFilename(value, filename)
            for name, value in lower.items()
        }
        fields["bucket"] = self._bucket
        checkPolicy(policy, fields, [name for name, _ in self._fields], signer.exempt, ctx.clock.seconds())
        if self._owner != signer.credentials.owner:
            raise S3Error("AccessDenied")
        key = fields["key"]
        validateKey(key)
        attributes = storedAttributes(
            fields, parseTagging(fields["tagging"].encode("utf-8")) if "tagging" in fields else ()
        )
        spec = uploadSpec(_checksumHeaders(fields), None, ctx.maxObjectSize)
        lock = objectlock.requestedLock(fields, self.bucket, ctx.clock.seconds())
        lengthRange = policy.lengthRange
        self.prepared = PreparedUpload(fields, key, signer, lengthRange, attributes, lock)
        if lengthRange is not None:
            self._limit = min(self._limit, lengthRange[1])
        self._writer = ctx.segments.openWriter({spec.algorithm})
        self._body = ObjectBody(self._writer, spec, None, ctx.maxObjectSize, ctx.metadata.discard)
        self._fields = []
        self._preData = 0
        self._state = "file"

    def _fileData(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit:
            # Keep counting (and dropping) so that the error names the size.
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            return
        assert self._body is not None
        wait = self._body.dataReceived(data)
        if wait is not None:
            self._wait = wait

    # -- the end

    def finish(self) -> Deferred[FormResult]:
        """
        The body is complete: the written and verified file, or the error
        that stopped it (the written bytes discarded).
        """
        return Deferred.fromCoroutine(self._finish())

    async def _finish(self) -> FormResult:
        if self._error is None:
            self._parser.finalize()
            if self._state == "fields":
                self._fail(S3Error(
                    "InvalidArgument", "POST requires exactly one file upload per request.",
                    extra={"ArgumentName": "file", "ArgumentValue": "0"},
                ))
            elif not self._fileEnded:
                self._fail(S3Error("MalformedPOSTRequest"))
            else:
                self._checkSize()
        if self._error is not None:
            raise self._error
        assert self._body is not None and self.prepared is not None
        blob = await self._body.finish()
        return FormResult(self.prepared, blob, self._body.algorithms)

    def _checkSize(self) -> None:
        size = self._received
        lengthRange = self.prepared.lengthRange if self.prepared is not None else None
        if lengthRange is not None and size > lengthRange[1]:
            self._fail(S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                extra={"ProposedSize": str(size), "MaxSizeAllowed": str(lengthRange[1])},
            ))
        elif size > self._ctx.maxObjectSize:
            self._fail(S3Error(
                "EntityTooLarge",
                extra={"ProposedSize": str(size), "MaxSizeAllowed": str(self._ctx.maxObjectSize)},
            ))
        elif lengthRange is not None and size < lengthRange[0]:
            self._fail(S3Error(
                "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                extra={"ProposedSize": str(size), "MinSizeAllowed": str(lengthRange[0])},
            ))


def _text(raw: bytes) -> str:
    """A Content-Disposition parameter: UTF-8 as browsers send it, else latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _checksumHeaders(fields: Mapping[str, str]) -> Dict[str, str]:
    """
    The form fields that describe the file's digests, as the headers
    L{uploadSpec} reads (a form has no declared length: it is "chunked").
    """
    headers = {"transfer-encoding": "chunked"}
    for name, value in fields.items():
        if name == "content-md5" or name.startswith("x-amz-checksum-") and name != "x-amz-checksum-algorithm":
            headers[name] = value
    if "x-amz-checksum-algorithm" in fields:
        headers["x-amz-sdk-checksum-algorithm"] = fields["x-amz-checksum-algorithm"]
    return headers


# -- the handler -----------------------------------------------------------


def _location(request: Request, rawPath: bytes, key: str) -> str:
    scheme = "https" if request.isSecure() else "http"
    host = (request.getHeader(b"host") or b"").decode("latin-1")
    base = rawPath.decode("latin-1").rstrip("/")
    return f"{scheme}://{host}{base}/{quote(key, safe='')}"


def _redirectTarget(fields: Mapping[str, str]) -> Optional[str]:
    """C{success_action_redirect} (or the older C{redirect}) if S3 would follow it."""
    target = fields.get("success_action_redirect") or fields.get("redirect")
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # A header carries ASCII: percent-encode anything else (and spaces).
    return quote(target, safe=_PRINTABLE)


def postResponse(location: str, bucket: str, key: str, etag: str) -> bytes:
    """The C{201} body: a C{PostResponse} document (no namespace, as S3 sends it)."""
    root = ElementTree.Element("PostResponse")
    for name, value in (("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", f'"{etag}"')):
        ElementTree.SubElement(root, name).text = value
    return xml.serialize(root)


async def postObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """POST Object: commit the streamed file durably, answer as the form asks."""
    form = call.body
    assert isinstance(form, FormUpload), "PostObject always gets a FormUpload"
    result = await written(ctx, form.finish())
    upload, blob = result.upload, result.blob
    assert call.route.bucket is not None
    record = newObjectRecord(ctx, call.route.bucket, upload.key, blob, result.algorithms, upload.attributes)
    record = objectlock.withLock(record, upload.lock, form.bucket)
    record = await ctx.metadata.putObject(record, blob)
    ctx.metrics.bytesIn.inc(blob.size)
    location = _location(request, call.route.rawPath, record.key)
    headers = uploadResponseHeaders(record, form.versioning)
    headers["Location"] = location
    target = _redirectTarget(upload.fields)
    if target is not None:
        query = urlencode([("bucket", record.bucket), ("key", record.key), ("etag", f'"{record.etag}"')])
        headers["Location"] = target + ("&" if "?" in target else "?") + query
        sendEmpty(request, 303, headers)
        return
    status = upload.fields.get("success_action_status", "").strip()
    if status == "201":
        setHeaders(request, headers)
        sendXML(request, postResponse(location, record.bucket, record.key, record.etag), 201)
    elif status == "200":
        sendEmpty(request, 200, headers)
    else:
        sendEmpty(request, 204, headers)
