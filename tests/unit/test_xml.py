"""
Tests for L{fasterstore.s3.xml}.

Response documents are also read back with botocore's own REST-XML parser
and S3 model, so "a client understands it" is what is checked, not just
"it is XML".
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import botocore.session
from botocore.handlers import decode_list_object, decode_list_object_v2
from botocore.parsers import create_parser
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BucketRecord, ObjectRecord, ObjectSummary
from fasterstore.s3.xml import (
    MAX_XML_SIZE,
    S3_NAMESPACE,
    childText,
    decodeContinuationToken,
    encodeContinuationToken,
    errorDocument,
    findChild,
    listAllMyBuckets,
    listObjectsV1,
    listObjectsV2,
    localName,
    locationConstraint,
    parseCreateBucketConfiguration,
    parseXML,
    urlEncode,
    validateEncodingType,
)

DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NS = "{" + S3_NAMESPACE + "}"
# 2006-02-03T16:45:09Z
CREATED = 1138985109.0

_S3_MODEL = botocore.session.get_session().get_service_model("s3")

# Characters XML 1.0 can carry (so a key made of them round-trips without
# encoding-type=url).
xmlText = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_characters="".join(
            chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"
        )
        + "\ufffe\uffff",
    ),
    min_size=1,
)
# Anything a valid key can hold (no lone surrogates).
keyText = st.text(alphabet=st.characters(codec="utf-8"), min_size=1)


def botocoreParse(operation: str, body: bytes, status: int = 200) -> Dict[str, Any]:
    """
    Parse C{body} as botocore does for the response to C{operation}.
    """
    shape = _S3_MODEL.operation_model(operation).output_shape
    parsed: Dict[str, Any] = create_parser("rest-xml").parse(
        {"body": body, "headers": {}, "status_code": status}, shape
    )
    return parsed


def record(key: str, **kwargs: Any) -> ObjectSummary:
    """
    What a listing shows of an object record with dull defaults.
    """
    values: Dict[str, Any] = dict(
        bucket="bucket",
        key=key,
        size=3,
        etag="acbd18db4cc2f85cedef654fccc4a4d8",
        blob="blob",
        modified=CREATED + 0.25,
    )
    values.update(kwargs)
    return ObjectSummary.of(ObjectRecord(**values))


def childNames(body: bytes) -> List[str]:
    """
    The local names of the root's children, in order.
    """
    return [localName(child.tag) for child in ElementTree.fromstring(body)]


def v1(**overrides: Any) -> bytes:
    """
    L{listObjectsV1} with defaults for everything not under test.
    """
    arguments: Dict[str, Any] = dict(
        prefix="",
        marker="",
        delimiter=None,
        maxKeys=1000,
        isTruncated=False,
        objects=[],
        commonPrefixes=[],
        nextMarker=None,
        encodingType=None,
        owner=("owner-id", "owner-name"),
    )
    arguments.update(overrides)
    return listObjectsV1("bucket", **arguments)


def v2(**overrides: Any) -> bytes:
    """
    L{listObjectsV2} with defaults for everything not under test.
    """
    arguments: Dict[str, Any] = dict(
        prefix="",
        delimiter=None,
        maxKeys=1000,
        isTruncated=False,
        objects=[],
        commonPrefixes=[],
        continuationToken=None,
        nextContinuationToken=None,
        startAfter=None,
        encodingType=None,
        owner=None,
    )
    arguments.update(overrides)
    return listObjectsV2("bucket", **arguments)


class ParseXMLTests(SynchronousTestCase):
    """
    L{parseXML} parses untrusted bodies safely.
    """

    def assertMalformed(self, body: bytes, **kwargs: Any) -> None:
        """
        C{body} is refused with MalformedXML.
        """
        error = self.assertRaises(S3Error, parseXML, body, **kwargs)
        self.assertEqual((error.code, error.status), ("MalformedXML", 400))

    def test_parses(self) -> None:
        """
        A well-formed body gives its root element.
        """
        root = parseXML(b"<a><b>text</b></a>")
        self.assertEqual(root.tag, "a")
        self.assertEqual(childText(root, "b"), "text")

    def test_notWellFormed(self) -> None:
        """
        Broken, empty and non-XML bodies are MalformedXML.
        """
        for body in (b"", b"<a>", b"<a></b>", b"not xml", b"<a>\x01</a>", b"<a>\xff</a>"):
            self.assertMalformed(body)

    def test_unknownEncoding(self) -> None:
        """
        An unknown encoding declaration is MalformedXML, not a LookupError.
        """
        self.assertMalformed(b'<?xml version="1.0" encoding="nope"?><a/>')

    def test_dtdRefused(self) -> None:
        """
        Any DTD is refused, so entity expansion never starts.
        """
        laughs = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b"<lolz>&lol2;</lolz>"
        )
        external = (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<a>&x;</a>"
        )
        for body in (laughs, external, b'<!DOCTYPE a SYSTEM "http://example/a.dtd"><a/>'):
            self.assertMalformed(body)

    def test_sizeCap(self) -> None:
        """
        Bodies over the cap are refused before parsing.
        """
        body = b"<a>" + b"x" * MAX_XML_SIZE + b"</a>"
        self.assertMalformed(body)
        self.assertMalformed(b"<a>xxxx</a>", maxSize=10)
        self.assertEqual(parseXML(b"<a>xxx</a>", maxSize=10).text, "xxx")

    @given(st.binary())
    def test_anyBytes(self, body: bytes) -> None:
        """
        Any bytes give an element or MalformedXML, nothing else.
        """
        try:
            parseXML(body)
        except S3Error as e:
            self.assertEqual(e.code, "MalformedXML")

    @given(xmlText)
    def test_textRoundTrip(self, text: str) -> None:
        """
        Text we serialise is parsed back exactly.
        """
        body = locationConstraint(text) if text != "us-east-1" else b"<a/>"
        expected = text if text != "us-east-1" else None
        self.assertEqual(parseXML(body).text, expected)


class HelperTests(SynchronousTestCase):
    """
    The namespace-tolerant lookups.
    """

    def test_localName(self) -> None:
        """
        The namespace part is dropped.
        """
        self.assertEqual(localName(NS + "Key"), "Key")
        self.assertEqual(localName("Key"), "Key")

    def test_findChild(self) -> None:
        """
        Children are found with or without a namespace, first one wins.
        """
        for body in (
            b"<r><Key>a</Key><Key>b</Key></r>",
            b'<r xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Key>a</Key><Key>b</Key></r>',
        ):
            root = parseXML(body)
            child = findChild(root, "Key")
            assert child is not None
            self.assertEqual(child.text, "a")
            self.assertIsNone(findChild(root, "Nope"))

    def test_childText(self) -> None:
        """
        Missing children are C{None}, empty ones C{""}.
        """
        root = parseXML(b"<r><Empty/></r>")
        self.assertEqual(childText(root, "Empty"), "")
        self.assertIsNone(childText(root, "Missing"))


class CreateBucketConfigurationTests(SynchronousTestCase):
    """
    L{parseCreateBucketConfiguration} reads the LocationConstraint.
    """

    def test_empty(self) -> None:
        """
        No body (or only whitespace) means no constraint.
        """
        self.assertIsNone(parseCreateBucketConfiguration(b""))
        self.assertIsNone(parseCreateBucketConfiguration(b" \r\n"))

    def test_withAndWithoutNamespace(self) -> None:
        """
        The S3 namespace is optional.
        """
        for body in (
            b"<CreateBucketConfiguration><LocationConstraint>eu-west-1"
            b"</LocationConstraint></CreateBucketConfiguration>",
            b'<?xml version="1.0" encoding="UTF-8"?>\n<CreateBucketConfiguration '
            b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n  <LocationConstraint>'
            b" eu-west-1 </LocationConstraint>\n</CreateBucketConfiguration>",
        ):
            self.assertEqual(parseCreateBucketConfiguration(body), "eu-west-1")

    def test_noConstraint(self) -> None:
        """
        A configuration without LocationConstraint gives C{None}; an empty
        one gives C{""}.
        """
        self.assertIsNone(
            parseCreateBucketConfiguration(b"<CreateBucketConfiguration/>")
        )
        self.assertEqual(
            parseCreateBucketConfiguration(
                b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
            ),
            "",
        )

    def test_wrongDocument(self) -> None:
        """
        Another root element or broken XML is MalformedXML.
        """
        for body in (b"<Foo><LocationConstraint>x</LocationConstraint></Foo>", b"<Create"):
            error = self.assertRaises(S3Error, parseCreateBucketConfiguration, body)
            self.assertEqual(error.code, "MalformedXML")

    @given(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1),
        st.booleans(),
    )
    def test_roundTrip(self, region: str, namespaced: bool) -> None:
        """
        Any region-like constraint is read back.
        """
        root = ElementTree.Element(
            "CreateBucketConfiguration", xmlns=S3_NAMESPACE
        ) if namespaced else ElementTree.Element("CreateBucketConfiguration")
        ElementTree.SubElement(root, "LocationConstraint").text = region
        self.assertEqual(
            parseCreateBucketConfiguration(ElementTree.tostring(root)), region
        )


class ErrorDocumentTests(SynchronousTestCase):
    """
    L{errorDocument} renders S3 errors as AWS does.
    """

    def test_exact(self) -> None:
        """
        Code, Message, extras, Resource, RequestId, HostId; no namespace.
        """
        error = S3Error("NoSuchKey", extra={"Key": "a&b"})
        self.assertEqual(
            errorDocument(error, "/bucket/a&b", "REQ", "HOST"),
            DECLARATION + b"<Error><Code>NoSuchKey</Code>"
            b"<Message>The specified key does not exist.</Message>"
            b"<Key>a&amp;b</Key><Resource>/bucket/a&amp;b</Resource>"
            b"<RequestId>REQ</RequestId><HostId>HOST</HostId></Error>",
        )

    def test_noResource(self) -> None:
        """
        An empty resource is left out, as is one already in the extras.
        """
        self.assertEqual(
            childNames(errorDocument(S3Error("AccessDenied"), "", "r", "h")),
            ["Code", "Message", "RequestId", "HostId"],
        )
        error = S3Error("InvalidRange", extra={"Resource": "x"})
        self.assertEqual(
            childNames(errorDocument(error, "/b/k", "r", "h")),
            ["Code", "Message", "Resource", "RequestId", "HostId"],
        )

    def test_controlCharacters(self) -> None:
        """
        A key XML 1.0 cannot carry is written with character references.
        """
        body = errorDocument(S3Error("NoSuchKey", extra={"Key": "a\x01\rb"}), "", "r", "h")
        self.assertIn(b"<Key>a&#x1;&#xD;b</Key>", body)

    def test_botocore(self) -> None:
        """
        botocore reads the code and extras (it takes the request ids from
        the headers).
        """
        body = errorDocument(
            S3Error("PreconditionFailed", extra={"Condition": "If-Match"}), "/b/k", "r", "h"
        )
        parsed = botocoreParse("GetObject", body, 412)
        self.assertEqual(parsed["Error"]["Code"], "PreconditionFailed")
        self.assertEqual(parsed["Error"]["Condition"], "If-Match")
        self.assertEqual(parsed["Error"]["Resource"], "/b/k")

    @given(st.text())
    def test_neverRaises(self, key: str) -> None:
        """
        Any text at all, lone surrogates and NUL included, is rendered as
        UTF-8 with no raw control characters.
        """
        body = errorDocument(S3Error("NoSuchKey", extra={"Key": key}), key, "r", "h")
        text = body.decode("utf-8")
        self.assertFalse(any(ord(c) < 0x20 and c not in "\t\n" for c in text))

    @given(xmlText, xmlText)
    def test_anyText(self, message: str, key: str) -> None:
        """
        Any message and key survive the round trip.
        """
        body = errorDocument(S3Error("NoSuchKey", message, extra={"Key": key}), "", "r", "h")
        root = ElementTree.fromstring(body)
        self.assertEqual(childText(root, "Message"), message)
        self.assertEqual(childText(root, "Key"), key)


class ListAllMyBucketsTests(SynchronousTestCase):
    """
    L{listAllMyBuckets} renders ListBuckets.
    """

    def test_exact(self) -> None:
        """
        Owner then Buckets, creation dates with milliseconds.
        """
        buckets = [BucketRecord("a-bucket", "id", "", CREATED + 0.7)]
        self.assertEqual(
            listAllMyBuckets(buckets, "id", "name"),
            DECLARATION
            + b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Owner><ID>id</ID><DisplayName>name</DisplayName></Owner>"
            b"<Buckets><Bucket><Name>a-bucket</Name>"
            b"<CreationDate>2006-02-03T16:45:09.700Z</CreationDate></Bucket></Buckets>"
            b"</ListAllMyBucketsResult>",
        )

    def test_empty(self) -> None:
        """
        No buckets is an empty Buckets element.
        """
        parsed = botocoreParse("ListBuckets", listAllMyBuckets([], "id", "name"))
        self.assertEqual(parsed["Buckets"], [])

    def test_botocore(self) -> None:
        """
        botocore reads names, dates, owner, regions and pagination.
        """
        buckets = [
            BucketRecord("one", "id", "", CREATED),
            BucketRecord("two", "id", "eu-west-1", CREATED + 60),
        ]
        body = listAllMyBuckets(
            buckets, "id", "name", continuationToken="tok", prefix="t", includeRegion=True
        )
        parsed = botocoreParse("ListBuckets", body)
        self.assertEqual(
            [(b["Name"], b["CreationDate"], b["BucketRegion"]) for b in parsed["Buckets"]],
            [
                ("one", datetime(2006, 2, 3, 16, 45, 9, tzinfo=timezone.utc), "us-east-1"),
                ("two", datetime(2006, 2, 3, 16, 46, 9, tzinfo=timezone.utc), "eu-west-1"),
            ],
        )
        self.assertEqual(parsed["Owner"], {"ID": "id", "DisplayName": "name"})
        self.assertEqual(parsed["ContinuationToken"], "tok")
        self.assertEqual(parsed["Prefix"], "t")


class LocationConstraintTests(SynchronousTestCase):
    """
    L{locationConstraint} renders GetBucketLocation.
    """

    def test_usEast1(self) -> None:
        """
        us-east-1 (stored as C{""} or by name) is the empty element.
        """
        expected = (
            DECLARATION + b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"</LocationConstraint>"
        )
        self.assertEqual(locationConstraint(""), expected)
        self.assertEqual(locationConstraint("us-east-1"), expected)
        self.assertIsNone(botocoreParse("GetBucketLocation", expected).get("LocationConstraint"))

    def test_region(self) -> None:
        """
        Other regions are the element's text.
        """
        body = locationConstraint("eu-west-1")
        self.assertEqual(
            body,
            DECLARATION + b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"eu-west-1</LocationConstraint>",
        )


class URLEncodeTests(SynchronousTestCase):
    """
    L{urlEncode} matches S3's encoding-type=url.
    """

    def test_examples(self) -> None:
        """
        Unreserved characters and '/' stay, space is '+', the rest is
        percent-encoded UTF-8 (the AWS documentation's own example
        included).
        """
        self.assertEqual(urlEncode("test_file(3).png"), "test_file%283%29.png")
        self.assertEqual(urlEncode("a b/c*d~e+f"), "a%20b/c*d%7Ee%2Bf")
        self.assertEqual(urlEncode("é\x01\r\n%"), "%C3%A9%01%0D%0A%25")

    @given(keyText)
    def test_botocoreDecodes(self, key: str) -> None:
        """
        botocore's C{unquote_plus} undoes it, and the result is plain
        ASCII XML can carry.
        """
        encoded = urlEncode(key)
        self.assertEqual(unquote_plus(encoded), key)
        encoded.encode("ascii")
        self.assertTrue(all(0x20 < ord(c) < 0x7F for c in encoded))

    def test_validateEncodingType(self) -> None:
        """
        Only C{url} is accepted, as on AWS.
        """
        self.assertIsNone(validateEncodingType(None))
        self.assertEqual(validateEncodingType("url"), "url")
        error = self.assertRaises(S3Error, validateEncodingType, "URL")
        self.assertEqual(error.code, "InvalidArgument")
        self.assertEqual(error.extra["ArgumentName"], "encoding-type")


class ListObjectsV1Tests(SynchronousTestCase):
    """
    L{listObjectsV1} renders ListObjects.
    """

    def test_exact(self) -> None:
        """
        A one-object listing is exactly what AWS sends (bar whitespace).
        """
        body = v1(objects=[record("my-image.jpg")])
        self.assertEqual(
            body,
            DECLARATION
            + b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Name>bucket</Name><Prefix></Prefix><Marker></Marker>"
            b"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
            b"<Contents><Key>my-image.jpg</Key>"
            b"<LastModified>2006-02-03T16:45:09.250Z</LastModified>"
            b'<ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag><Size>3</Size>'
            b"<StorageClass>STANDARD</StorageClass>"
            b"<Owner><ID>owner-id</ID><DisplayName>owner-name</DisplayName></Owner>"
            b"</Contents></ListBucketResult>",
        )

    def test_order(self) -> None:
        """
        Every optional element, in AWS order.
        """
        body = v1(
            prefix="p",
            marker="m",
            delimiter="/",
            isTruncated=True,
            nextMarker="n",
            encodingType="url",
            objects=[record("p1")],
            commonPrefixes=["p/"],
        )
        self.assertEqual(
            childNames(body),
            [
                "Name", "Prefix", "Marker", "NextMarker", "MaxKeys", "Delimiter",
                "EncodingType", "IsTruncated", "Contents", "CommonPrefixes",
            ],
        )

    def test_nextMarkerOnlyWithDelimiter(self) -> None:
        """
        NextMarker appears only when truncated with a delimiter.
        """
        self.assertNotIn("NextMarker", childNames(v1(isTruncated=True, nextMarker="n")))
        self.assertNotIn("NextMarker", childNames(v1(delimiter="/", nextMarker="n")))
        self.assertIn(
            "NextMarker", childNames(v1(delimiter="/", isTruncated=True, nextMarker="n"))
        )

    def test_noOwner(self) -> None:
        """
        Without an owner, entries carry none.
        """
        body = v1(objects=[record("k")], owner=None)
        self.assertNotIn(b"<Owner>", body)

    def test_botocore(self) -> None:
        """
        botocore reads every field, url-decoding as it does for real S3.
        """
        body = v1(
            prefix="a b/",
            marker="a b/0",
            delimiter="/",
            isTruncated=True,
            nextMarker="a b/c+d",
            encodingType="url",
            objects=[record("a b/c+d", checksums=(("crc64nvme", "x"),))],
            commonPrefixes=["a b/é/"],
        )
        parsed = botocoreParse("ListObjects", body)
        decode_list_object(parsed, context={"encoding_type_auto_set": True})
        self.assertEqual(parsed["Marker"], "a b/0")
        self.assertEqual(parsed["NextMarker"], "a b/c+d")
        self.assertEqual(parsed["Delimiter"], "/")
        self.assertTrue(parsed["IsTruncated"])
        [entry] = parsed["Contents"]
        self.assertEqual(entry["Key"], "a b/c+d")
        self.assertEqual(entry["ETag"], '"acbd18db4cc2f85cedef654fccc4a4d8"')
        self.assertEqual(entry["Size"], 3)
        self.assertEqual(entry["ChecksumAlgorithm"], ["CRC64NVME"])
        self.assertEqual(entry["Owner"], {"ID": "owner-id", "DisplayName": "owner-name"})
        self.assertEqual(parsed["CommonPrefixes"], [{"Prefix": "a b/é/"}])
        # botocore does not decode V1's top-level Prefix, and S3 does not encode it.
        self.assertEqual(parsed["Prefix"], "a b/")  # V1 Prefix is sent unencoded, as AWS does


class ListObjectsV2Tests(SynchronousTestCase):
    """
    L{listObjectsV2} renders ListObjectsV2.
    """

    def test_minimal(self) -> None:
        """
        An empty listing has the always-present elements only.
        """
        self.assertEqual(
            childNames(v2()), ["Name", "Prefix", "KeyCount", "MaxKeys", "IsTruncated"]
        )

    def test_order(self) -> None:
        """
        Every optional element, in AWS order.
        """
        body = v2(
            prefix="p",
            delimiter="/",
            isTruncated=True,
            continuationToken="c",
            nextContinuationToken="n",
            startAfter="s",
            encodingType="url",
            objects=[record("p1")],
            commonPrefixes=["p/"],
        )
        self.assertEqual(
            childNames(body),
            [
                "Name", "Prefix", "StartAfter", "ContinuationToken",
                "NextContinuationToken", "KeyCount", "MaxKeys", "Delimiter",
                "EncodingType", "IsTruncated", "Contents", "CommonPrefixes",
            ],
        )

    def test_nextTokenOnlyWhenTruncated(self) -> None:
        """
        NextContinuationToken is only sent when there is more.
        """
        self.assertNotIn("NextContinuationToken", childNames(v2(nextContinuationToken="n")))

    def test_keyCount(self) -> None:
        """
        KeyCount defaults to entries plus common prefixes; it can be given.
        """
        body = v2(objects=[record("a"), record("b")], commonPrefixes=["c/"], delimiter="/")
        self.assertEqual(botocoreParse("ListObjectsV2", body)["KeyCount"], 3)
        self.assertEqual(botocoreParse("ListObjectsV2", v2(keyCount=7))["KeyCount"], 7)

    def test_ownerOnlyWhenFetched(self) -> None:
        """
        Entries carry Owner only when an owner is given (fetch-owner).
        """
        self.assertNotIn(b"<Owner>", v2(objects=[record("k")]))
        parsed = botocoreParse("ListObjectsV2", v2(objects=[record("k")], owner=("i", "n")))
        self.assertEqual(parsed["Contents"][0]["Owner"], {"ID": "i", "DisplayName": "n"})

    def test_checksums(self) -> None:
        """
        Each checksum algorithm is listed, in a fixed order.
        """
        obj = record("k", checksums=(("sha256", "x"), ("crc32c", "y")))
        parsed = botocoreParse("ListObjectsV2", v2(objects=[obj]))
        self.assertEqual(parsed["Contents"][0]["ChecksumAlgorithm"], ["CRC32C", "SHA256"])
        self.assertNotIn(b"ChecksumAlgorithm", v2(objects=[record("k")]))

    def test_escaping(self) -> None:
        """
        Without url encoding, markup characters are escaped, carriage
        returns are preserved and control characters become references.
        """
        body = v2(objects=[record("<a&b>\r\x1f")])
        self.assertIn(b"<Key>&lt;a&amp;b&gt;&#xD;&#x1F;</Key>", body)

    def test_botocoreFields(self) -> None:
        """
        botocore reads every top-level field.
        """
        token = encodeContinuationToken("a b")
        body = v2(
            prefix="a b",
            delimiter="/",
            isTruncated=True,
            continuationToken=token,
            nextContinuationToken=token,
            startAfter="a b0",
            encodingType="url",
            maxKeys=2,
        )
        parsed = botocoreParse("ListObjectsV2", body)
        decode_list_object_v2(parsed, context={"encoding_type_auto_set": True})
        self.assertEqual(
            {k: parsed[k] for k in (
                "Name", "Prefix", "Delimiter", "MaxKeys", "IsTruncated", "EncodingType",
                "ContinuationToken", "NextContinuationToken", "StartAfter", "KeyCount",
            )},
            {
                "Name": "bucket", "Prefix": "a b", "Delimiter": "/", "MaxKeys": 2,
                "IsTruncated": True, "EncodingType": "url", "ContinuationToken": token,
                "NextContinuationToken": token, "StartAfter": "a b0", "KeyCount": 0,
            },
        )

    def assertKeysRoundTrip(
        self, keys: Sequence[str], prefixes: Sequence[str], encodingType: Optional[str]
    ) -> None:
        """
        botocore reads back exactly the keys and prefixes listed.
        """
        body = v2(
            objects=[record(k) for k in keys],
            commonPrefixes=list(prefixes),
            delimiter="/",
            encodingType=encodingType,
        )
        parsed = botocoreParse("ListObjectsV2", body)
        decode_list_object_v2(parsed, context={"encoding_type_auto_set": True})
        self.assertEqual([c["Key"] for c in parsed.get("Contents", [])], list(keys))
        self.assertEqual(
            [c["Prefix"] for c in parsed.get("CommonPrefixes", [])], list(prefixes)
        )

    @given(st.lists(xmlText, max_size=5), st.lists(xmlText, max_size=3))
    def test_anyXMLKey(self, keys: List[str], prefixes: List[str]) -> None:
        """
        Any key XML 1.0 can carry round-trips without encoding, "\\r",
        surrounding whitespace and markup characters included.
        """
        self.assertKeysRoundTrip(keys, prefixes, None)

    @given(st.lists(keyText, max_size=5), st.lists(keyText, max_size=3))
    def test_anyKeyURLEncoded(self, keys: List[str], prefixes: List[str]) -> None:
        """
        Any key at all round-trips with encoding-type=url.
        """
        self.assertKeysRoundTrip(keys, prefixes, "url")


class ContinuationTokenTests(SynchronousTestCase):
    """
    Continuation tokens are opaque, URL-safe and checked.
    """

    def assertRefused(self, token: str) -> None:
        """
        C{token} is refused with AWS's error.
        """
        error = self.assertRaises(S3Error, decodeContinuationToken, token)
        self.assertEqual(error.code, "InvalidArgument")
        self.assertEqual(error.message, "The continuation token provided is incorrect")
        self.assertEqual(
            error.extra, {"ArgumentName": "continuation-token", "ArgumentValue": token}
        )

    def test_example(self) -> None:
        """
        A token is unpadded base64url of the key.
        """
        self.assertEqual(encodeContinuationToken("photos/2006/"), "cGhvdG9zLzIwMDYv")
        self.assertEqual(encodeContinuationToken("a"), "YQ")
        self.assertEqual(decodeContinuationToken("YQ"), "a")

    def test_refused(self) -> None:
        """
        Tokens we could not have produced are refused.
        """
        for token in (
            "",
            "YQ==",
            "YR",
            "Y",
            "a+b/",
            "not a token",
            "YQ\n",
            "__8",
            encodeContinuationToken("a") + "\u0661",
        ):
            self.assertRefused(token)

    @given(keyText)
    def test_roundTrip(self, key: str) -> None:
        """
        Any key survives, through a token that needs no URL quoting.
        """
        token = encodeContinuationToken(key)
        self.assertEqual(decodeContinuationToken(token), key)
        self.assertRegex(token, r"\A[A-Za-z0-9_-]+\Z")

    @given(st.text())
    def test_anyText(self, token: str) -> None:
        """
        Any text decodes to a key whose token it is, or is refused.
        """
        try:
            key = decodeContinuationToken(token)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidArgument")
        else:
            self.assertEqual(encodeContinuationToken(key), token)
