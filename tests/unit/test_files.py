"""
Tests for L{fasterstore.files}: private directories and files whatever the
umask, existing ones left alone, the warning for a shared data directory;
and L{fasterstore.service.FasterStore.create} using them.

Also the helpers the engines' own permission tests share: L{setUmask} and
L{modesUnder}.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any, Dict, List, cast

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore import service
from fasterstore.credentials import makeCredentials
from fasterstore.files import (
    PRIVATE_DIRECTORY_MODE,
    PRIVATE_FILE_MODE,
    makePrivateDirectory,
    openPrivateFile,
    preparePrivateDirectory,
    warnIfShared,
)

#: The umasks the permission tests run under: the usual one, none at all,
#: and one that would take the owner's own write bit away.
UMASKS = (0o022, 0o000, 0o277)


def setUmask(case: SynchronousTestCase, mask: int) -> None:
    """Set the process umask for the rest of C{case}; restored at cleanup."""
    previous = os.umask(mask)
    case.addCleanup(os.umask, previous)


def modeOf(path: str) -> int:
    """The permission bits of C{path}."""
    return stat.S_IMODE(os.lstat(path).st_mode)


def modesUnder(root: str) -> Dict[str, int]:
    """
    The permission bits of C{root} and of everything under it, keyed by
    path relative to C{root} (C{"."} for C{root} itself).
    """
    modes = {".": modeOf(root)}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            modes[os.path.relpath(path, root)] = modeOf(path)
    return modes


def assertPrivateTree(case: SynchronousTestCase, root: str, context: str = "") -> Dict[str, int]:
    """
    Every directory under C{root} (and C{root}) is 0700, every file 0600.

    @return: the modes found, for further checks.
    """
    modes = modesUnder(root)
    expected = {
        name: PRIVATE_DIRECTORY_MODE if os.path.isdir(os.path.join(root, name)) else PRIVATE_FILE_MODE
        for name in modes
    }
    case.assertEqual(
        {name: oct(mode) for name, mode in modes.items()},
        {name: oct(mode) for name, mode in expected.items()},
        context,
    )
    return modes


class RecordingLog:
    """A Logger whose events the test can read."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.log = Logger(observer=cast(ILogObserver, self.events.append))

    def text(self) -> str:
        """Everything logged, formatted."""
        return "\n".join(formatEvent(e) for e in self.events)


class MakePrivateDirectoryTests(SynchronousTestCase):
    """L{makePrivateDirectory}."""

    def test_privateWhateverTheUmask(self) -> None:
        """The directory and every missing parent it creates are 0700, under any umask."""
        for mask in UMASKS:
            setUmask(self, mask)
            top = self.mktemp()
            leaf = os.path.join(top, "a", "b")
            self.assertTrue(makePrivateDirectory(leaf))
            self.assertEqual(
                [oct(modeOf(p)) for p in (top, os.path.join(top, "a"), leaf)],
                [oct(PRIVATE_DIRECTORY_MODE)] * 3,
                f"umask {mask:#o}",
            )

    def test_existingLeftAlone(self) -> None:
        """An existing directory is neither an error nor chmod-ed: C{False} says it existed."""
        path = self.mktemp()
        os.mkdir(path)
        os.chmod(path, 0o755)
        self.assertFalse(makePrivateDirectory(path))
        self.assertEqual(modeOf(path), 0o755)

    def test_fileInTheWay(self) -> None:
        """A file where the directory should be is an error."""
        path = self.mktemp()
        open(path, "w").close()
        self.assertRaises(FileExistsError, makePrivateDirectory, path)

    def test_trailingSlash(self) -> None:
        """A path with a trailing slash is the same directory."""
        path = self.mktemp()
        self.assertTrue(makePrivateDirectory(os.path.join(path, "x") + "/"))
        self.assertEqual(modeOf(os.path.join(path, "x")), PRIVATE_DIRECTORY_MODE)


