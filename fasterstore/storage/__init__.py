"""The segment engine: append-only segment files holding checksummed records."""
