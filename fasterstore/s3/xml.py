"""
S3 XML in and out.

In: request bodies are parsed with defusedxml (no DTDs, no entity
expansion, no external references) under a size cap, and every failure is
the S3 ``MalformedXML`` error.  Elements are looked up by local name so a
body with or without the S3 namespace is read the same way.

Out: response documents are built with L{xml.etree.ElementTree}, so any
key is escaped correctly (listings, the large documents, as markup strings
with the same escaping: see L{document}), and shaped (element names, order, presence rules)
as AWS emits them.  XML 1.0 cannot carry most C0 control characters; like
AWS, they are written as numeric character references (``&#x1;``), which
strict XML 1.0 parsers reject: clients that may meet such keys ask for
``encoding-type=url``, as botocore always does.  Carriage returns are
written as ``&#xD;`` so that parsers do not normalise them to line feeds.

Tests: tests/unit/test_xml.py.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

from defusedxml import ElementTree as SafeElementTree

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BucketRecord, ObjectSummary
from fasterstore.http.dates import formatISO8601

__all__ = [
    "S3_NAMESPACE",
    "MAX_XML_SIZE",
    "parseXML",
    "localName",
    "findChild",
    "findChildren",
    "childText",
    "parseCreateBucketConfiguration",
    "serialize",
    "errorDocument",
    "listAllMyBuckets",
    "locationConstraint",
    "validateEncodingType",
    "urlEncode",
    "document",
    "element",
    "ownerMarkup",
    "checksumAlgorithmsMarkup",
    "listObjectsV1",
    "listObjectsV2",
    "encodeContinuationToken",
    "decodeContinuationToken",
]

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_SIZE = 1024 * 1024
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

Owner = Tuple[str, str]


# -- parsing ---------------------------------------------------------------


def parseXML(body: bytes, maxSize: int = MAX_XML_SIZE) -> ElementTree.Element:
    """
    Parse an untrusted request body.

    @raise S3Error: C{MalformedXML} if the body is larger than C{maxSize},
        is not well-formed, or uses DTDs or entities.
    """
    if len(body) > maxSize:
        raise S3Error("MalformedXML")
    try:
        root = SafeElementTree.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except (ElementTree.ParseError, ValueError, LookupError):
        # ValueError covers defusedxml's refusals, LookupError an unknown
        # encoding in the XML declaration.
        raise S3Error("MalformedXML") from None
    return root


def localName(tag: str) -> str:
    """
    An element name without its C{{namespace}} part.
    """
    return tag.rpartition("}")[2]


def findChildren(element: ElementTree.Element, name: str) -> Iterable[ElementTree.Element]:
    """
    The direct children called C{name}, in any namespace or none.
    """
    return (child for child in element if localName(child.tag) == name)


def findChild(element: ElementTree.Element, name: str) -> Optional[ElementTree.Element]:
    """
    The first direct child called C{name}, in any namespace or none.
    """
    for child in findChildren(element, name):
        return child
    return None


def childText(element: ElementTree.Element, name: str) -> Optional[str]:
    """
    The text of the first child called C{name}: C{None} when there is no
    such child, C{""} when it is empty.
    """
    child = findChild(element, name)
    if child is None:
        return None
    return child.text or ""


def parseCreateBucketConfiguration(body: bytes) -> Optional[str]:
    """
    The ``LocationConstraint`` of a CreateBucket body.

    @return: C{None} for an empty body or one without the element, else the
        element's text with surrounding whitespace removed (possibly
        C{""}; the caller decides what an empty constraint means).
    @raise S3Error: C{MalformedXML} if the body is not a
        ``CreateBucketConfiguration`` document.
    """
    if not body.strip():
        return None
    root = parseXML(body)
    if localName(root.tag) != "CreateBucketConfiguration":
        raise S3Error("MalformedXML")
    text = childText(root, "LocationConstraint")
    return None if text is None else text.strip()


# -- serialising -----------------------------------------------------------

# Characters XML 1.0 cannot carry literally (plus lone surrogates, which
# cannot even be encoded), and "\r", which parsers would turn into "\n".
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _charRef(match: "re.Match[str]") -> str:
    """
    The numeric character reference AWS writes for an unsafe character.
    """
    return "&#x%X;" % (ord(match.group()),)


def serialize(root: ElementTree.Element) -> bytes:
    """
    A complete UTF-8 document for C{root}, with the declaration AWS sends.

    User text only ever appears in element content, and markup never
    contains control characters, so character references can be applied to
    the serialised text as a whole.
    """
    text = ElementTree.tostring(
        root, encoding="unicode", short_empty_elements=False
    )
    return (XML_DECLARATION + _UNSAFE.sub(_charRef, text)).encode("utf-8")


def _root(name: str) -> ElementTree.Element:
    """
    A response root element in the S3 namespace.
    """
    return ElementTree.Element(name, xmlns=S3_NAMESPACE)


def _add(parent: ElementTree.Element, name: str, text: Optional[str] = None) -> ElementTree.Element:
    """
    Append a child element, with text if given.
    """
    child = ElementTree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def _bool(value: bool) -> str:
    """
    An XML schema boolean, as S3 writes it.
    """
    return "true" if value else "false"


def _addOwner(parent: ElementTree.Element, owner: Owner) -> None:
    """
    Append an ``<Owner>`` with ``ID`` and ``DisplayName``.
    """
    element = _add(parent, "Owner")
    _add(element, "ID", owner[0])
    _add(element, "DisplayName", owner[1])


def errorDocument(error: S3Error, resource: str, requestId: str, hostId: str) -> bytes:
    """
    The ``<Error>`` body for C{error}.

    As on AWS the root has no namespace, and the error's extra elements
    (``Key``, ``BucketName``, ``Condition``...) follow ``Message``.
    ``Resource`` is omitted when empty or already among the extras.
    """
    root = ElementTree.Element("Error")
    _add(root, "Code", error.code)
    _add(root, "Message", error.message)
    for name, value in error.extra.items():
        _add(root, name, value)
    if resource and "Resource" not in error.extra:
        _add(root, "Resource", resource)
    _add(root, "RequestId", requestId)
    _add(root, "HostId", hostId)
    return serialize(root)


def listAllMyBuckets(
    buckets: Sequence[BucketRecord],
    ownerId: str,
    ownerName: str,
    *,
    continuationToken: Optional[str] = None,
    prefix: Optional[str] = None,
    includeRegion: bool = False,
) -> bytes:
    """
    The ListBuckets result.

    @param continuationToken: the token for the next page, when paginated
        with ``max-buckets``.
    @param prefix: the ``prefix`` parameter, echoed when given.
    @param includeRegion: emit ``BucketRegion``, which AWS does only when
        the request carried a parameter.
    """
    root = _root("ListAllMyBucketsResult")
    _addOwner(root, (ownerId, ownerName))
    container = _add(root, "Buckets")
    for bucket in buckets:
        element = _add(container, "Bucket")
        _add(element, "Name", bucket.name)
        _add(element, "CreationDate", formatISO8601(bucket.created))
        if includeRegion:
            _add(element, "BucketRegion", bucket.region or "us-east-1")
    if continuationToken is not None:
        _add(root, "ContinuationToken", continuationToken)
    if prefix is not None:
        _add(root, "Prefix", prefix)
    return serialize(root)


def locationConstraint(region: str) -> bytes:
    """
    The GetBucketLocation result: empty for us-east-1, as AWS answers.
    """
    root = _root("LocationConstraint")
    if region and region != "us-east-1":
        root.text = region
    return serialize(root)


# -- listings --------------------------------------------------------------

_URL_SAFE_TEXT = re.compile(r"[A-Za-z0-9\-_.*/]*")


def validateEncodingType(value: Optional[str]) -> Optional[str]:
    """
    Check the ``encoding-type`` list parameter.

    @return: C{None} (absent) or C{"url"}.
    @raise S3Error: C{InvalidArgument} for any other value, as AWS does.
    """
    if value is None or value == "url":
        return value
    raise S3Error(
        "InvalidArgument",
        "Invalid Encoding Method specified in Request",
        extra={"ArgumentName": "encoding-type", "ArgumentValue": value},
    )


def urlEncode(text: str) -> str:
    """
    Encode a key as S3 does for ``encoding-type=url``.

    Letters, digits and ``-_.*/`` stay, everything else (space included:
    ``%20``, as AWS and the Ceph s3-tests expect) is ``%XX`` of the UTF-8
    bytes.  botocore undoes it with C{unquote_plus}, which reads ``%20``
    and ``%2B`` alike.
    """
    if _URL_SAFE_TEXT.fullmatch(text):
        return text
    return quote(text.encode("utf-8", "surrogatepass"), safe="-_.*/").replace("~", "%7E")


_CHECKSUM_NAMES = (
    ("crc32", "CRC32"),
    ("crc32c", "CRC32C"),
    ("crc64nvme", "CRC64NVME"),
    ("sha1", "SHA1"),
    ("sha256", "SHA256"),
)


def _escape(text: str) -> str:
    """Element content escaped as L{serialize} escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if not text.isascii() or not text.isprintable():
        text = _UNSAFE.sub(_charRef, text)
    return text


