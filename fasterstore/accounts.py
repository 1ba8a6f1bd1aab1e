"""
Accounts: who may sign requests, and as whom.

An account is a canonical owner id (64 hex digits, like AWS's canonical user
ids), a display name and any number of key pairs.  Buckets belong to the
owner id that created them, so every key pair of an account sees the same
buckets and no other account sees them.

The accounts come from a TOML file named by C{--credentials} (format in
docs/configuration.md), plus the single key pair of C{--access-key} /
C{--secret-key} (or the generated one) as the account C{default}.
L{AccountStore} answers "whose key is this?" in one dict lookup and re-reads
the file on demand; L{SignalReloadService} makes SIGHUP that demand.
Tests: tests/unit/test_accounts.py, tests/integration/test_accounts.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import threading
import tomllib
from types import FrameType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import attrs
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from fasterstore.credentials import DISPLAY_NAME, ownerForAccessKey
from fasterstore.auth.identity import Credentials

#: The account the single C{--access-key}/C{--secret-key} pair (or the
#: generated one) belongs to.
DEFAULT_ACCOUNT = "default"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_CANONICAL_ID = re.compile(r"^[0-9a-f]{64}$")
_BAD_ACCESS_KEY = re.compile(r"[\s,=]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ACCOUNT_FIELDS = frozenset({"display-name", "id", "keys", "admin"})
_KEY_FIELDS = frozenset({"access-key", "secret-key"})

#: Longest access key id, as AWS allows.
MAX_ACCESS_KEY = 128
#: Longest display name.
MAX_DISPLAY_NAME = 128


class AccountsError(ValueError):
    """The accounts (file) cannot be used; the text says where and why."""


def canonicalIdFor(name: str) -> str:
    """
    The default canonical id of the account called C{name}: a SHA-256 of the
    name, so it is stable across restarts and reloads (but changes if the
    account is renamed; pin it with C{id} to rename safely).
    """
    return hashlib.sha256(b"fasterstore account\x00" + name.encode("utf-8")).hexdigest()


@attrs.frozen
class Account:
    """
    One account.

    @ivar name: the account's name in the file (C{default} for the single
        pair); used in logs.
    @ivar canonicalId: the owner id its buckets are recorded under.
    @ivar displayName: the name shown as the owner's DisplayName.
    @ivar keys: its key pairs, each as the L{Credentials} a request signed
        with it authenticates as.
    @ivar admin: whether its keys may use the node's admin API.
    """

    name: str
    canonicalId: str
    displayName: str
    keys: Tuple[Credentials, ...]
    admin: bool = False

    @classmethod
    def single(cls, credentials: Credentials) -> "Account":
        """
        The account C{default} holding the one configured or generated pair:
        the operator's, so an admin.
        """
        credentials = attrs.evolve(credentials, admin=True)
        return cls(DEFAULT_ACCOUNT, credentials.owner, credentials.displayName, (credentials,), admin=True)


def defaultAccount(accessKey: str, secretKey: str) -> Account:
    """The account C{default} for an explicit single pair (owner and display name as ever)."""
    owner = ownerForAccessKey(accessKey)
    return Account.single(Credentials(accessKey, secretKey, owner, DISPLAY_NAME))


# -- the file ------------------------------------------------------------------


def parseAccounts(document: Mapping[str, Any], source: str) -> Tuple[Account, ...]:
    """
    The accounts in a parsed credentials document, checked field by field
    (cross-account checks are L{checkAccounts}'s).

    @param source: names the document in error messages (its path).
    @raise AccountsError: naming the account and field at fault.
    """
    unknown = sorted(set(document) - {"accounts"})
    if unknown:
        raise AccountsError(f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))} (expected [accounts.NAME] tables)")
    table = document.get("accounts")
    if not isinstance(table, dict) or not table:
        raise AccountsError(f"{source}: no accounts; add at least one [accounts.NAME] table")
    return tuple(_parseAccount(name, raw, source) for name, raw in table.items())


def _parseAccount(name: str, raw: object, source: str) -> Account:
    """One C{[accounts.NAME]} table."""
    where = f"{source}: account {name!r}"
    if not _NAME.match(name):
        raise AccountsError(f"{where}: names are 1-64 letters, digits and . _ @ + - (starting with a letter or digit)")
    if not isinstance(raw, dict):
        raise AccountsError(f"{where}: must be a table ([accounts.{name}])")
    unknown = sorted(set(raw) - _ACCOUNT_FIELDS)
    if unknown:
        raise AccountsError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (known: display-name, id, keys, admin)")

    displayName = raw.get("display-name", name)
    if not isinstance(displayName, str) or not displayName.strip() or _CONTROL.search(displayName):
        raise AccountsError(f"{where}: display-name must be a non-empty string without control characters")
    if len(displayName) > MAX_DISPLAY_NAME:
        raise AccountsError(f"{where}: display-name is longer than {MAX_DISPLAY_NAME} characters")

    canonicalId = raw.get("id", None)
    if canonicalId is None:
        canonicalId = canonicalIdFor(name)
    elif not isinstance(canonicalId, str) or not _CANONICAL_ID.match(canonicalId.lower()):
        raise AccountsError(f"{where}: id must be 64 hexadecimal digits (a canonical user id), not {canonicalId!r}")
    canonicalId = canonicalId.lower()

    if "keys" not in raw:
        raise AccountsError(f"{where}: no keys; give keys = [{{ access-key = \"...\", secret-key = \"...\" }}] (an empty list disables the account)")
    rawKeys = raw["keys"]
    if not isinstance(rawKeys, list):
        raise AccountsError(f"{where}: keys must be a list of {{ access-key, secret-key }} tables")
    admin = raw.get("admin", False)
    if not isinstance(admin, bool):
        raise AccountsError(f"{where}: admin must be true or false")
    keys = tuple(
        attrs.evolve(_parseKey(entry, f"{where}, key #{index + 1}", canonicalId, displayName), admin=admin)
        for index, entry in enumerate(rawKeys)
    )
    return Account(name, canonicalId, displayName, keys, admin)


def _parseKey(raw: object, where: str, owner: str, displayName: str) -> Credentials:
    """One C{{ access-key = ..., secret-key = ... }} entry."""
    if not isinstance(raw, dict):
        raise AccountsError(f"{where}: must be a table {{ access-key = \"...\", secret-key = \"...\" }}")
    unknown = sorted(set(raw) - _KEY_FIELDS)
    if unknown:
        raise AccountsError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (known: access-key, secret-key)")
    accessKey, secretKey = raw.get("access-key"), raw.get("secret-key")
    if not isinstance(accessKey, str) or not accessKey:
        raise AccountsError(f"{where}: access-key must be a non-empty string")
    if _BAD_ACCESS_KEY.search(accessKey) or _CONTROL.search(accessKey):
        raise AccountsError(f"{where}: access-key {accessKey!r} may not contain spaces, control characters, ',' or '='")
    if len(accessKey) > MAX_ACCESS_KEY:
        raise AccountsError(f"{where}: access-key is longer than {MAX_ACCESS_KEY} characters")
    # Never echo a secret, even a wrong one.
    if not isinstance(secretKey, str):
        raise AccountsError(f"{where} ({accessKey}): secret-key must be a string")
    if not secretKey:
        raise AccountsError(f"{where} ({accessKey}): secret-key is empty")
    return Credentials(accessKey=accessKey, secretKey=secretKey, owner=owner, displayName=displayName)


def checkAccounts(accounts: Iterable[Account], source: str) -> Tuple[Account, ...]:
    """
    Cross-account rules: unique names, unique canonical ids, unique access
    keys, and at least one key in all.

    @raise AccountsError: naming both accounts involved.
    """
    accounts = tuple(accounts)
    names: Dict[str, Account] = {}
    ids: Dict[str, Account] = {}
    keys: Dict[str, Account] = {}
    for account in accounts:
        if account.name in names:
            hint = " (the --access-key/--secret-key pair is the account 'default')" if account.name == DEFAULT_ACCOUNT else ""
            raise AccountsError(f"{source}: account {account.name!r} is defined twice{hint}")
        names[account.name] = account
        other = ids.get(account.canonicalId)
        if other is not None:
            raise AccountsError(
                f"{source}: accounts {other.name!r} and {account.name!r} have the same id {account.canonicalId}"
            )
        ids[account.canonicalId] = account
        for credentials in account.keys:
            other = keys.get(credentials.accessKey)
            if other is not None:
                where = "twice in" if other is account else f"in both {other.name!r} and"
                raise AccountsError(f"{source}: access key {credentials.accessKey!r} appears {where} {account.name!r}")
            keys[credentials.accessKey] = account
    if not keys:
        raise AccountsError(f"{source}: no access keys in any account; nobody could sign in")
    return accounts


def readAccountsFile(path: FilePath[str]) -> Tuple[Account, ...]:
    """
    The accounts in the TOML file at C{path}, parsed and checked on their own.

    @raise AccountsError: unreadable, not TOML, or invalid; the text names
        the file.
    """
    try:
        with path.open("r") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise AccountsError(f"cannot read credentials file {path.path}: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AccountsError(f"credentials file {path.path} is not valid TOML: {e}") from e
    return checkAccounts(parseAccounts(document, path.path), path.path)


def loadAccounts(path: Optional[FilePath[str]], single: Optional[Account]) -> Tuple[Account, ...]:
    """
    Every account the server accepts: the file's (if any) and the single
    pair's (if any), checked together.

    @raise AccountsError: as L{readAccountsFile}, or when the single pair
        collides with the file (the account name C{default}, an access key or
        an id).
    """
    fromFile = readAccountsFile(path) if path is not None else ()
    everything = ((single,) if single is not None else ()) + fromFile
    return checkAccounts(everything, path.path if path is not None else "credentials")


# -- the store -------------------------------------------------------------------


def _index(accounts: Iterable[Account]) -> Dict[str, Credentials]:
    """Access key -> credentials, for L{AccountStore.lookup}."""
    return {credentials.accessKey: credentials for account in accounts for credentials in account.keys}


class AccountStore:
    """
    The accounts a server accepts, reloadable.

    L{lookup} is one dict lookup; L{reload} builds a complete new index and
    swaps it in with one assignment, so a request sees either the old set or
    the new one, and a file that fails to load leaves the old set in place.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        path: Optional[FilePath[str]] = None,
        single: Optional[Account] = None,
        log: Optional[Logger] = None,
    ) -> None:
        """
        Use L{fromFile} unless you already hold checked accounts.

        @param accounts: the current accounts, already checked.
        @param path: the credentials file L{reload} re-reads, if any.
        @param single: the account of the single pair, kept across reloads.
        """
        self.path = path
        self.single = single
        self.log = log if log is not None else Logger()
        self._accounts: Tuple[Account, ...] = tuple(accounts)
        self._byKey: Dict[str, Credentials] = _index(self._accounts)

    @classmethod
    def fromFile(
        cls, path: Optional[FilePath[str]], single: Optional[Credentials], log: Optional[Logger] = None
    ) -> "AccountStore":
        """
        Load the accounts of C{path} (if given) and the single pair (if
        given) for a starting server.

        @raise AccountsError: the file cannot be used; at startup that is
            fatal, unlike on L{reload}.
        """
        singleAccount = Account.single(single) if single is not None else None
        store = cls(loadAccounts(path, singleAccount), path, singleAccount, log)
        if path is not None:
            _warnIfWorldReadable(store.log, path)
        return store

    @property
    def accounts(self) -> Tuple[Account, ...]:
        """The current accounts, the single pair's first."""
        return self._accounts

    def lookup(self, accessKey: str) -> Optional[Credentials]:
        """The credentials of C{accessKey} now, or C{None} if it is unknown or revoked."""
        return self._byKey.get(accessKey)

    def reload(self) -> None:
        """
        Re-read the credentials file and switch to its accounts.  On any
        error the previous accounts stay in force and the error is logged:
        a typo never locks everyone out.  Without a file there is nothing to
        reload (the single pair comes from options that need a restart).
        """
        path = self.path
        if path is None:
            self.log.info("No credentials file (--credentials) to reload; the key pair is unchanged")
            return
        try:
            accounts = loadAccounts(path, self.single)
        except AccountsError as e:
            self.log.error("Not reloading accounts, keeping the previous ones: {error}", error=str(e))
            return
        except Exception:
            self.log.failure("Not reloading accounts, keeping the previous ones")
            return
        previous = self._accounts
        self._accounts, self._byKey = accounts, _index(accounts)
        _warnIfWorldReadable(self.log, path)
        self._logChanges(previous, accounts, path)

    def _logChanges(self, old: Tuple[Account, ...], new: Tuple[Account, ...], path: FilePath[str]) -> None:
        """Say what a reload changed: key ids only, never secrets."""
        oldKeys, newKeys = _index(old), _index(new)
        added = sorted(set(newKeys) - set(oldKeys))
        revoked = sorted(set(oldKeys) - set(newKeys))
        changed = sorted(k for k in set(oldKeys) & set(newKeys) if oldKeys[k] != newKeys[k])
        self.log.info(
            "Reloaded {path}: {accounts} accounts, {keys} keys; added {added}, revoked {revoked}, changed {changed}",
            path=path.path,
            accounts=len(new),
            keys=len(newKeys),
            added=", ".join(added) or "none",
            revoked=", ".join(revoked) or "none",
            changed=", ".join(changed) or "none",
        )
        oldIds = {a.name: a.canonicalId for a in old}
        for account in new:
            before = oldIds.get(account.name)
            if before is not None and before != account.canonicalId:
                self.log.warn(
                    "Account {name}'s id changed from {old} to {new}: buckets owned by {old} are no longer its own",
                    name=account.name,
                    old=before,
                    new=account.canonicalId,
                )

    def describe(self) -> str:
        """One line per account (name, id, key ids) for the startup log."""
        return "\n".join(
            f"  {a.name}{' [admin]' if a.admin else ''} (id {a.canonicalId}, display name {a.displayName!r}): "
            f"{', '.join(c.accessKey for c in a.keys) or 'no keys'}"
            for a in self._accounts
        )