class OpenPrivateFileTests(SynchronousTestCase):
    """L{openPrivateFile}."""

    def setUp(self) -> None:
        """A directory to create files in."""
        self.directory = self.mktemp()
        os.mkdir(self.directory)

    def open(self, name: str, flags: int) -> int:
        """Open C{name} in our directory; closed at cleanup."""
        fd = openPrivateFile(os.path.join(self.directory, name), flags)
        self.addCleanup(os.close, fd)
        return fd

    def test_privateWhateverTheUmask(self) -> None:
        """A file it creates is 0600 under any umask, exclusive or not."""
        for mask in UMASKS:
            setUmask(self, mask)
            self.open(f"excl-{mask:o}", os.O_RDWR | os.O_CREAT | os.O_EXCL)
            self.open(f"plain-{mask:o}", os.O_WRONLY | os.O_APPEND)
        self.assertEqual(len(os.listdir(self.directory)), 2 * len(UMASKS))
        for name in os.listdir(self.directory):
            self.assertEqual(modeOf(os.path.join(self.directory, name)), PRIVATE_FILE_MODE, name)

    def test_existingLeftAlone(self) -> None:
        """An existing file is opened as it is: same mode, same content (no implied truncation)."""
        path = os.path.join(self.directory, "old")
        with open(path, "wb") as f:
            f.write(b"kept")
        os.chmod(path, 0o640)
        fd = self.open("old", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"+more")
        self.assertEqual(modeOf(path), 0o640)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"kept+more")

    def test_exclusiveRefusesExisting(self) -> None:
        """With O_EXCL an existing file is FileExistsError, as with os.open."""
        path = os.path.join(self.directory, "old")
        open(path, "wb").close()
        self.assertRaises(FileExistsError, openPrivateFile, path, os.O_WRONLY | os.O_EXCL)

    def test_closeOnExec(self) -> None:
        """The descriptor is not inherited by child processes."""
        fd = self.open("f", os.O_WRONLY | os.O_CREAT)
        self.assertTrue(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


class WarnIfSharedTests(SynchronousTestCase):
    """L{warnIfShared} and L{preparePrivateDirectory}."""

    def setUp(self) -> None:
        """A logger we can read, and a path that does not exist yet."""
        self.recorder = RecordingLog()
        self.path = os.path.abspath(self.mktemp())

    def test_sharedWarned(self) -> None:
        """A 0755 directory is warned about: its path, its mode and the chmod that fixes it."""
        os.mkdir(self.path)
        os.chmod(self.path, 0o755)
        self.assertTrue(warnIfShared(self.recorder.log, self.path))
        text = self.recorder.text()
        self.assertIn(self.path, text)
        self.assertIn("0o755", text)
        self.assertIn(f"chmod 700 {self.path}", text)
        self.assertEqual([e["log_level"].name for e in self.recorder.events], ["warn"])

    def test_groupOnlyWarned(self) -> None:
        """Any group or other bit counts, even search-only (0710)."""
        os.mkdir(self.path)
        os.chmod(self.path, 0o710)
        self.assertTrue(warnIfShared(self.recorder.log, self.path))

    def test_privateQuiet(self) -> None:
        """A 0700 directory is not warned about."""
        os.mkdir(self.path)
        os.chmod(self.path, 0o700)
        self.assertFalse(warnIfShared(self.recorder.log, self.path))
        self.assertEqual(self.recorder.events, [])

    def test_prepareMissing(self) -> None:
        """A missing directory is created 0700, without a warning."""
        setUmask(self, 0o022)
        preparePrivateDirectory(self.recorder.log, self.path)
        self.assertEqual(modeOf(self.path), PRIVATE_DIRECTORY_MODE)
        self.assertEqual(self.recorder.events, [])

    def test_prepareExistingShared(self) -> None:
        """An existing 0755 directory is warned about and left as it is."""
        os.mkdir(self.path)
        os.chmod(self.path, 0o755)
        preparePrivateDirectory(self.recorder.log, self.path)
        self.assertIn(f"chmod 700 {self.path}", self.recorder.text())
        self.assertEqual(modeOf(self.path), 0o755)


class FasterStoreCreateTests(SynchronousTestCase):
    """L{service.FasterStore.create} makes its directories private and warns about shared ones."""

    def setUp(self) -> None:
        """The service module's logger replaced by one we can read."""
        self.recorder = RecordingLog()
        self.patch(service, "log", self.recorder.log)

    def create(self, dataDir: str, drive: Any = None) -> service.FasterStore:
        """A server on C{dataDir} (and C{drive}); its segment files closed at cleanup."""
        store = service.FasterStore.create(
            MemoryReactorClock(),
            FilePath(dataDir),
            makeCredentials("AKIDEXAMPLE", "secret"),
            fsync=False,
            drive=None if drive is None else FilePath(drive),
        )
        self.addCleanup(store.segments.close)
        return store

    def test_createdPrivate(self) -> None:
        """Under umask 022 or 0, a new data directory, a new drive and what is created in them are private."""
        for mask in UMASKS:
            setUmask(self, mask)
            base = os.path.abspath(self.mktemp())
            dataDir, drive = os.path.join(base, "data"), os.path.join(base, "drive", "d1")
            self.create(dataDir, drive)
            assertPrivateTree(self, dataDir, f"umask {mask:#o}")
            modes = assertPrivateTree(self, os.path.join(base, "drive"), f"umask {mask:#o}")
            self.assertIn(os.path.join("d1", "segments", "00000001.seg"), modes)
        self.assertEqual(self.recorder.events, [])

    def test_sharedDataDirWarned(self) -> None:
        """A pre-existing 0755 data directory is used, left as it is, and warned about once."""
        dataDir = os.path.abspath(self.mktemp())
        os.mkdir(dataDir)
        os.chmod(dataDir, 0o755)
        self.create(dataDir)
        warnings = [formatEvent(e) for e in self.recorder.events if f"chmod 700 {dataDir}" in formatEvent(e)]
        self.assertEqual(len(warnings), 1, self.recorder.text())
        self.assertIn("0o755", warnings[0])
        self.assertEqual(modeOf(dataDir), 0o755)

    def test_sharedDriveWarned(self) -> None:
        """A shared drive directory is warned about too, by its own path."""
        dataDir, drive = os.path.abspath(self.mktemp()), os.path.abspath(self.mktemp())
        os.mkdir(drive)
        os.chmod(drive, 0o750)
        self.create(dataDir, drive)
        self.assertIn(f"chmod 700 {drive}", self.recorder.text())
        self.assertNotIn(dataDir + " ", self.recorder.text())

    def test_privateDataDirQuiet(self) -> None:
        """A pre-existing 0700 data directory is not warned about."""
        dataDir = os.path.abspath(self.mktemp())
        os.mkdir(dataDir)
        os.chmod(dataDir, 0o700)
        self.create(dataDir)
        self.assertNotIn("chmod", self.recorder.text())


class DataDirectoryLockTests(SynchronousTestCase):
    """One server per data directory."""

    def test_secondRefused(self) -> None:
        """A second lock on the directory is refused, naming the holder's pid; release frees it."""
        from fasterstore.files import DataDirectoryLock, DataDirectoryLocked

        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory, 0o700)
        first = DataDirectoryLock.acquire(directory)
        self.addCleanup(first.release)
        with self.assertRaises(DataDirectoryLocked) as caught:
            DataDirectoryLock.acquire(directory)
        self.assertIn(f"pid {os.getpid()}", str(caught.exception))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(directory, "lock")).st_mode), 0o600)
        first.release()
        self.assertFalse(first.held)
        second = DataDirectoryLock.acquire(directory)
        self.addCleanup(second.release)
        self.assertTrue(second.held)

    def test_storeHoldsItUntilStopped(self) -> None:
        """FasterStore.create takes the lock; a second store on the directory fails until the first stops."""
        from twisted.internet.task import Clock

        from fasterstore.auth.identity import Credentials
        from fasterstore.files import DataDirectoryLocked
        from fasterstore.service import FasterStore

        dataDir = FilePath(self.mktemp())
        credentials = Credentials("AK", "SK", "owner", "owner")
        store = FasterStore.create(Clock(), dataDir, credentials)
        self.assertRaises(DataDirectoryLocked, FasterStore.create, Clock(), dataDir, credentials)
        assert store.lock is not None
        store.lock.release()
        other = FasterStore.create(Clock(), dataDir, credentials)
        assert other.lock is not None
        other.lock.release()

    def test_failedCreateReleases(self) -> None:
        """A store whose segments cannot be opened does not leave its data directory locked."""
        from twisted.internet.task import Clock

        from fasterstore.auth.identity import Credentials
        from fasterstore.service import FasterStore

        dataDir = FilePath(self.mktemp())
        drive = FilePath(self.mktemp())
        drive.makedirs()
        drive.child("segments").setContent(b"a file where the segments directory goes")
        credentials = Credentials("AK", "SK", "owner", "owner")
        self.assertRaises(OSError, FasterStore.create, Clock(), dataDir, credentials, drive=drive)
        store = FasterStore.create(Clock(), dataDir, credentials)
        assert store.lock is not None
        store.lock.release()
