"""
Cross-origin resource sharing: a bucket's CORS rules, the OPTIONS preflight
answered from them, and the C{Access-Control-*} headers of actual requests.

PutBucketCors validates a C{CORSConfiguration} document and stores its rules
as compact JSON under the bucket's C{"cors"} config entry (the format is
L{rulesToJSON}); GetBucketCors writes the XML back from them.  A preflight
(C{OPTIONS} on a bucket or object URL) is answered before authentication, as
S3 does: browsers send no credentials with it.  On every other request that
carries an C{Origin} header, L{requestCORSHeaders} finds the headers of the
first matching rule, error responses included.
Tests: tests/unit/test_cors.py.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.numbers import INT32_MAX, readDecimal
from fasterstore.s3 import xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML
from fasterstore.s3.routing import Route, route

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: The operation name of the OPTIONS preflight (the resource answers it
#: without authentication).
PREFLIGHT = "PreflightCORS"
#: The bucket config entry holding the rules.
CONFIG_NAME = "cors"
#: What AllowedMethod may name.
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_DOCUMENT = 64 * 1024
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of "
    "Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers "
    "are not whitelisted by the resource's CORS spec."
)


@attrs.frozen
class CORSRule:
    """
    One C{CORSRule}, as validated.

    @ivar origins: AllowedOrigin values; each may hold one C{*} wildcard.
    @ivar methods: AllowedMethod values, upper case.
    @ivar headers: AllowedHeader values, as given (matched case-insensitively).
    @ivar expose: ExposeHeader values.
    @ivar maxAge: MaxAgeSeconds, if given.
    @ivar id: the rule's ID, if given.
    """

    origins: Tuple[str, ...]
    methods: Tuple[str, ...]
    headers: Tuple[str, ...] = ()
    expose: Tuple[str, ...] = ()
    maxAge: Optional[int] = None
    id: Optional[str] = None

    @property
    def anyOrigin(self) -> bool:
        """Whether the rule allows every origin (then S3 answers C{*})."""
        return "*" in self.origins

    def allowsOrigin(self, origin: str) -> bool:
        """Whether C{origin} matches one of the AllowedOrigin patterns."""
        return any(_wildcard(pattern, origin, ignoreCase=False) for pattern in self.origins)

    def allowsHeader(self, name: str) -> bool:
        """Whether a request header name matches one of the AllowedHeader patterns."""
        return any(_wildcard(pattern, name, ignoreCase=True) for pattern in self.headers)


def _wildcard(pattern: str, value: str, ignoreCase: bool) -> bool:
    """A pattern with at most one C{*}, which matches any run of characters."""
    if ignoreCase:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    prefix, _, suffix = pattern.partition("*")
    return len(value) >= len(prefix) + len(suffix) and value.startswith(prefix) and value.endswith(suffix)


# -- the document ----------------------------------------------------------


def parseCORSConfiguration(body: bytes) -> Tuple[CORSRule, ...]:
    """
    Read and validate a C{CORSConfiguration} document as S3 does.

    @raise S3Error: C{MalformedXML} for a document that is not one (no
        rule, a rule without AllowedMethod or AllowedOrigin, a bad
        MaxAgeSeconds); C{InvalidRequest} for a method S3 does not support,
        a pattern with two wildcards, or more than 100 rules.
    """
    root = xml.parseXML(body, MAX_DOCUMENT)
    if xml.localName(root.tag) != "CORSConfiguration":
        raise S3Error("MalformedXML")
    elements = list(xml.findChildren(root, "CORSRule"))
    if not elements:
        raise S3Error("MalformedXML")
    if len(elements) > MAX_RULES:
        raise S3Error("InvalidRequest", f"The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules.")
    return tuple(_parseRule(element) for element in elements)


def _texts(element: ElementTree.Element, name: str) -> Tuple[str, ...]:
    return tuple((child.text or "").strip() for child in xml.findChildren(element, name))


def _parseRule(element: ElementTree.Element) -> CORSRule:
    methods = _texts(element, "AllowedMethod")
    origins = _texts(element, "AllowedOrigin")
    if not methods or not origins:
        raise S3Error("MalformedXML")
    for method in methods:
        if method not in METHODS:
            raise S3Error("InvalidRequest", f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
    for origin in origins:
        if origin.count("*") > 1:
            raise S3Error("InvalidRequest", f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    headers = _texts(element, "AllowedHeader")
    for header in headers:
        if header.count("*") > 1:
            raise S3Error("InvalidRequest", f'AllowedHeader "{header}" can not have more than one wildcard.')
    maxAges = _texts(element, "MaxAgeSeconds")
    maxAge = None
    if maxAges:
        maxAge = readDecimal(maxAges[0], maximum=INT32_MAX) if len(maxAges) == 1 else None
        if maxAge is None:
            raise S3Error("MalformedXML")
    ids = _texts(element, "ID")
    if len(ids) > 1 or (ids and len(ids[0]) > 255):
        raise S3Error("MalformedXML")
    return CORSRule(
        origins=origins, methods=methods, headers=headers, expose=_texts(element, "ExposeHeader"),
        maxAge=maxAge, id=ids[0] if ids else None,
    )


def rulesToJSON(rules: Sequence[CORSRule]) -> str:
    """
    The stored form of a bucket's rules: a compact JSON list with one object
    a rule, keys C{origins}, C{methods}, C{headers}, C{expose} (lists of
    strings), C{maxAge} (int or null) and C{id} (string or null).
    """
    return json.dumps(
        [
            {"id": r.id, "origins": list(r.origins), "methods": list(r.methods), "headers": list(r.headers),
             "expose": list(r.expose), "maxAge": r.maxAge}
            for r in rules
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


@functools.lru_cache(maxsize=256)
def rulesFromJSON(text: str) -> Tuple[CORSRule, ...]:
    """Read the stored form back (cached: it is consulted on every request with an Origin)."""
    return tuple(
        CORSRule(
            origins=tuple(r["origins"]), methods=tuple(r["methods"]), headers=tuple(r.get("headers", ())),
            expose=tuple(r.get("expose", ())), maxAge=r.get("maxAge"), id=r.get("id"),
        )
        for r in json.loads(text)
    )


def corsConfiguration(rules: Sequence[CORSRule]) -> bytes:
    """The GetBucketCors document."""
    root = ElementTree.Element("CORSConfiguration", xmlns=xml.S3_NAMESPACE)
    for rule in rules:
        element = ElementTree.SubElement(root, "CORSRule")
        if rule.id is not None:
            ElementTree.SubElement(element, "ID").text = rule.id
        for name, values in (("AllowedHeader", rule.headers), ("AllowedMethod", rule.methods),
                             ("AllowedOrigin", rule.origins), ("ExposeHeader", rule.expose)):
            for value in values:
                ElementTree.SubElement(element, name).text = value
        if rule.maxAge is not None:
            ElementTree.SubElement(element, "MaxAgeSeconds").text = str(rule.maxAge)
    return xml.serialize(root)


async def bucketRules(ctx: S3Context, bucket: str) -> Optional[Tuple[CORSRule, ...]]:
    """The bucket's rules, or None when it has none (or does not exist)."""
    record = await ctx.metadata.getBucket(bucket)
    if record is None:
        return None
    stored = record.configValue(CONFIG_NAME)
    return rulesFromJSON(stored) if stored is not None else None


