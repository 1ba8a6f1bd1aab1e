"""Synchronous unit tests, one module per subject."""
