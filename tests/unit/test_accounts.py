"""
Tests for L{fasterstore.accounts}: the credentials file format and its
validation, lookup, reloading (adds, revokes, a bad file keeps the old set)
and the SIGHUP service.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable, Dict, List, cast

import attrs
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.accounts import (
    DEFAULT_ACCOUNT,
    Account,
    AccountsError,
    AccountStore,
    SignalReloadService,
    canonicalIdFor,
    defaultAccount,
    loadAccounts,
    readAccountsFile,
)
from fasterstore.credentials import makeCredentials, ownerForAccessKey
from fasterstore.auth.identity import Credentials

ALICE_ID = "a" * 64

TWO_ACCOUNTS = f"""
[accounts.alice]
display-name = "Alice Example"
id = "{ALICE_ID.upper()}"
keys = [
  {{ access-key = "AKALICE1", secret-key = "alice-secret-1" }},
  {{ access-key = "AKALICE2", secret-key = "alice-secret-2" }},
]

[accounts.bob]
keys = [{{ access-key = "AKBOB1", secret-key = "bob-secret-1" }}]
"""


class _Logged:
    """A logger whose events a test can read."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.log = Logger(observer=cast(ILogObserver, self.events.append))

    def text(self) -> str:
        """Everything logged so far, formatted."""
        return "\n".join(formatEvent(e) for e in self.events)


class _FileTestCase(SynchronousTestCase):
    """Helpers for tests that write credentials files."""

    def setUp(self) -> None:
        """A fresh directory for the file."""
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.path = self.directory.child("credentials.toml")

    def write(self, text: str) -> FilePath[str]:
        """Replace the credentials file atomically, mode 0600, as an operator should."""
        temporary = self.path.siblingExtension(".new")
        temporary.setContent(text.encode("utf-8"))
        os.chmod(temporary.path, 0o600)
        os.replace(temporary.path, self.path.path)
        return self.path

    def assertInvalid(self, text: str, *fragments: str) -> AccountsError:
        """The file is refused with a message naming the file and holding each fragment."""
        self.write(text)
        e = self.assertRaises(AccountsError, readAccountsFile, self.path)
        self.assertIn(self.path.path, str(e))
        for fragment in fragments:
            self.assertIn(fragment, str(e))
        return e


