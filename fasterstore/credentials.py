"""
The server's single access key pair: given explicitly, or generated on first
start and kept in C{<data-dir>/credentials.json} (mode 0600) so that a restart
does not lock clients out.  Several accounts come from a C{--credentials}
file instead (L{fasterstore.accounts}); this pair then joins them as the
account C{default} when it is given explicitly.
Tests: tests/unit/test_credentials.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
import string
from typing import Optional, Tuple

from twisted.logger import Logger
from twisted.python.filepath import FilePath

from fasterstore.durable import syncDirectory
from fasterstore.files import makePrivateDirectory, openPrivateFile
from fasterstore.auth.identity import Credentials

CREDENTIALS_FILE = "credentials.json"
DISPLAY_NAME = "fasterstore"

# AWS's own shape: 20 upper-case alphanumerics for the key id, 40 characters
# for the secret (alphanumeric only, so it survives shells, URLs and
# double-click copying).  secrets.choice draws from the OS CSPRNG: log2(36)*20 and
# log2(62)*40 bits, far past guessing.
_ACCESS_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


class CredentialsError(Exception):
    """The credentials file exists but cannot be used; the text says why."""


def ownerForAccessKey(accessKey: str) -> str:
    """
    The canonical owner id of the single pair: the SHA-256 of its access key,
    stable across restarts and never revealing the secret.  An account in a
    C{--credentials} file can take over that pair's buckets by giving this as
    its C{id}.
    """
    return hashlib.sha256(accessKey.encode("utf-8")).hexdigest()


def makeCredentials(accessKey: str, secretKey: str) -> Credentials:
    """L{Credentials} for the single key pair, owned by L{ownerForAccessKey}."""
    return Credentials(
        accessKey=accessKey, secretKey=secretKey, owner=ownerForAccessKey(accessKey), displayName=DISPLAY_NAME
    )


def storedCredentials(dataDir: FilePath[str]) -> Optional[Credentials]:
    """
    The pair kept in C{<dataDir>/credentials.json}, if there is one; never
    generates.  Used to tell an operator who switched to C{--credentials}
    which owner id the old pair's buckets belong to.

    @raise CredentialsError: the file exists but is unreadable or malformed.
    """
    path = dataDir.child(CREDENTIALS_FILE)
    if not path.exists():
        return None
    return makeCredentials(*_read(path))


def generateKeyPair() -> Tuple[str, str]:
    """A fresh, strong (access key, secret key) pair."""
    accessKey = "".join(secrets.choice(_ACCESS_ALPHABET) for _ in range(20))
    secretKey = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return accessKey, secretKey


def loadOrCreateCredentials(
    dataDir: FilePath[str],
    accessKey: Optional[str],
    secretKey: Optional[str],
    log: Logger,
) -> Credentials:
    """
    The credentials the server accepts.

    Explicit keys win and are never written to disk.  Otherwise the pair in
    C{<dataDir>/credentials.json} is used, or a new one is generated, stored
    (created atomically and exclusively, mode 0600, so two servers starting at
    once agree on one pair) and logged once in a banner, because it is the
    only way the operator learns it.

    @raise ValueError: only one of C{accessKey} and C{secretKey} is given.
    @raise CredentialsError: the stored file is unreadable or malformed.
    """
    if (accessKey is None) != (secretKey is None):
        raise ValueError("give both an access key and a secret key, or neither")
    if accessKey is not None and secretKey is not None:
        log.info("Using the access key given in the configuration: {accessKey}", accessKey=accessKey)
        return makeCredentials(accessKey, secretKey)

    path = dataDir.child(CREDENTIALS_FILE)
    if not path.exists():
        makePrivateDirectory(dataDir.path)
        newAccess, newSecret = generateKeyPair()
        if _createExclusively(path, _encode(newAccess, newSecret)):
            _logBanner(log, path, newAccess, newSecret)
            return makeCredentials(newAccess, newSecret)
        # Another process won the race; fall through and use its pair.
    stored = _read(path)
    _warnIfExposed(log, path)
    log.info("Using the access key stored in {path}: {accessKey}", path=path.path, accessKey=stored[0])
    return makeCredentials(*stored)


def _encode(accessKey: str, secretKey: str) -> bytes:
    """The file's content: small, human-readable JSON."""
    document = {"accessKey": accessKey, "secretKey": secretKey}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _writeNewFile(path: str, content: bytes) -> None:
    """Create C{path} (it must not exist), private (0600), with C{content}, fsynced."""
    fd = openPrivateFile(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _createExclusively(path: FilePath[str], content: bytes) -> bool:
    """
    Create C{path} holding C{content}, all or nothing: write a private
    temporary file (O_EXCL, 0600), fsync it, then hard-link it into place
    (which fails if the name exists) and fsync the directory.  A crash never
    leaves a half-written credentials file behind.

    @return: C{True} if we created it, C{False} if it already existed.
    """
    temporary = path.siblingExtension(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _writeNewFile(temporary.path, content)
    try:
        try:
            os.link(temporary.path, path.path)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # A filesystem without hard links: fall back to an exclusive
            # create (a crash could leave it short; a later start reports
            # the file as corrupt rather than using it).
            try:
                _writeNewFile(path.path, content)
            except FileExistsError:
                return False
    finally:
        os.unlink(temporary.path)
    syncDirectory(path.parent().path)
    return True


def _read(path: FilePath[str]) -> Tuple[str, str]:
    """The (access key, secret key) stored in C{path}."""
    try:
        document = json.loads(path.getContent().decode("utf-8"))
    except OSError as e:
        raise CredentialsError(f"cannot read {path.path}: {e.strerror or e}") from e
    except ValueError as e:
        raise CredentialsError(f"{path.path} is not valid JSON ({e}); fix it or remove it to generate new keys") from e
    if not isinstance(document, dict):
        raise CredentialsError(f"{path.path} must hold a JSON object with accessKey and secretKey")
    accessKey, secretKey = document.get("accessKey"), document.get("secretKey")
    if not (isinstance(accessKey, str) and accessKey and isinstance(secretKey, str) and secretKey):
        raise CredentialsError(f"{path.path} must hold non-empty strings accessKey and secretKey")
    return accessKey, secretKey


def _warnIfExposed(log: Logger, path: FilePath[str]) -> None:
    """Say so if someone loosened the file's permissions: it holds a secret."""
    mode = stat.S_IMODE(os.stat(path.path).st_mode)
    if mode & 0o077:
        log.warn(
            "{path} is readable by other users (mode {mode}); run: chmod 600 {path}",
            path=path.path,
            mode=oct(mode),
        )


def _logBanner(log: Logger, path: FilePath[str], accessKey: str, secretKey: str) -> None:
    """The one time the generated secret is shown."""
    rule = "=" * 68
    log.warn(
        "\n{rule}\n"
        "FasterStore generated credentials for this data directory.\n"
        "This is the only time they are logged; they are kept in {path}.\n"
        "\n"
        "    AWS_ACCESS_KEY_ID={accessKey}\n"
        "    AWS_SECRET_ACCESS_KEY={secretKey}\n"
        "\n"
        "Set --access-key/--secret-key (or FASTERSTORE_ACCESS_KEY and\n"
        "FASTERSTORE_SECRET_KEY) to choose your own.\n"
        "{rule}",
        rule=rule,
        path=path.path,
        accessKey=accessKey,
        secretKey=secretKey,
    )
