"""
Waiting for a background service's run under way to end: what stopping a
service, closing the store under it, and tests need from compaction and
lifecycle alike.
Tests: tests/unit/test_compaction.py, tests/unit/test_lifecycle_service.py.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred, succeed


class IdleWaiters:
    """The Deferreds waiting for the run under way; L{fire} when it ends."""

    def __init__(self) -> None:
        self._waiters: List["Deferred[None]"] = []

    def wait(self, busy: bool) -> "Deferred[None]":
        """Fires at once if not C{busy}, else at the next L{fire}."""
        if not busy:
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._waiters.append(d)
        return d

    def fire(self) -> None:
        """The run ended: every waiter's turn."""
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)