def _warnIfWorldReadable(log: Logger, path: FilePath[str]) -> None:
    """Say so if everyone on the machine can read the secrets."""
    try:
        mode = stat.S_IMODE(os.stat(path.path).st_mode)
    except OSError:
        return
    if mode & 0o007:
        log.warn(
            "{path} holds secret keys and other users can access it (mode {mode}); run: chmod o-rwx {path}",
            path=path.path,
            mode=oct(mode),
        )


# -- SIGHUP --------------------------------------------------------------------

_SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]


class SignalReloadService(Service):
    """
    Calls C{reload} on the reactor thread whenever the process receives
    C{signum} (SIGHUP by default), from L{startService} to L{stopService}.

    The handler itself does nothing but C{reactor.callFromThread}, the one
    reactor call that is safe from a signal handler (it is how Twisted
    handles SIGINT and twistd SIGUSR1).  Python only lets the main thread
    install handlers: anywhere else (an embedding application running the
    reactor in a thread) the service logs that and stays inert.  The
    previous handler comes back on stop.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        reload: Callable[[], None],
        signum: Optional[int] = None,
        log: Optional[Logger] = None,
    ) -> None:
        """
        @param signum: the signal; SIGHUP when C{None}.
        """
        self._reactor = reactor
        self._reload = reload
        self.signum = signum if signum is not None else getattr(signal, "SIGHUP", None)
        self._log = log if log is not None else Logger()
        self._installed = False
        self._previous: _SignalHandler = None

    def startService(self) -> None:
        """Install the handler, if this platform and thread allow it."""
        super().startService()
        if self.signum is None:
            self._log.warn("This platform has no SIGHUP; reload the accounts by restarting")
            return
        if threading.current_thread() is not threading.main_thread():
            self._log.warn("Not in the main thread: cannot install a SIGHUP handler; reload the accounts by restarting")
            return
        self._previous = signal.signal(self.signum, self.handleSignal)
        self._installed = True

    def stopService(self) -> None:
        """
        Put the previous handler back.  Where that was the default action
        (terminate), ignore the signal instead: the rest of the server may
        still be draining, and a reload request must not kill it.
        """
        super().stopService()
        if self._installed and self.signum is not None:
            self._installed = False
            previous = self._previous
            if previous is None or previous == signal.SIG_DFL:
                previous = signal.SIG_IGN
            signal.signal(self.signum, previous)

    def handleSignal(self, signum: int, frame: Optional[FrameType]) -> None:
        """The signal handler: hand the reload to the reactor thread."""
        self._reactor.callFromThread(self._reloadNow)

    def _reloadNow(self) -> None:
        """On the reactor thread: reload, never letting an error escape."""
        self._log.info("Received signal {signum}: reloading the accounts", signum=self.signum)
        try:
            self._reload()
        except Exception:
            self._log.failure("Reloading the accounts failed; the previous ones stay in force")


__all__: List[str] = [
    "DEFAULT_ACCOUNT",
    "Account",
    "AccountStore",
    "AccountsError",
    "SignalReloadService",
    "canonicalIdFor",
    "checkAccounts",
    "defaultAccount",
    "loadAccounts",
    "parseAccounts",
    "readAccountsFile",
]
