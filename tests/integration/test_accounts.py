"""
Accounts against the real server: C{twistd fasterstore --credentials FILE}
with two accounts (plus the harness's own pair, the account C{default}).
One account's buckets are closed to the others for listing, reading, writing
and deleting; rewriting the file and sending SIGHUP revokes and adds keys
without a restart, and a bad file on SIGHUP keeps the previous accounts.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import os
import signal
import time
import xml.etree.ElementTree as ET
from typing import Callable, List, Optional

from tests.integration.harness import (
    REGION,
    Response,
    Server,
    ServerTestCase,
    SigV4,
    childText,
    errorCode,
    findAll,
    rawRequest,
)

ALICE_ID = "a1" * 32

ALICE = ("AKALICE0000000000001", "alice/secret+0000000000000000000000001")
ALICE2 = ("AKALICE0000000000002", "alice/secret+0000000000000000000000002")
BOB = ("AKBOB000000000000001", "bob/secret+00000000000000000000000000001")
BOB2 = ("AKBOB000000000000002", "bob/secret+00000000000000000000000000002")

#: How long a SIGHUP may take to show; polled, never slept through.
RELOAD_TIMEOUT = 20.0


def credentialsFile(alice: List[tuple], bob: List[tuple]) -> str:
    """The TOML text for alice (pinned id) and bob (derived id) with these key pairs."""

    def keys(pairs: List[tuple]) -> str:
        return ", ".join(f'{{ access-key = "{a}", secret-key = "{s}" }}' for a, s in pairs)

    return (
        f'[accounts.alice]\ndisplay-name = "Alice"\nid = "{ALICE_ID}"\nkeys = [{keys(alice)}]\n\n'
        f"[accounts.bob]\nkeys = [{keys(bob)}]\n"
    )


class AccountsTests(ServerTestCase):
    """Two accounts on one real server."""

    def setUp(self) -> None:
        """A credentials file (absolute: the server runs elsewhere) and a server using it."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.path = os.path.join(directory, "credentials.toml")
        self.writeCredentials(credentialsFile([ALICE, ALICE2], [BOB]))
        self.server = self.privateServer(extraArgs=["--credentials", self.path])

    def writeCredentials(self, text: str) -> None:
        """Replace the file atomically (write, then rename), mode 0600, as operations.md says."""
        temporary = self.path + ".new"
        with open(temporary, "w") as f:
            f.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def request(self, pair: tuple, method: str, target: str, body: Optional[bytes] = None) -> Response:
        """One request signed with C{pair}, never a 500."""
        response = rawRequest(self.server, method, target, body=body, signer=SigV4(pair[0], pair[1], REGION))
        self.assertNotEqual(response.status, 500, f"{method} {target}: {response!r}")
        return response

    def ok(self, pair: tuple, method: str, target: str, body: Optional[bytes] = None) -> Response:
        """A request that must succeed."""
        response = self.request(pair, method, target, body)
        self.assertIn(response.status, (200, 204), f"{pair[0]} {method} {target}: {response!r}")
        return response

    def bucketNames(self, pair: tuple) -> List[str]:
        """ListBuckets as C{pair}."""
        root = ET.fromstring(self.ok(pair, "GET", "/").body)
        (buckets,) = findAll(root, "Buckets")
        return [childText(b, "Name") or "" for b in findAll(buckets, "Bucket")]

    def waitFor(self, condition: Callable[[], bool], what: str) -> None:
        """Poll C{condition} until it holds, or fail after L{RELOAD_TIMEOUT}."""
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"{what}: not within {RELOAD_TIMEOUT}s\n{self.server.tail()}")
            time.sleep(0.05)

    def sighup(self) -> None:
        """Ask the server to reload its credentials file."""
        os.kill(self.server.pid, signal.SIGHUP)

    def test_bucketsArePrivate(self) -> None:
        """Another account gets AccessDenied on a bucket for every operation; the owner's keys all work."""
        bucket = self.bucketName("alice")
        self.ok(ALICE, "PUT", f"/{bucket}")
        self.ok(ALICE, "PUT", f"/{bucket}/photo.jpg", b"alice's photo")

        outsiders = [BOB, (self.server.accessKey, self.server.secretKey)]
        for outsider in outsiders:
            for method, target, body in [
                ("GET", f"/{bucket}", None),  # ListObjects
                ("GET", f"/{bucket}?list-type=2", None),  # ListObjectsV2
                ("GET", f"/{bucket}/photo.jpg", None),
                ("PUT", f"/{bucket}/photo.jpg", b"overwritten"),
                ("PUT", f"/{bucket}/new.txt", b"planted"),
                ("DELETE", f"/{bucket}/photo.jpg", None),
                ("DELETE", f"/{bucket}", None),
            ]:
                response = self.request(outsider, method, target, body)
                self.assertEqual(response.status, 403, f"{outsider[0]} {method} {target}: {response!r}")
                self.assertEqual(errorCode(response.body), "AccessDenied", response.body)
            for method in ("HEAD",):
                self.assertEqual(self.request(outsider, method, f"/{bucket}/photo.jpg").status, 403)
                self.assertEqual(self.request(outsider, method, f"/{bucket}").status, 403)
            taken = self.request(outsider, "PUT", f"/{bucket}")
            self.assertEqual(errorCode(taken.body), "BucketAlreadyExists", taken.body)
            self.assertNotIn(bucket, self.bucketNames(outsider))

        # Nothing the outsiders tried changed anything, and both of alice's keys see it.
        for pair in (ALICE, ALICE2):
            self.assertEqual(self.ok(pair, "GET", f"/{bucket}/photo.jpg").body, b"alice's photo")
            self.assertEqual(self.request(pair, "GET", f"/{bucket}/new.txt").status, 404)
            self.assertIn(bucket, self.bucketNames(pair))
        same = self.request(ALICE2, "PUT", f"/{bucket}")
        # Her own bucket: 200 in us-east-1, as on AWS (legacy rule).
        self.assertEqual(same.status, 200, same.body)

        # The owner shown is the account's, whichever key asked.
        root = ET.fromstring(self.ok(ALICE2, "GET", "/").body)
        (owner,) = findAll(root, "Owner")
        self.assertEqual((childText(owner, "ID"), childText(owner, "DisplayName")), (ALICE_ID, "Alice"))

        # Bob's own bucket is his alone in turn.
        bobsBucket = self.bucketName("bob")
        self.ok(BOB, "PUT", f"/{bobsBucket}")
        self.assertEqual(errorCode(self.request(ALICE, "GET", f"/{bobsBucket}").body), "AccessDenied")
        self.assertNotIn(bobsBucket, self.bucketNames(ALICE))

    def test_sighupRevokesAndAdds(self) -> None:
        """After the file is rewritten and SIGHUP sent, a removed key is refused and a new one works."""
        bobsBucket = self.bucketName("bob")
        self.ok(BOB, "PUT", f"/{bobsBucket}")
        self.ok(BOB, "PUT", f"/{bobsBucket}/notes.txt", b"bob's notes")
        self.assertEqual(errorCode(self.request(BOB2, "GET", "/").body), "InvalidAccessKeyId")

        self.writeCredentials(credentialsFile([ALICE], [BOB2]))
        self.sighup()

        def revoked(pair: tuple) -> Callable[[], bool]:
            return lambda: errorCode(self.request(pair, "GET", "/").body) == "InvalidAccessKeyId"

        self.waitFor(revoked(BOB), "bob's old key revoked")
        self.waitFor(revoked(ALICE2), "alice's second key revoked")
        # The new key is bob's: same account, same buckets.
        self.assertEqual(self.ok(BOB2, "GET", f"/{bobsBucket}/notes.txt").body, b"bob's notes")
        self.assertIn(bobsBucket, self.bucketNames(BOB2))
        self.ok(ALICE, "GET", "/")
        # The harness's own pair (the account 'default') is not in the file and is untouched.
        self.ok((self.server.accessKey, self.server.secretKey), "GET", "/")
        self.assertTrue(self.server.running(), "SIGHUP must not stop the server")
        self.assertIn("revoked AKALICE0000000000002, AKBOB000000000000001", self.server.logSinceStart())

    def test_badFileOnSighupKeepsAccounts(self) -> None:
        """A file that fails to load on SIGHUP is logged and changes nothing."""
        self.writeCredentials(credentialsFile([ALICE], [BOB, ("AKBOB000000000000001", "again")]))
        self.sighup()
        self.waitFor(
            lambda: "keeping the previous ones" in self.server.logSinceStart(), "the refused reload logged"
        )
        self.assertIn("AKBOB000000000000001", self.server.logSinceStart())
        for pair in (ALICE, ALICE2, BOB):
            self.ok(pair, "GET", "/")
        self.assertTrue(self.server.running())

        # Fixed, it loads.
        self.writeCredentials(credentialsFile([ALICE], [BOB]))
        self.sighup()
        self.waitFor(
            lambda: errorCode(self.request(ALICE2, "GET", "/").body) == "InvalidAccessKeyId",
            "the fixed file loaded",
        )


class StartupTests(ServerTestCase):
    """A bad credentials file stops the server at start, with a message and no listener."""

    def test_badFileRefusedAtStart(self) -> None:
        """twistd exits with the file's error instead of serving without accounts."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "credentials.toml")
        with open(path, "w") as f:
            f.write('[accounts.alice]\nkeys = [{ access-key = "AK1", secret-key = "" }]\n')
        server = Server(os.path.join(directory, "server"), extraArgs=["--credentials", path])
        self._use(server)
        self.addCleanup(server.kill)
        self.assertRaises(Exception, server.start, 30)
        self.assertIn("secret-key is empty", server.logSinceStart())
