"""
Incremental digests of object bytes, for ETags, content addresses and the
S3 ``x-amz-checksum-*`` family.

Every hasher here runs its inner loop in C or Rust (hashlib, zlib, blake3,
awscrt), so hashing a 1 MiB record costs microseconds of Python; callers run
L{Digests.update} in a worker thread, never on the reactor.
Tests: tests/unit/test_checksums.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Callable, Dict, Iterable, Protocol, Tuple, Union

import attrs
import blake3
from awscrt import checksums as _crt

Buffer = Union[bytes, bytearray, memoryview]

# The optional S3 checksum algorithms, as named in x-amz-checksum-<name>.
ALGORITHMS: Tuple[str, ...] = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")

# Always computed: md5 for the ETag, blake3 for the content address.
ALWAYS: Tuple[str, ...] = ("md5", "blake3")


class Hasher(Protocol):
    """The part of the hashlib interface that L{Digests} needs."""

    def update(self, data: Buffer, /) -> object:
        """Feed more bytes."""

    def digest(self) -> bytes:
        """The raw digest of everything fed so far."""


@attrs.define(eq=False)
class CRCHasher:
    """
    A running CRC with the hashlib interface.

    @ivar function: C{f(data, previous) -> int}, continuing a running CRC.
    @ivar width: digest size in bytes (4 or 8); S3 base64-encodes the CRC as
        this many big-endian bytes.
    """

    function: Callable[[Buffer, int], int]
    width: int
    value: int = 0

    def update(self, data: Buffer) -> None:
        self.value = self.function(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self.width, "big")


def _zlibCRC32(data: Buffer, previous: int) -> int:
    return zlib.crc32(data, previous)


def _crc32c(data: Buffer, previous: int) -> int:
    return int(_crt.crc32c(data, previous))


def _crc64nvme(data: Buffer, previous: int) -> int:
    return int(_crt.crc64nvme(data, previous))


def _blake3() -> Hasher:
    # One thread: parallelism comes from many uploads, not one hash.
    return blake3.blake3(max_threads=1)


_FACTORIES: Dict[str, Callable[[], Hasher]] = {
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
    "blake3": _blake3,
    "crc32": lambda: CRCHasher(_zlibCRC32, 4),
    "crc32c": lambda: CRCHasher(_crc32c, 4),
    "crc64nvme": lambda: CRCHasher(_crc64nvme, 8),
}


def newHasher(algorithm: str) -> Hasher:
    """
    A fresh hasher for one algorithm name (lower case, as in L{ALGORITHMS}).

    @raise ValueError: for an unknown name.
    """
    try:
        factory = _FACTORIES[algorithm]
    except KeyError:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}") from None
    return factory()


class Digests:
    """
    Several digests of one byte stream, fed once.

    Always includes C{md5} and C{blake3}.  Not thread-safe: feed each hasher
    from one thread at a time (see L{split}).
    """

    def __init__(self, algorithms: Iterable[str] = ()) -> None:
        names = list(ALWAYS)
        for name in algorithms:
            if name not in names:
                names.append(name)
        self._hashers: Dict[str, Hasher] = {name: newHasher(name) for name in names}

    @property
    def algorithms(self) -> Tuple[str, ...]:
        """The algorithm names computed, C{md5} and C{blake3} first."""
        return tuple(self._hashers)

    def update(self, data: Buffer) -> None:
        """Feed the next bytes of the stream to every hasher."""
        for hasher in self._hashers.values():
            hasher.update(data)

    def split(self, name: str) -> Tuple[Callable[[Buffer], object], Callable[[Buffer], object]]:
        """
        Two feeders that together do what L{update} does: one for hasher
        C{name} alone, one for all the others.  Each may run on its own
        thread (every hasher here releases the GIL on large inputs), so the
        slowest hash need not wait for the rest.
        """
        alone = self._hashers[name]
        others = [hasher for other, hasher in self._hashers.items() if other != name]

        def updateOthers(data: Buffer) -> None:
            for hasher in others:
                hasher.update(data)

        return alone.update, updateOthers

    def result(self) -> Dict[str, bytes]:
        """
        Raw digests by algorithm name; CRCs as big-endian bytes.

        Does not reset anything: calling it again after more L{update}s gives
        the digests of the longer stream.
        """
        return {name: hasher.digest() for name, hasher in self._hashers.items()}


def toBase64(raw: bytes) -> str:
    """Encode a raw digest the way S3 headers carry it (Content-MD5, x-amz-checksum-*)."""
    return base64.b64encode(raw).decode("ascii")


def fromBase64(text: Union[str, bytes]) -> bytes:
    """
    Decode a digest from an S3 header.

    @raise ValueError: if C{text} is not strict base64.
    """
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(f"not base64: {text!r}") from e
