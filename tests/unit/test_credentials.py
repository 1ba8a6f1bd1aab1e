"""
Tests for L{fasterstore.credentials}: explicit keys, first-start generation,
the 0600 credentials file, idempotence, bad files, and reading the stored pair
without generating one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from typing import Any, Dict, List, cast

from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.credentials import (
    CREDENTIALS_FILE,
    CredentialsError,
    _createExclusively,
    generateKeyPair,
    loadOrCreateCredentials,
    makeCredentials,
    ownerForAccessKey,
    storedCredentials,
)
from fasterstore.auth.identity import Credentials
from tests.unit.test_files import UMASKS, assertPrivateTree, setUmask


class CredentialsTests(SynchronousTestCase):
    """L{loadOrCreateCredentials}."""

    def setUp(self) -> None:
        """A data directory that does not exist yet, and a logger we can read."""
        self.dataDir = FilePath(self.mktemp())
        self.events: List[Dict[str, Any]] = []
        self.log = Logger(observer=cast(ILogObserver, self.events.append))

    def logged(self) -> str:
        """Everything logged so far, formatted."""
        return "\n".join(formatEvent(e) for e in self.events)

    def load(self, accessKey: Any = None, secretKey: Any = None) -> Credentials:
        """Load (or create) credentials in our data directory."""
        return loadOrCreateCredentials(self.dataDir, accessKey, secretKey, self.log)

    def test_explicit(self) -> None:
        """Explicit keys are used as given, owned by the SHA-256 of the key id, and not stored."""
        credentials = self.load("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG")
        self.assertEqual(
            credentials,
            Credentials(
                accessKey="AKIDEXAMPLE",
                secretKey="wJalrXUtnFEMI/K7MDENG",
                owner=hashlib.sha256(b"AKIDEXAMPLE").hexdigest(),
                displayName="fasterstore",
            ),
        )
        self.assertFalse(self.dataDir.child(CREDENTIALS_FILE).exists())
        self.assertNotIn("wJalrXUtnFEMI", self.logged())

    def test_halfExplicit(self) -> None:
        """One key without the other is a programming error, not a silent fallback."""
        self.assertRaises(ValueError, self.load, "AKID", None)
        self.assertRaises(ValueError, self.load, None, "secret")

    def test_generated(self) -> None:
        """With no keys, a strong pair is generated, stored as JSON and logged once."""
        credentials = self.load()
        self.assertRegex(credentials.accessKey, r"^[A-Z0-9]{20}$")
        self.assertRegex(credentials.secretKey, r"^[A-Za-z0-9]{40}$")
        self.assertEqual(credentials.owner, hashlib.sha256(credentials.accessKey.encode()).hexdigest())
        self.assertEqual(credentials.displayName, "fasterstore")
        stored = json.loads(self.dataDir.child(CREDENTIALS_FILE).getContent())
        self.assertEqual(stored, {"accessKey": credentials.accessKey, "secretKey": credentials.secretKey})
        self.assertIn(credentials.secretKey, self.logged())
        self.assertIn(credentials.accessKey, self.logged())

    def test_fileMode(self) -> None:
        """The credentials file is private to its owner: mode 0600."""
        self.load()
        mode = stat.S_IMODE(os.stat(self.dataDir.child(CREDENTIALS_FILE).path).st_mode)
        self.assertEqual(mode, 0o600)

    def test_modeDespiteUmask(self) -> None:
        """Even a permissive umask does not widen the file's mode."""
        previous = os.umask(0)
        self.addCleanup(os.umask, previous)
        self.load()
        mode = stat.S_IMODE(os.stat(self.dataDir.child(CREDENTIALS_FILE).path).st_mode)
        self.assertEqual(mode, 0o600)

    def test_privateWhateverTheUmask(self) -> None:
        """
        Under umask 022, 0 and 277, a generated pair's data directory (and
        every missing parent) is 0700 and its file 0600, nothing else left.
        """
        for mask in UMASKS:
            setUmask(self, mask)
            base = self.mktemp()
            self.dataDir = FilePath(base).child("nested").child("data")
            self.load()
            modes = assertPrivateTree(self, base, f"umask {mask:#o}")
            self.assertEqual(sorted(modes), sorted([".", "nested", os.path.join("nested", "data"),
                                                    os.path.join("nested", "data", CREDENTIALS_FILE)]))

    def test_noTemporaryLeftBehind(self) -> None:
        """Only the credentials file remains in the data directory."""
        self.load()
        self.assertEqual(self.dataDir.listdir(), [CREDENTIALS_FILE])

    def test_idempotent(self) -> None:
        """A second start reuses the stored pair and does not log the secret again."""
        first = self.load()
        del self.events[:]
        second = self.load()
        self.assertEqual(first, second)
        self.assertNotIn(first.secretKey, self.logged())
        self.assertIn(first.accessKey, self.logged())

    def test_explicitOverridesStored(self) -> None:
        """Explicit keys win over a stored pair, and leave the file alone."""
        stored = self.load()
        before = self.dataDir.child(CREDENTIALS_FILE).getContent()
        explicit = self.load("OTHERKEY", "othersecret")
        self.assertEqual((explicit.accessKey, explicit.secretKey), ("OTHERKEY", "othersecret"))
        self.assertNotEqual(explicit.accessKey, stored.accessKey)
        self.assertEqual(self.dataDir.child(CREDENTIALS_FILE).getContent(), before)

    def test_existingDataDir(self) -> None:
        """An existing data directory with other content is fine."""
        self.dataDir.makedirs()
        self.dataDir.child("segments").makedirs()
        self.load()
        self.assertTrue(self.dataDir.child(CREDENTIALS_FILE).exists())

    def test_handWrittenFile(self) -> None:
        """A file an operator wrote (with any key shapes) is used as it is."""
        self.dataDir.makedirs()
        path = self.dataDir.child(CREDENTIALS_FILE)
        path.setContent(b'{"accessKey": "minio", "secretKey": "minio123"}')
        os.chmod(path.path, 0o600)
        credentials = self.load()
        self.assertEqual((credentials.accessKey, credentials.secretKey), ("minio", "minio123"))

    def test_exposedFileWarned(self) -> None:
        """A world-readable credentials file is used, with a warning saying how to fix it."""
        self.load()
        path = self.dataDir.child(CREDENTIALS_FILE)
        os.chmod(path.path, 0o644)
        del self.events[:]
        self.load()
        self.assertIn("chmod 600", self.logged())

    def test_corruptFile(self) -> None:
        """A file that is not the expected JSON is an error naming it, never replaced."""
        self.dataDir.makedirs()
        path = self.dataDir.child(CREDENTIALS_FILE)
        for content in [b"{not json", b"[]", b'{"accessKey": "x"}', b'{"accessKey": "", "secretKey": "y"}']:
            path.setContent(content)
            e = self.assertRaises(CredentialsError, self.load)
            self.assertIn(path.path, str(e))
            self.assertEqual(path.getContent(), content)