class FormatTests(_FileTestCase):
    """The TOML format and what a valid file yields."""

    def test_twoAccounts(self) -> None:
        """Each account yields its name, id, display name and credentials per key."""
        alice, bob = readAccountsFile(self.write(TWO_ACCOUNTS))
        self.assertEqual(alice.name, "alice")
        self.assertEqual(alice.canonicalId, ALICE_ID)
        self.assertEqual(alice.displayName, "Alice Example")
        self.assertEqual(
            alice.keys,
            (
                Credentials("AKALICE1", "alice-secret-1", ALICE_ID, "Alice Example"),
                Credentials("AKALICE2", "alice-secret-2", ALICE_ID, "Alice Example"),
            ),
        )
        self.assertEqual(bob, Account("bob", canonicalIdFor("bob"), "bob", (
            Credentials("AKBOB1", "bob-secret-1", canonicalIdFor("bob"), "bob"),
        )))

    def test_arrayOfTables(self) -> None:
        """Keys may also be written as [[accounts.NAME.keys]] tables."""
        self.write(
            '[accounts.carol]\n'
            '[[accounts.carol.keys]]\naccess-key = "AKC1"\nsecret-key = "s1"\n'
            '[[accounts.carol.keys]]\naccess-key = "AKC2"\nsecret-key = "s2"\n'
        )
        (carol,) = readAccountsFile(self.path)
        self.assertEqual([c.accessKey for c in carol.keys], ["AKC1", "AKC2"])

    def test_derivedId(self) -> None:
        """The default id is 64 lower-case hex digits, stable, and differs by name."""
        self.assertRegex(canonicalIdFor("alice"), r"^[0-9a-f]{64}$")
        self.assertEqual(canonicalIdFor("alice"), canonicalIdFor("alice"))
        self.assertNotEqual(canonicalIdFor("alice"), canonicalIdFor("bob"))
        # Pinned: changing the derivation would orphan every bucket.
        self.assertEqual(canonicalIdFor("alice"), "6d78ac6bd8e324ecc0a194bc6b834910ccb39447b26f2ed66671f87d7a4470f2")

    def test_emptyKeysDisablesAccount(self) -> None:
        """An account with an empty key list keeps its id but cannot sign in."""
        self.write('[accounts.gone]\nkeys = []\n[accounts.bob]\nkeys = [{access-key = "AKB", secret-key = "s"}]\n')
        gone, bob = readAccountsFile(self.path)
        self.assertEqual(gone.keys, ())

    def test_invalid(self) -> None:
        """Every malformed file is refused with a message saying what is wrong, and where."""
        key = '{ access-key = "AK1", secret-key = "s" }'
        cases = [
            ("[accounts.a\n", "not valid TOML"),
            ("", "no accounts"),
            ("accounts = 3\n", "no accounts"),
            (f"[account.a]\nkeys = [{key}]\n", "unknown top-level key", "'account'"),
            ('[accounts."has space"]\nkeys = []\n', "'has space'", "names are"),
            ("[accounts]\na = 1\n", "account 'a'", "must be a table"),
            (f"[accounts.a]\nkeys = [{key}]\nkey = []\n", "account 'a'", "unknown key", "'key'"),
            ("[accounts.a]\n", "account 'a'", "no keys"),
            ('[accounts.a]\nkeys = "AK1:s"\n', "keys must be a list"),
            ("[accounts.a]\nkeys = [1]\n", "key #1", "must be a table"),
            ('[accounts.a]\nkeys = [{ access-key = "AK1", secret-key = "s", role = "x" }]\n', "unknown key", "'role'"),
            ('[accounts.a]\nkeys = [{ secret-key = "s" }]\n', "access-key must be a non-empty string"),
            ('[accounts.a]\nkeys = [{ access-key = "", secret-key = "s" }]\n', "access-key must be a non-empty"),
            ('[accounts.a]\nkeys = [{ access-key = "A K", secret-key = "s" }]\n', "may not contain"),
            ('[accounts.a]\nkeys = [{ access-key = "A=K", secret-key = "s" }]\n', "may not contain"),
            ('[accounts.a]\nkeys = [{ access-key = "AK1", secret-key = "" }]\n', "account 'a', key #1", "secret-key is empty"),
            ('[accounts.a]\nkeys = [{ access-key = "AK1" }]\n', "secret-key must be a string"),
            ('[accounts.a]\nkeys = [{ access-key = "AK1", secret-key = 7 }]\n', "secret-key must be a string"),
            (f'[accounts.a]\nid = "abc"\nkeys = [{key}]\n', "id must be 64 hexadecimal digits", "'abc'"),
            (f'[accounts.a]\nid = "{"g" * 64}"\nkeys = [{key}]\n', "id must be 64 hexadecimal digits"),
            (f"[accounts.a]\nid = 5\nkeys = [{key}]\n", "id must be 64 hexadecimal digits"),
            (f'[accounts.a]\ndisplay-name = ""\nkeys = [{key}]\n', "display-name must be"),
            (f'[accounts.a]\ndisplay-name = "a\\nb"\nkeys = [{key}]\n', "display-name must be"),
            (f'[accounts.a]\ndisplay-name = "{"x" * 129}"\nkeys = [{key}]\n', "longer than 128"),
            ("[accounts.a]\nkeys = []\n", "no access keys in any account"),
        ]
        for text, *fragments in cases:
            self.assertInvalid(text, *fragments)

    def test_duplicateAccessKeyAcrossAccounts(self) -> None:
        """One access key in two accounts is refused, naming both."""
        self.assertInvalid(
            '[accounts.a]\nkeys = [{ access-key = "AKSAME", secret-key = "s1" }]\n'
            '[accounts.b]\nkeys = [{ access-key = "AKSAME", secret-key = "s2" }]\n',
            "'AKSAME'", "'a'", "'b'",
        )

    def test_duplicateAccessKeyInOneAccount(self) -> None:
        """The same access key twice in one account is refused too."""
        self.assertInvalid(
            '[accounts.a]\nkeys = [{ access-key = "AKSAME", secret-key = "s1" }, '
            '{ access-key = "AKSAME", secret-key = "s2" }]\n',
            "'AKSAME' appears twice in 'a'",
        )

    def test_duplicateId(self) -> None:
        """Two accounts with one id (which would share buckets) are refused."""
        self.assertInvalid(
            f'[accounts.a]\nid = "{ALICE_ID}"\nkeys = [{{ access-key = "AK1", secret-key = "s" }}]\n'
            f'[accounts.b]\nid = "{ALICE_ID}"\nkeys = [{{ access-key = "AK2", secret-key = "s" }}]\n',
            "'a' and 'b' have the same id",
        )

    def test_secretNeverInErrors(self) -> None:
        """Error messages name access keys, never secrets."""
        e = self.assertInvalid(
            '[accounts.a]\nkeys = [{ access-key = "AKSAME", secret-key = "hunter2" }]\n'
            '[accounts.b]\nkeys = [{ access-key = "AKSAME", secret-key = "hunter3" }]\n',
        )
        self.assertNotIn("hunter", str(e))

    def test_missingFile(self) -> None:
        """A missing file is refused with its path and the reason."""
        e = self.assertRaises(AccountsError, readAccountsFile, self.directory.child("nope.toml"))
        self.assertIn("nope.toml", str(e))
        self.assertIn("cannot read", str(e))

    def test_notUtf8(self) -> None:
        """Bytes that are not UTF-8 are a clear error, not a traceback."""
        self.path.setContent(b"\xff\xfe[accounts]")
        self.assertRaises(AccountsError, readAccountsFile, self.path)


