"""
Admitting a request: signatures (SigV4, SigV2, aws-chunked, POST policies),
the signed-header rule, payload integrity and body bounds.

Every request passes through L{fasterstore.auth.admission} before any S3
handler runs; see docs/security.md for what is checked.
"""