class CreateExclusivelyTests(SynchronousTestCase):
    """L{_createExclusively}, the race-safe write behind first-start generation."""

    def test_loserKeepsWinnersFile(self) -> None:
        """If the file appeared meanwhile (another server won), it is left alone and we are told."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        path = directory.child(CREDENTIALS_FILE)
        path.setContent(b"winner")
        self.assertFalse(_createExclusively(path, b"loser"))
        self.assertEqual(path.getContent(), b"winner")
        self.assertEqual(directory.listdir(), [CREDENTIALS_FILE])


class GenerateTests(SynchronousTestCase):
    """L{generateKeyPair}."""

    def test_unique(self) -> None:
        """Pairs do not repeat."""
        pairs = {generateKeyPair() for _ in range(100)}
        self.assertEqual(len(pairs), 100)

    def test_shape(self) -> None:
        """The access key looks like AWS's; the secret is 40 URL- and shell-safe characters."""
        accessKey, secretKey = generateKeyPair()
        self.assertTrue(re.fullmatch(r"[A-Z0-9]{20}", accessKey))
        self.assertTrue(re.fullmatch(r"[A-Za-z0-9]{40}", secretKey))


class StoredCredentialsTests(SynchronousTestCase):
    """L{storedCredentials} and L{ownerForAccessKey}, used next to a --credentials file."""

    def setUp(self) -> None:
        """A data directory that does not exist yet."""
        self.dataDir = FilePath(self.mktemp())

    def test_none(self) -> None:
        """No stored pair: C{None}, and nothing is generated."""
        self.assertIsNone(storedCredentials(self.dataDir))
        self.assertFalse(self.dataDir.exists())

    def test_stored(self) -> None:
        """The stored pair, owned as the server always owned it."""
        generated = loadOrCreateCredentials(self.dataDir, None, None, Logger(observer=cast(ILogObserver, lambda e: None)))
        self.assertEqual(storedCredentials(self.dataDir), generated)

    def test_corrupt(self) -> None:
        """A corrupt file is the usual error, not a silent C{None}."""
        self.dataDir.makedirs()
        self.dataDir.child(CREDENTIALS_FILE).setContent(b"{")
        self.assertRaises(CredentialsError, storedCredentials, self.dataDir)

    def test_owner(self) -> None:
        """The single pair's owner id is the SHA-256 of its access key (pinned: buckets are recorded under it)."""
        self.assertEqual(ownerForAccessKey("AKIDEXAMPLE"), hashlib.sha256(b"AKIDEXAMPLE").hexdigest())
        self.assertEqual(makeCredentials("AKIDEXAMPLE", "s").owner, ownerForAccessKey("AKIDEXAMPLE"))