def element(name: str, text: str) -> str:
    """An element with text, as markup for L{document}."""
    return f"<{name}>{_escape(text)}</{name}>"


def document(root: str, parts: Iterable[str]) -> bytes:
    """
    A response document whose body is already markup, user text escaped
    by L{element}: how listings are built, a string join instead of an
    element tree (a 1000-key page costs milliseconds less).
    """
    return f'{XML_DECLARATION}<{root} xmlns="{S3_NAMESPACE}">{"".join(parts)}</{root}>'.encode("utf-8")


def ownerMarkup(owner: Owner) -> str:
    """An ``<Owner>`` with ``ID`` and ``DisplayName``, as markup."""
    return f"<Owner>{element('ID', owner[0])}{element('DisplayName', owner[1])}</Owner>"


_CHECKSUM_MARKUP = {name: f"<ChecksumAlgorithm>{wire}</ChecksumAlgorithm>" for name, wire in _CHECKSUM_NAMES}
_CHECKSUM_ORDER = tuple(name for name, _ in _CHECKSUM_NAMES)


def checksumAlgorithmsMarkup(algorithms: Sequence[str]) -> str:
    """``<ChecksumAlgorithm>`` elements for an object's checksums, in a fixed order."""
    if len(algorithms) < 2:
        return _CHECKSUM_MARKUP.get(algorithms[0], "") if algorithms else ""
    return "".join(_CHECKSUM_MARKUP[n] for n in _CHECKSUM_ORDER if n in algorithms)


