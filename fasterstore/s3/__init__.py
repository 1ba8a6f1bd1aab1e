"""HTTP <-> S3 operations: routing, authentication, XML, streaming requests."""
