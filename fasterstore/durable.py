"""
Making file-system changes durable.

A new, renamed or removed directory entry survives power loss only once the
directory itself is fsynced; every engine that creates files needs this.
Tests: tests/unit/test_durable.py.
"""

from __future__ import annotations

import os


def syncDirectory(path: str) -> None:
    """fsync a directory, so that entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