def _contents(obj: ObjectSummary, encode: bool, owner: str) -> str:
    """One ``<Contents>`` entry; C{owner} is the entries' ``<Owner>`` markup or C{""}."""
    key = urlEncode(obj.key) if encode else _escape(obj.key)
    return (
        f"<Contents><Key>{key}</Key><LastModified>{formatISO8601(obj.modified)}</LastModified>"
        f"<ETag>\"{_escape(obj.etag)}\"</ETag>{checksumAlgorithmsMarkup(obj.checksumAlgorithms)}"
        f"<Size>{obj.size}</Size><StorageClass>STANDARD</StorageClass>{owner}</Contents>"
    )


def _finishListing(
    parts: List[str],
    maxKeys: int,
    delimiter: Optional[str],
    encodingType: Optional[str],
    isTruncated: bool,
    objects: Sequence[ObjectSummary],
    commonPrefixes: Sequence[str],
    owner: Optional[Owner],
) -> bytes:
    """The elements both ListObjects versions end with, then the document."""
    encode = encodingType == "url"
    parts.append(element("MaxKeys", str(maxKeys)))
    if delimiter:
        parts.append(element("Delimiter", urlEncode(delimiter) if encode else delimiter))
    if encodingType is not None:
        parts.append(element("EncodingType", encodingType))
    parts.append(element("IsTruncated", _bool(isTruncated)))
    ownerText = "" if owner is None else ownerMarkup(owner)
    parts.extend(_contents(obj, encode, ownerText) for obj in objects)
    parts.extend(
        f"<CommonPrefixes>{element('Prefix', urlEncode(p) if encode else p)}</CommonPrefixes>"
        for p in commonPrefixes
    )
    return document("ListBucketResult", parts)


