"""
The S3 error vocabulary, shared by every layer.

Storage, metadata and HTTP code all raise L{S3Error}; the HTTP layer renders
it as an S3 ``<Error>`` document.  Codes, statuses and default messages follow
the AWS S3 API reference ("Error responses").
Tests: tests/unit/test_errors.py.
"""

from __future__ import annotations

import errno
from typing import Dict, Mapping, Optional, Tuple

# code -> (HTTP status, default message)
ERRORS: Dict[str, Tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Error parsing the X-Amz-Credential parameter."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket succeeded and you already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the Content-Length HTTP header."),
    "InsufficientStorage": (507, "There is not enough free space on the server to store the object; retry later."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS access key ID you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "KeyTooLongError": (400, "Your key is too long."),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against our published schema."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."),
    "InvalidPart": (400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. Parts must be ordered by part number."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented."),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold."),
    "ConditionalRequestConflict": (409, "A conflicting operation occurred. If using PutObject you can retry the request."),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the server's time is too large."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you provided. Check your key and signing method."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match what was computed."),
    "InvalidDigestChecksum": (400, "The checksum you specified did not match what we received."),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "NotModified": (304, "Not Modified"),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (400, "The location constraint is incompatible for the region specific endpoint this request was sent to."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    # copy, batch delete, tagging, inspection sub-resources (InvalidTag is above)
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "MalformedACLError": (400, "The XML you provided was not well-formed or did not validate against our published schema"),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist"),
    "ServerSideEncryptionConfigurationNotFoundError": (404, "The server side encryption configuration was not found"),
    "ObjectLockConfigurationNotFoundError": (404, "Object Lock configuration does not exist for this bucket"),
    # -- Object Lock --
    "NoSuchObjectLockConfiguration": (404, "The specified object does not have a ObjectLock configuration"),
    "InvalidBucketState": (409, "The request is not valid for the current state of the bucket."),
    "NoSuchWebsiteConfiguration": (404, "The specified bucket does not have a website configuration"),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "NoSuchPublicAccessBlockConfiguration": (404, "The public access block configuration was not found"),
    "InvalidEncryptionAlgorithmError": (400, "The encryption request you specified is not valid."),
    # -- browser POST uploads, CORS --
    "AccessForbidden": (403, "Access Forbidden"),
    "BadRequest": (400, "Bad Request"),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist"),
    "InvalidPolicyDocument": (400, "The content of the form does not meet the conditions specified in the policy document."),
    "MalformedPOSTRequest": (400, "The body of your POST request is not well-formed multipart/form-data."),
    "MaxPostPreDataLengthExceeded": (400, "Your POST request fields preceeding the upload file was too large."),
}


class S3Error(Exception):
    """
    A failure to report to the client as an S3 error response.

    @ivar code: the S3 error code, a key of L{ERRORS}.
    @ivar status: the HTTP status.
    @ivar message: human-readable text.
    @ivar extra: more elements for the ``<Error>`` document (``Key``,
        ``BucketName``, ``Resource``...), in order.
    @ivar headers: extra response headers (e.g. ``x-amz-checksum-*``).
    """

    def __init__(
        self,
        code: str,
        message: Optional[str] = None,
        *,
        status: Optional[int] = None,
        extra: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        defaultStatus, defaultMessage = ERRORS[code]
        self.code = code
        self.status = status if status is not None else defaultStatus
        self.message = message if message is not None else defaultMessage
        self.extra: Dict[str, str] = dict(extra or {})
        self.headers: Dict[str, str] = dict(headers or {})
        super().__init__(f"{code}: {self.message}")


def isDiskFull(error: BaseException) -> bool:
    """Whether C{error} says the disk (or the quota) is full: a write that may succeed later."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


class StorageWriteError(S3Error):
    """
    Object data could not be written: C{507 InsufficientStorage} for a full
    disk, C{500 InternalError} for anything else (EIO...).  Keeps the cause,
    so that the failure can be counted and logged where it is answered.

    @ivar error: what the write raised.
    @ivar reason: a short, bounded label for metrics: the errno name in
        lower case (C{enospc}, C{eio}...), or C{other}.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__("InsufficientStorage" if isDiskFull(error) else "InternalError")
        self.error = error
        code = error.errno if isinstance(error, OSError) else None
        name = errno.errorcode.get(code) if code is not None else None
        self.reason = name.lower() if name is not None else "other"

    @property
    def diskFull(self) -> bool:
        """Whether more free space would have let the write succeed."""
        return self.code == "InsufficientStorage"