class SinglePairTests(_FileTestCase):
    """The --access-key/--secret-key pair next to (or instead of) the file."""

    def test_singleOnly(self) -> None:
        """Without a file, the single pair is the account 'default', owned as before accounts existed."""
        store = AccountStore.fromFile(None, makeCredentials("AKONE", "secret"))
        (account,) = store.accounts
        self.assertEqual(account.name, DEFAULT_ACCOUNT)
        # The operator's pair: an admin.
        self.assertEqual(store.lookup("AKONE"), attrs.evolve(makeCredentials("AKONE", "secret"), admin=True))
        self.assertEqual(store.lookup("AKONE").owner, ownerForAccessKey("AKONE"))  # type: ignore[union-attr]
        self.assertIsNone(store.lookup("AKTWO"))

    def test_singleAndFile(self) -> None:
        """Both: the file's accounts plus 'default'."""
        self.write(TWO_ACCOUNTS)
        store = AccountStore.fromFile(self.path, makeCredentials("AKONE", "secret"))
        self.assertEqual([a.name for a in store.accounts], [DEFAULT_ACCOUNT, "alice", "bob"])
        self.assertEqual(store.lookup("AKONE"), attrs.evolve(makeCredentials("AKONE", "secret"), admin=True))
        self.assertEqual(store.lookup("AKBOB1").displayName, "bob")  # type: ignore[union-attr]
        self.assertFalse(store.lookup("AKBOB1").admin)  # type: ignore[union-attr]

    def test_adminAccounts(self) -> None:
        """admin = true makes every key of an account an admin's; anything but a boolean is refused."""
        self.write('[accounts.ops]\nadmin = true\nkeys = [{ access-key = "AKOPS", secret-key = "s" }]\n'
                   '[accounts.user]\nkeys = [{ access-key = "AKUSER", secret-key = "s" }]\n')
        store = AccountStore.fromFile(self.path, None)
        self.assertTrue(store.lookup("AKOPS").admin)  # type: ignore[union-attr]
        self.assertFalse(store.lookup("AKUSER").admin)  # type: ignore[union-attr]
        self.assertIn("ops [admin]", store.describe())
        self.write('[accounts.ops]\nadmin = "yes"\nkeys = [{ access-key = "AKOPS", secret-key = "s" }]\n')
        e = self.assertRaises(AccountsError, loadAccounts, self.path, None)
        self.assertIn("admin must be true or false", str(e))

    def test_defaultAccountNameTaken(self) -> None:
        """A file account called 'default' collides with the single pair, and the message says why."""
        self.write('[accounts.default]\nkeys = [{ access-key = "AK1", secret-key = "s" }]\n')
        e = self.assertRaises(AccountsError, loadAccounts, self.path, defaultAccount("AKONE", "secret"))
        self.assertIn("--access-key", str(e))
        # Without the single pair the name is free.
        self.assertEqual([a.name for a in loadAccounts(self.path, None)], ["default"])

    def test_singleKeyInFile(self) -> None:
        """The single pair's access key may not also be in the file."""
        self.write('[accounts.a]\nkeys = [{ access-key = "AKONE", secret-key = "s" }]\n')
        e = self.assertRaises(AccountsError, loadAccounts, self.path, defaultAccount("AKONE", "secret"))
        self.assertIn("'AKONE'", str(e))

    def test_takeOverSinglePairsBuckets(self) -> None:
        """An account may not share the single pair's id while that pair is in use."""
        self.write(
            f'[accounts.a]\nid = "{ownerForAccessKey("AKONE")}"\n'
            'keys = [{ access-key = "AK1", secret-key = "s" }]\n'
        )
        self.assertRaises(AccountsError, loadAccounts, self.path, defaultAccount("AKONE", "secret"))
        # Once the pair is retired, the account inherits its buckets.
        (account,) = loadAccounts(self.path, None)
        self.assertEqual(account.canonicalId, ownerForAccessKey("AKONE"))


