"""
Browser form uploads' credentials: the POST policy (a base64 JSON document
of an expiration and conditions on the form's fields) and its signature
(SigV4 or SigV2 over the policy text as sent).

A form POST carries no Authorization header; L{verifySignature} names the
signer and L{checkPolicy} holds the form to the signed conditions, as S3
does: every field but the exempt ones must be named by a condition.  The
form's HTTP headers are not covered by anything, so an C{x-amz-*} header
on a form POST is refused (L{fasterstore.auth.admission.refuseUnsigned}).
Tests: tests/unit/test_post.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import attrs

from fasterstore.auth.identity import Credentials, lookupCredentials
from fasterstore.auth.sigv4 import ALGORITHM, parseAmzDate, parseCredential, signingKey
from fasterstore.errors import S3Error
from fasterstore.http.dates import utcTimestamp
from fasterstore.numbers import INT64_MAX, readDecimal

#: Fields no condition needs to name (besides C{x-ignore-*}).
EXEMPT_V4 = frozenset({"policy", "x-amz-signature", "file"})
EXEMPT_V2 = frozenset({"policy", "awsaccesskeyid", "signature", "file"})
# ASCII digits only: \d (and float()) would take any script's.
_EXPIRATION = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z")


def _denied(message: str) -> S3Error:
    return S3Error("AccessDenied", "Invalid according to Policy: " + message)


def _invalidPolicy(message: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", "Invalid Policy: " + message)


def missingField(name: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
        extra={"ArgumentName": name, "ArgumentValue": ""},
    )


# -- the policy ------------------------------------------------------------


@attrs.frozen
class Condition:
    """
    One policy condition.

    @ivar op: C{"eq"}, C{"starts-with"}, C{"content-length-range"}, or
        C{"invalid"} for one S3 reads but that can never hold (a field name
        without C{$}, a non-numeric bound).
    @ivar field: the form field, lower-case without C{$}.
    @ivar value: what C{eq} and C{starts-with} compare with.
    @ivar low: C{content-length-range}'s minimum.
    @ivar high: C{content-length-range}'s maximum.
    @ivar rendered: the condition as S3 quotes it in error messages.
    """

    op: str
    rendered: str
    field: str = ""
    value: str = ""
    low: int = 0
    high: int = 0


@attrs.frozen
class Policy:
    """A decoded POST policy: its expiration (POSIX time) and conditions."""

    expiration: float
    conditions: Tuple[Condition, ...]

    @property
    def lengthRange(self) -> Optional[Tuple[int, int]]:
        """The allowed file sizes (inclusive) of every content-length-range, combined."""
        ranges = [(c.low, c.high) for c in self.conditions if c.op == "content-length-range"]
        if not ranges:
            return None
        return max(low for low, _ in ranges), min(high for _, high in ranges)


def _render(elements: Sequence[Any]) -> str:
    return "[" + ", ".join(json.dumps(e, ensure_ascii=False) for e in elements) + "]"


def _noFloats(text: str) -> Any:
    raise ValueError(text)


def parsePolicy(encoded: str) -> Policy:
    """
    Decode a policy form field.

    @raise S3Error: C{InvalidPolicyDocument}.
    """
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
        document = json.loads(raw.decode("utf-8"), parse_float=_noFloats, parse_constant=_noFloats)
    except (binascii.Error, ValueError):
        raise _invalidPolicy("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalidPolicy("Invalid JSON.")
    for name in document:
        if name not in ("expiration", "conditions"):
            raise _invalidPolicy(f"Unexpected: '{name.lower()}'")
    if "expiration" not in document:
        raise _invalidPolicy("Policy missing expiration.")
    expiration = document["expiration"]
    match = _EXPIRATION.fullmatch(expiration) if isinstance(expiration, str) else None
    when = None if match is None else utcTimestamp(*(int(g) for g in match.groups()[:6]))
    if match is None or when is None:
        raise _invalidPolicy(f"Invalid 'expiration' value: '{expiration}'")
    when += float(match.group(7) or 0)
    if "conditions" not in document:
        raise _invalidPolicy("Policy missing conditions.")
    conditions = document["conditions"]
    if not isinstance(conditions, list):
        raise _invalidPolicy("Invalid 'conditions' value: must be a List.")
    return Policy(when, tuple(_parseCondition(c) for c in conditions))


def _bound(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        # A Long, as S3 reads it: ASCII digits, within 64 bits.
        return readDecimal(value.strip(), minimum=-INT64_MAX - 1, maximum=INT64_MAX)
    return None


def _parseCondition(condition: Any) -> Condition:
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise _invalidPolicy("Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.")
        ((name, value),) = condition.items()
        if not isinstance(value, str):
            raise _invalidPolicy("Invalid Simple-Condition: value must be a string.")
        return Condition("eq", _render(["eq", "$" + name, value]), name.lower(), value)
    if not isinstance(condition, list):
        raise _invalidPolicy("Invalid condition test: must be a List or Object.")
    if not condition or not isinstance(condition[0], str):
        raise _invalidPolicy("Invalid Condition: missing operation identifier.")
    op = condition[0].lower()
    rendered = _render(condition)
    if op not in ("eq", "starts-with", "content-length-range"):
        raise _invalidPolicy(f"Invalid Condition: unknown operation '{condition[0]}'.")
    if len(condition) != 3:
        raise _invalidPolicy(f"Invalid {condition[0]}: wrong number of arguments.")
    if op == "content-length-range":
        low, high = _bound(condition[1]), _bound(condition[2])
        if low is None or high is None:
            return Condition("invalid", rendered)
        if low < 0 or high < 0:
            raise _invalidPolicy("Invalid content-length-range: bounds must be non-negative.")
        return Condition(op, rendered, low=low, high=high)
    field, value = condition[1], condition[2]
    if not isinstance(field, str) or not isinstance(value, str):
        raise _invalidPolicy("Invalid JSON.")
    if not field.startswith("$"):
        return Condition("invalid", rendered)
    return Condition(op, rendered, field[1:].lower(), value)


def _holds(condition: Condition, fields: Mapping[str, str]) -> bool:
    if condition.op == "invalid":
        return False
    if condition.op == "content-length-range":
        return True  # checked against the file as it streams
    actual = fields.get(condition.field)
    if actual is None:
        return False
    if condition.op == "eq":
        return actual == condition.value
    if condition.field == "content-type":
        return all(member.strip().startswith(condition.value) for member in actual.split(","))
    return actual.startswith(condition.value)


def checkPolicy(
    policy: Policy, fields: Mapping[str, str], sentNames: Sequence[str], exempt: frozenset[str], now: float
) -> None:
    """
    Evaluate a policy against the form, as S3 does: expiration, then each
    condition in order, then every field must be named by a condition.

    @param fields: the form fields by lower-case name, C{${filename}}
        expanded, with C{bucket} set to the addressed bucket.
    @param sentNames: the field names as sent, for the extra-field message.
    @raise S3Error: C{AccessDenied} with S3's message.
    """
    if now > policy.expiration:
        raise _denied("Policy expired.")
    for condition in policy.conditions:
        if not _holds(condition, fields):
            raise _denied("Policy Condition failed: " + condition.rendered)
    covered = {c.field for c in policy.conditions}
    extra = sorted(
        {
            name for name in sentNames
            if name.lower() not in covered and name.lower() not in exempt and not name.lower().startswith("x-ignore-")
        }
    )
    if extra:
        raise _denied("Extra input fields: " + ", ".join(extra))


# -- the signature ---------------------------------------------------------


@attrs.frozen
class Signer:
    """Who signed a form, and which fields its signature scheme exempts."""

    credentials: Credentials
    exempt: frozenset[str]


def _signatureMismatch(accessKey: str, policy: str, provided: str) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": accessKey,
            "StringToSign": policy,
            "SignatureProvided": provided,
            "StringToSignBytes": " ".join("%02x" % b for b in policy.encode("utf-8")),
        },
    )


def verifySignature(
    fields: Mapping[str, str], lookup: Callable[[str], Optional[Credentials]], region: str
) -> Signer:
    """
    Check the policy's signature (SigV4, or SigV2) over the policy text as sent.

    @param fields: the form fields by lower-case name, unexpanded.
    @raise S3Error: C{InvalidArgument} for a missing or malformed field,
        C{InvalidAccessKeyId}, C{SignatureDoesNotMatch}, or C{AccessDenied}
        for a form with no signature at all (anonymous uploads need
        public-write buckets, which FasterStore does not have).
    """
    v4 = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
    if any(name in fields for name in v4):
        for name in v4:
            if name not in fields:
                raise missingField("-".join(part.capitalize() for part in name.split("-")))
        if "policy" not in fields:
            raise missingField("Policy")
        algorithm = fields["x-amz-algorithm"]
        if algorithm != ALGORITHM:
            raise S3Error(
                "InvalidArgument", f'X-Amz-Algorithm only supports "{ALGORITHM}"',
                extra={"ArgumentName": "X-Amz-Algorithm", "ArgumentValue": algorithm},
            )
        credential = fields["x-amz-credential"]

        def fail(detail: str) -> S3Error:
            return S3Error("InvalidArgument", detail, extra={"ArgumentName": "X-Amz-Credential", "ArgumentValue": credential})

        if credential.startswith("/"):
            raise fail("a non-empty Access Key (AKID) must be provided in the credential.")
        scope = parseCredential(credential, fail, region)
        try:
            parseAmzDate(fields["x-amz-date"])
        except ValueError:
            raise S3Error(
                "InvalidArgument", "X-Amz-Date must be formated via ISO8601 Long format",
                extra={"ArgumentName": "X-Amz-Date", "ArgumentValue": fields["x-amz-date"]},
            ) from None
        credentials = lookupCredentials(lookup, scope.accessKey)
        key = signingKey(credentials.secretKey, scope.date, scope.region, scope.service)
        expected = hmac.new(key, fields["policy"].encode("utf-8"), hashlib.sha256).hexdigest()
        provided = fields["x-amz-signature"]
        if not hmac.compare_digest(expected, provided.strip().lower()):
            raise _signatureMismatch(scope.accessKey, fields["policy"], provided)
        return Signer(credentials, EXEMPT_V4)
    if "awsaccesskeyid" in fields or "signature" in fields:
        for name, canonical in (("awsaccesskeyid", "AWSAccessKeyId"), ("signature", "Signature"), ("policy", "Policy")):
            if name not in fields:
                raise missingField(canonical)
        credentials = lookupCredentials(lookup, fields["awsaccesskeyid"])
        digest = hmac.new(credentials.secretKey.encode("utf-8"), fields["policy"].encode("utf-8"), hashlib.sha1).digest()
        provided = fields["signature"]
        try:
            given = base64.b64decode(provided.strip().replace(" ", "+"), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(digest, given):
            raise _signatureMismatch(credentials.accessKey, fields["policy"], provided)
        return Signer(credentials, EXEMPT_V2)
    raise S3Error("AccessDenied")
