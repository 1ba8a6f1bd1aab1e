"""
Private files and directories: everything the server creates holds customer
data (segments, the metadata log and snapshots, credentials), so it is
created readable by its owner only, whatever the process umask.

C{mkdir} and C{open} apply the umask to the mode they are given.  Masking
only removes bits, so a umask can never widen 0700/0600, but an odd one
(0277, say) can narrow them until the server cannot reopen its own files:
whatever this module creates is set to exactly L{PRIVATE_DIRECTORY_MODE} or
L{PRIVATE_FILE_MODE} explicitly.  Things that already exist are left as they
are (an operator may have opened a directory to a backup group on purpose):
L{warnIfShared} says so at start instead.  L{DataDirectoryLock} keeps a
second server off a directory in use.
Tests: tests/unit/test_files.py.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Optional

import attrs
from twisted.logger import Logger

#: The mode of every directory the server creates.
PRIVATE_DIRECTORY_MODE = 0o700

#: The mode of every file the server creates.
PRIVATE_FILE_MODE = 0o600

#: The lock file in a data directory.
LOCK_FILE = "lock"

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def makePrivateDirectory(path: str) -> bool:
    """
    Create C{path} and any missing parents (like C{mkdir -p}), each with
    mode 0700 whatever the umask.  An existing directory is left alone.

    @return: C{True} if C{path} was created, C{False} if it existed.
    @raise FileExistsError: C{path} exists and is not a directory.
    """
    try:
        os.mkdir(path, PRIVATE_DIRECTORY_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return False
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if parent == os.path.abspath(path):
            raise
        makePrivateDirectory(parent)
        return makePrivateDirectory(path)
    os.chmod(path, PRIVATE_DIRECTORY_MODE)
    return True


def openPrivateFile(path: str, flags: int) -> int:
    """
    C{os.open(path, flags | O_CREAT)}: a file this creates has mode 0600
    whatever the umask; an existing one is opened as it is (with C{O_EXCL}
    in C{flags}, an existing one is an error, as usual).  C{O_CLOEXEC} is
    always added.

    @return: the open descriptor.
    """
    flags |= _CLOEXEC
    while True:
        if not flags & os.O_EXCL:
            try:
                return os.open(path, flags & ~os.O_CREAT)
            except FileNotFoundError:
                pass
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            continue  # created by someone else meanwhile: open theirs
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
        return fd


def warnIfShared(log: Logger, path: str) -> bool:
    """
    Log a warning if other users (group or others) have any access to the
    directory C{path}: it holds customer data.  The warning names the path,
    its mode and the fix (C{chmod 700 PATH}).

    @return: C{True} if it warned.
    """
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if not mode & 0o077:
        return False
    log.warn(
        "{path} holds customer data and other users can access it (mode {mode}); run: chmod 700 {path}",
        path=path,
        mode=oct(mode),
    )
    return True


def preparePrivateDirectory(log: Logger, path: str) -> None:
    """
    A data or drive directory at start: created private (L{makePrivateDirectory})
    if it is missing, otherwise checked (L{warnIfShared}).
    """
    if not makePrivateDirectory(path):
        warnIfShared(log, path)


class DataDirectoryLocked(Exception):
    """Another process (or another store in this one) serves this data directory."""


@attrs.define
class DataDirectoryLock:
    """
    An exclusive C{flock} on C{DIR/lock}, held while a server uses the
    directory: two servers appending to the same segments would write at the
    same offsets and serve each other's bytes.  C{flock} (not POSIX record
    locks) so that it conflicts within one process too and survives twistd's
    daemonizing fork; C{O_CLOEXEC} so that helper processes never hold it.

    @ivar path: the lock file; it holds the holder's pid, for the message.
    """

    path: str
    _fd: Optional[int] = None

    @classmethod
    def acquire(cls, directory: str) -> "DataDirectoryLock":
        """
        Take the lock of C{directory} or fail at once.

        @raise DataDirectoryLocked: naming the holder's pid when known.
        """
        path = os.path.join(directory, LOCK_FILE)
        fd = openPrivateFile(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DataDirectoryLocked(
                f"{directory} is in use by another FasterStore server (pid {holder}); "
                "a data directory can be served by one server at a time"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, for the next holder."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