class LookupAndReloadTests(_FileTestCase):
    """L{AccountStore.lookup} and L{AccountStore.reload}."""

    def setUp(self) -> None:
        """A store on the two-account file, logging to a list."""
        super().setUp()
        self.write(TWO_ACCOUNTS)
        self.logged = _Logged()
        self.store = AccountStore.fromFile(self.path, None, self.logged.log)

    def test_lookup(self) -> None:
        """Every key finds its account's credentials; unknown keys find nothing."""
        self.assertEqual(self.store.lookup("AKALICE1").owner, ALICE_ID)  # type: ignore[union-attr]
        self.assertEqual(self.store.lookup("AKALICE2").secretKey, "alice-secret-2")  # type: ignore[union-attr]
        self.assertEqual(self.store.lookup("AKBOB1").owner, canonicalIdFor("bob"))  # type: ignore[union-attr]
        self.assertIsNone(self.store.lookup("AKNOBODY"))
        self.assertIsNone(self.store.lookup(""))

    def test_reloadAddsAndRevokes(self) -> None:
        """After a reload removed keys are unknown, added keys work, and the log says which."""
        self.write(
            f'[accounts.alice]\nid = "{ALICE_ID}"\ndisplay-name = "Alice Example"\n'
            'keys = [{ access-key = "AKALICE1", secret-key = "alice-secret-1" }]\n'
            '[accounts.bob]\nkeys = [{ access-key = "AKBOB2", secret-key = "bob-secret-2" }]\n'
        )
        self.store.reload()
        self.assertIsNone(self.store.lookup("AKALICE2"))
        self.assertIsNone(self.store.lookup("AKBOB1"))
        self.assertEqual(self.store.lookup("AKBOB2").owner, canonicalIdFor("bob"))  # type: ignore[union-attr]
        self.assertEqual(self.store.lookup("AKALICE1").owner, ALICE_ID)  # type: ignore[union-attr]
        text = self.logged.text()
        self.assertIn("added AKBOB2", text)
        self.assertIn("revoked AKALICE2, AKBOB1", text)
        self.assertNotIn("secret", text)

    def test_reloadChangesSecret(self) -> None:
        """A rotated secret replaces the old one at once."""
        self.write(TWO_ACCOUNTS.replace("bob-secret-1", "bob-secret-new"))
        self.store.reload()
        self.assertEqual(self.store.lookup("AKBOB1").secretKey, "bob-secret-new")  # type: ignore[union-attr]
        self.assertIn("changed AKBOB1", self.logged.text())

    def test_reloadNewAccount(self) -> None:
        """A new account works after a reload."""
        self.write(TWO_ACCOUNTS + '[accounts.carol]\nkeys = [{ access-key = "AKCAROL", secret-key = "c" }]\n')
        self.assertIsNone(self.store.lookup("AKCAROL"))
        self.store.reload()
        self.assertEqual(self.store.lookup("AKCAROL").owner, canonicalIdFor("carol"))  # type: ignore[union-attr]

    def test_badReloadKeepsPrevious(self) -> None:
        """A file that fails to load on reload changes nothing, and the error is logged."""
        before = self.store.accounts
        for bad in ["[accounts.alice\n", '[accounts.a]\nkeys = [{ access-key = "AK", secret-key = "" }]\n', ""]:
            del self.logged.events[:]
            self.write(bad)
            self.store.reload()
            self.assertEqual(self.store.accounts, before)
            self.assertEqual(self.store.lookup("AKBOB1").secretKey, "bob-secret-1")  # type: ignore[union-attr]
            self.assertIn("keeping the previous ones", self.logged.text())
            self.assertIn(self.path.path, self.logged.text())

    def test_missingFileOnReloadKeepsPrevious(self) -> None:
        """A file removed (or mid-rename) at reload time keeps the previous accounts."""
        self.path.remove()
        self.store.reload()
        self.assertIsNotNone(self.store.lookup("AKALICE1"))
        self.assertIn("cannot read", self.logged.text())

    def test_reloadKeepsSinglePair(self) -> None:
        """The single pair survives reloads, and still may not collide with the file."""
        store = AccountStore.fromFile(self.path, makeCredentials("AKONE", "secret"), self.logged.log)
        self.write(TWO_ACCOUNTS.replace("AKBOB1", "AKBOB9"))
        store.reload()
        self.assertIsNotNone(store.lookup("AKONE"))
        self.assertIsNotNone(store.lookup("AKBOB9"))
        self.write(TWO_ACCOUNTS.replace("AKBOB1", "AKONE"))
        store.reload()
        self.assertIsNotNone(store.lookup("AKBOB9"))
        self.assertIn("'AKONE'", self.logged.text())

    def test_reloadWithoutFile(self) -> None:
        """With no file there is nothing to reload, and that is said, not failed."""
        store = AccountStore.fromFile(None, makeCredentials("AKONE", "secret"), self.logged.log)
        store.reload()
        self.assertIsNotNone(store.lookup("AKONE"))
        self.assertIn("No credentials file", self.logged.text())

    def test_idChangeWarned(self) -> None:
        """Changing an account's id is allowed but warned about: its buckets stay with the old id."""
        self.write(TWO_ACCOUNTS.replace(ALICE_ID.upper(), "b" * 64))
        self.store.reload()
        self.assertEqual(self.store.lookup("AKALICE1").owner, "b" * 64)  # type: ignore[union-attr]
        self.assertIn("no longer its own", self.logged.text())

    def test_worldReadableWarned(self) -> None:
        """A file every user can read is used, with a warning."""
        os.chmod(self.path.path, 0o644)
        logged = _Logged()
        AccountStore.fromFile(self.path, None, logged.log)
        self.assertIn("chmod o-rwx", logged.text())
        os.chmod(self.path.path, 0o640)
        logged = _Logged()
        AccountStore.fromFile(self.path, None, logged.log)
        self.assertNotIn("chmod", logged.text())

    def test_describe(self) -> None:
        """The startup summary names accounts, ids and key ids, not secrets."""
        text = self.store.describe()
        self.assertIn(ALICE_ID, text)
        self.assertIn("AKALICE1, AKALICE2", text)
        self.assertNotIn("secret", text)


