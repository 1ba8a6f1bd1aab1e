"""FasterStore: an S3-compatible object store built on Twisted."""