def listObjectsV1(
    bucket: str,
    *,
    prefix: str,
    marker: str,
    delimiter: Optional[str],
    maxKeys: int,
    isTruncated: bool,
    objects: Sequence[ObjectSummary],
    commonPrefixes: Sequence[str],
    nextMarker: Optional[str],
    encodingType: Optional[str],
    owner: Optional[Owner],
) -> bytes:
    """
    The ListObjects (version 1) result.

    ``NextMarker`` is only emitted when a delimiter was given and the result
    is truncated: without a delimiter AWS leaves clients to use the last
    key.  C{owner} is the ``Owner`` of every entry (V1 always lists it).
    With C{encodingType="url"} the key-valued elements (``Prefix``,
    ``Marker``, ``NextMarker``, ``Delimiter``, ``Key`` and the common
    prefixes) are L{urlEncode}d and ``EncodingType`` is echoed.
    """
    encode = encodingType == "url"

    def key(text: str) -> str:
        return urlEncode(text) if encode else text

    # AWS leaves V1's own Prefix unencoded (botocore decodes Delimiter,
    # Marker and NextMarker only; V2 encodes Prefix too).
    parts = [element("Name", bucket), element("Prefix", prefix), element("Marker", key(marker))]
    if delimiter and isTruncated and nextMarker is not None:
        parts.append(element("NextMarker", key(nextMarker)))
    return _finishListing(parts, maxKeys, delimiter, encodingType, isTruncated, objects, commonPrefixes, owner)


def listObjectsV2(
    bucket: str,
    *,
    prefix: str,
    delimiter: Optional[str],
    maxKeys: int,
    isTruncated: bool,
    objects: Sequence[ObjectSummary],
    commonPrefixes: Sequence[str],
    continuationToken: Optional[str],
    nextContinuationToken: Optional[str],
    startAfter: Optional[str],
    encodingType: Optional[str],
    owner: Optional[Owner],
    keyCount: Optional[int] = None,
) -> bytes:
    """
    The ListObjectsV2 result.

    @param owner: pass it only for ``fetch-owner=true``; V2 omits ``Owner``
        otherwise.
    @param keyCount: defaults to the number of entries plus common
        prefixes, which is what AWS counts.
    @param nextContinuationToken: emitted only when truncated.

    With C{encodingType="url"}, ``Prefix``, ``Delimiter``, ``StartAfter``,
    ``Key`` and the common prefixes are L{urlEncode}d (continuation tokens
    are already URL-safe) and ``EncodingType`` is echoed.
    """
    encode = encodingType == "url"

    def key(text: str) -> str:
        return urlEncode(text) if encode else text

    if keyCount is None:
        keyCount = len(objects) + len(commonPrefixes)
    parts = [element("Name", bucket), element("Prefix", key(prefix))]
    if startAfter:
        parts.append(element("StartAfter", key(startAfter)))
    if continuationToken is not None:
        parts.append(element("ContinuationToken", continuationToken))
    if isTruncated and nextContinuationToken is not None:
        parts.append(element("NextContinuationToken", nextContinuationToken))
    parts.append(element("KeyCount", str(keyCount)))
    return _finishListing(parts, maxKeys, delimiter, encodingType, isTruncated, objects, commonPrefixes, owner)


# -- continuation tokens ---------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def encodeContinuationToken(key: str) -> str:
    """
    An opaque ListObjectsV2 continuation token resuming after C{key}:
    unpadded base64url of its UTF-8, safe in a query string as is.
    """
    return base64.urlsafe_b64encode(key.encode("utf-8")).rstrip(b"=").decode("ascii")


def decodeContinuationToken(token: str) -> str:
    """
    The key a token from L{encodeContinuationToken} resumes after.

    Only tokens this module could have produced are accepted, so a
    tampered or truncated one is refused rather than silently resuming
    somewhere else.

    @raise S3Error: C{InvalidArgument}, with AWS's message.
    """
    if _TOKEN.fullmatch(token) is not None and len(token) % 4 != 1:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            key = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            pass
        else:
            if key and encodeContinuationToken(key) == token:
                return key
    raise S3Error(
        "InvalidArgument",
        "The continuation token provided is incorrect",
        extra={"ArgumentName": "continuation-token", "ArgumentValue": token},
    )
