"""
Running blocking work off the reactor thread.

Engines take a L{BlockingRunner} instead of a reactor and a thread pool, so
that unit tests can pass L{ImmediateRunner} and stay synchronous (the same
idea as buildbot's C{NonThreadPool}).
Tests: tests/unit/test_threads.py.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class BlockingRunner(Protocol):
    """Something that runs a blocking callable and reports on the reactor."""

    def run(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        """Run C{f(*args, **kwargs)} elsewhere; fire with its result."""


@attrs.define
class PoolRunner:
    """Runs work in a dedicated L{ThreadPool}, never the reactor's shared one."""

    reactor: IReactorFromThreads
    pool: ThreadPool

    def run(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        return deferToThreadPool(self.reactor, self.pool, f, *args, **kwargs)


@attrs.define
class ImmediateRunner:
    """Runs work at once on the calling thread: for synchronous tests."""

    def run(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> "Deferred[T]":
        try:
            result = f(*args, **kwargs)
        except BaseException:
            return fail()
        return succeed(result)
