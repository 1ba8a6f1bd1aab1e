"""Tests against the real twistd process, driven by real S3 clients."""