class _FakeThreadsReactor:
    """Records C{callFromThread} calls instead of running them."""

    def __init__(self) -> None:
        self.calls: List[Callable[[], Any]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append(lambda: f(*args, **kwargs))

    def run(self) -> None:
        """Run what was queued, as the reactor thread would."""
        calls, self.calls = self.calls, []
        for call in calls:
            call()


class SignalReloadServiceTests(SynchronousTestCase):
    """L{SignalReloadService}: SIGHUP -> reactor thread -> reload."""

    def setUp(self) -> None:
        """A service with a recording reload, on SIGUSR2 so a test never disturbs SIGHUP's owner."""
        self.reactor = _FakeThreadsReactor()
        self.reloads = 0
        self.logged = _Logged()
        self.signum = signal.SIGUSR2

        def reload() -> None:
            self.reloads += 1

        self.service = SignalReloadService(
            self.reactor, reload, signum=self.signum, log=self.logged.log  # type: ignore[arg-type]
        )
        previous = signal.getsignal(self.signum)
        self.addCleanup(signal.signal, self.signum, previous if previous is not None else signal.SIG_DFL)

    def test_defaultsToSighup(self) -> None:
        """Without a signal number, the service listens for SIGHUP."""
        service = SignalReloadService(self.reactor, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(service.signum, signal.SIGHUP)

    def test_handlerHopsToReactor(self) -> None:
        """The handler only queues the reload with callFromThread; the reactor runs it."""
        self.service.handleSignal(self.signum, None)
        self.assertEqual(self.reloads, 0)
        self.reactor.run()
        self.assertEqual(self.reloads, 1)

    def test_realSignal(self) -> None:
        """Once started, the signal itself queues a reload; once stopped, the old handler is back."""
        received: List[int] = []

        def previous(signum: int, frame: object) -> None:
            received.append(signum)

        signal.signal(self.signum, previous)
        self.service.startService()
        self.assertEqual(signal.getsignal(self.signum), self.service.handleSignal)
        os.kill(os.getpid(), self.signum)
        self.reactor.run()
        self.assertEqual(self.reloads, 1)
        self.service.stopService()
        self.assertIs(signal.getsignal(self.signum), previous)
        os.kill(os.getpid(), self.signum)
        self.assertEqual(received, [self.signum])
        self.reactor.run()
        self.assertEqual(self.reloads, 1)

    def test_ignoresAfterStopWhereDefaultWouldKill(self) -> None:
        """
        Where the signal's default action (terminate) was in force before
        start, it is ignored after stop: the server may still be draining.
        """
        signal.signal(self.signum, signal.SIG_DFL)
        self.service.startService()
        self.service.stopService()
        self.assertEqual(signal.getsignal(self.signum), signal.SIG_IGN)

    def test_reloadErrorLogged(self) -> None:
        """An exception from reload is logged, never raised into the reactor."""

        def broken() -> None:
            raise RuntimeError("boom")

        service = SignalReloadService(self.reactor, broken, signum=self.signum, log=self.logged.log)  # type: ignore[arg-type]
        service.handleSignal(self.signum, None)
        self.reactor.run()
        self.assertIn("previous ones stay in force", self.logged.text())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 0)

    def test_notMainThread(self) -> None:
        """Started outside the main thread it installs nothing (Python forbids it) and says so."""
        before = signal.getsignal(self.signum)
        errors: List[BaseException] = []

        def start() -> None:
            try:
                self.service.startService()
                self.service.stopService()
            except BaseException as e:
                errors.append(e)

        thread = threading.Thread(target=start)
        thread.start()
        thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(signal.getsignal(self.signum), before)
        self.assertIn("main thread", self.logged.text())

    def test_endToEnd(self) -> None:
        """SIGHUP-path wiring: the handler reloads a real store from its file."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        path = directory.child("credentials.toml")
        path.setContent(b'[accounts.a]\nkeys = [{ access-key = "AK1", secret-key = "s" }]\n')
        store = AccountStore.fromFile(path, None, self.logged.log)
        service = SignalReloadService(self.reactor, store.reload, signum=self.signum)  # type: ignore[arg-type]
        path.setContent(b'[accounts.a]\nkeys = [{ access-key = "AK2", secret-key = "s" }]\n')
        service.handleSignal(self.signum, None)
        self.assertIsNotNone(store.lookup("AK1"))
        self.reactor.run()
        self.assertIsNone(store.lookup("AK1"))
        self.assertIsNotNone(store.lookup("AK2"))