# -- Put/Get/DeleteBucketCors ----------------------------------------------


async def putBucketCors(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutBucketCors: validate the document, store its rules durably."""
    bucket = ownedBucket(call)
    rules = parseCORSConfiguration(call.document)
    value = rulesToJSON(rules)
    await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, value))
    sendEmpty(request, 200)


async def getBucketCors(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketCors: the rules, or 404 NoSuchCORSConfiguration."""
    bucket = ownedBucket(call)
    stored = bucket.configValue(CONFIG_NAME)
    if stored is None:
        raise S3Error("NoSuchCORSConfiguration", extra={"BucketName": bucket.name})
    sendXML(request, corsConfiguration(rulesFromJSON(stored)))


async def deleteBucketCors(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteBucketCors: 204, whether or not there were rules."""
    bucket = ownedBucket(call)
    if bucket.configValue(CONFIG_NAME) is not None:
        await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, None))
    sendEmpty(request, 204)


# -- matching --------------------------------------------------------------


def _requestedHeaders(value: Optional[str]) -> List[str]:
    if not value:
        return []
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def matchRule(
    rules: Sequence[CORSRule], origin: str, method: str, requestHeaders: Sequence[str] = ()
) -> Optional[CORSRule]:
    """
    The first rule that allows C{origin}, C{method} and every one of
    C{requestHeaders} (lower-case names), as S3 evaluates them.
    """
    for rule in rules:
        if method not in rule.methods or not rule.allowsOrigin(origin):
            continue
        if all(rule.allowsHeader(name) for name in requestHeaders):
            return rule
    return None


def _ruleHeaders(rule: CORSRule, origin: str) -> Dict[str, str]:
    headers = {"Access-Control-Allow-Origin": "*" if rule.anyOrigin else origin}
    if not rule.anyOrigin:
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Access-Control-Allow-Methods"] = ", ".join(rule.methods)
    if rule.expose:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.maxAge is not None:
        headers["Access-Control-Max-Age"] = str(rule.maxAge)
    headers["Vary"] = VARY
    return headers


async def preflight(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    An OPTIONS preflight, unauthenticated: 200 with the matching rule's
    headers, else 403 AccessForbidden (400 BadRequest without an Origin).
    """
    origin = call.headers.get("origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    requested = call.headers.get("access-control-request-method")
    method = requested.strip() if requested else "OPTIONS"
    assert call.route.bucket is not None
    resourceType = "OBJECT" if call.route.key is not None else "BUCKET"
    record = await ctx.metadata.getBucket(call.route.bucket)
    if record is None or record.configValue(CONFIG_NAME) is None:
        message = "CORSResponse: Bucket not found" if record is None else "CORSResponse: CORS is not enabled for this bucket."
        raise S3Error("AccessForbidden", message, extra={"Method": method, "ResourceType": resourceType})
    stored = record.configValue(CONFIG_NAME)
    assert stored is not None
    headers = _requestedHeaders(call.headers.get("access-control-request-headers"))
    rule = matchRule(rulesFromJSON(stored), origin, method, headers)
    if rule is None:
        raise S3Error("AccessForbidden", NOT_ALLOWED, extra={"Method": method, "ResourceType": resourceType})
    response = _ruleHeaders(rule, origin)
    if headers:
        response["Access-Control-Allow-Headers"] = ", ".join(headers)
    sendEmpty(request, 200, response)


async def corsHeaders(ctx: S3Context, bucket: Optional[str], origin: Optional[str], method: str) -> Dict[str, str]:
    """
    The C{Access-Control-*} headers for an actual (not preflight) request:
    empty unless it names an C{Origin} and the bucket has a rule matching
    it and the method.  C{Access-Control-Request-Headers} plays no part here.
    """
    if not origin or bucket is None or method == "OPTIONS":
        return {}
    rules = await bucketRules(ctx, bucket)
    if not rules:
        return {}
    rule = matchRule(rules, origin, method)
    return _ruleHeaders(rule, origin) if rule is not None else {}


async def requestCORSHeaders(
    ctx: S3Context, route: Optional[Route], headers: Optional[Mapping[str, str]], request: Request
) -> Dict[str, str]:
    """
    The CORS headers of an actual request (see L{corsHeaders}), for its
    response and for any error response (which drops the headers set so
    far).

    @param route: the request's route, or None if it could not be resolved
        (then it is routed again here; an unroutable request gets none).
    @param headers: request headers by lower-case name, or None to read
        them from C{request}.
    """
    if headers is not None:
        origin = headers.get("origin")
    else:
        raw = request.getHeader(b"origin")
        origin = raw.decode("latin-1") if raw is not None else None
    if not origin:
        return {}
    if route is None:
        try:
            route = _routeOf(ctx, request)
        except S3Error:
            return {}
    return await corsHeaders(ctx, route.bucket, origin, request.method.decode("latin-1"))


def _routeOf(ctx: S3Context, request: Request) -> Route:
    return route(request.uri, len(request.prepath or ()), request.getHeader(b"host"), ctx.domains)


def anyRequest(route: Route, headers: Mapping[str, Any]) -> bool:
    """Rule predicate: every OPTIONS request is a preflight, sub-resource or not."""
    return True
