"""
Listing pages over an ordered key space, for any backend that can read a
key range in order.

A backend supplies two range reads (L{FromKey}, L{AfterRow}).  L{walk} turns that into listing
entries, jumping over each common prefix with one new scan instead of
reading the keys under it, so a page costs O(entries returned) scans of
bounded size whatever the bucket holds.
Tests: tests/unit/test_metadata_store.py.
"""

from __future__ import annotations

from typing import Callable, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

import attrs

_MAX_CHAR = "\U0010ffff"

Row = TypeVar("Row")

Rows = Sequence[Tuple[str, Row]]

#: C{fromKey(key, inclusive, limit)}: up to C{limit} rows C{(key, row)}
#: from C{key} on, in order.
FromKey = Callable[[str, bool, int], Rows[Row]]

#: C{afterRow(key, row, limit)}: up to C{limit} rows after C{row}, in order
#: (for a key space where one key has several rows).
AfterRow = Callable[[str, Row, int], Rows[Row]]


def commonPrefix(key: str, prefix: str, delimiter: str) -> Optional[str]:
    """
    The CommonPrefixes entry C{key} rolls up into: C{key} up to and
    including the first C{delimiter} after C{prefix}; None if it has none.
    """
    i = key.find(delimiter, len(prefix))
    return key[: i + len(delimiter)] if i >= 0 else None


def prefixSuccessor(prefix: str) -> Optional[str]:
    """
    The smallest string greater than every string starting with C{prefix},
    or C{None} if there is none.
    """
    stripped = prefix.rstrip(_MAX_CHAR)
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000  # no key holds a lone surrogate: skip them
    return stripped[:-1] + chr(following)


@attrs.frozen
class Entries(Generic[Row]):
    """
    The first entries of a listing: rows, and common prefixes as C{str}.

    @ivar truncated: whether more entries follow.
    """

    entries: List[Union[str, Row]]
    truncated: bool


def walk(
    fromKey: FromKey[Row],
    afterRow: AfterRow[Row],
    prefix: str,
    delimiter: str,
    after: str,
    limit: int,
    *,
    first: Optional[Callable[[int], Rows[Row]]] = None,
    skip: Optional[Callable[[str, Row], bool]] = None,
) -> Entries[Row]:
    """
    The first C{limit} entries greater than C{after}: each row whose key
    starts with C{prefix}, except that keys holding C{delimiter} after the
    prefix roll into one common prefix (a C{str} entry), itself returned
    only when greater than C{after}.

    @param first: the first scan, when the walk does not start at
        C{max(after, prefix)} (a marker inside one key's rows).
    @param skip: rows to leave out (not counted).
    """
    found: List[Union[str, Row]] = []
    if limit <= 0:
        return Entries(found, False)
    # One row more than a page: a full page learns whether it is truncated
    # without a second scan.
    batch = min(limit + 1, 1001)
    if first is None:
        start = max(after, prefix)
        inclusive = start != after

        def first(n: int) -> Rows[Row]:
            return fromKey(start, inclusive, n)

    rows = first(batch)
    while True:
        jumped = False
        for key, row in rows:
            if not key.startswith(prefix):
                return Entries(found, False)
            if delimiter:
                common = commonPrefix(key, prefix, delimiter)
                if common is not None:
                    if common > after:
                        if len(found) == limit:
                            return Entries(found, True)
                        found.append(common)
                    following = prefixSuccessor(common)
                    if following is None:
                        return Entries(found, False)
                    rows, jumped = fromKey(following, True, batch), True
                    break
            if skip is not None and skip(key, row):
                continue
            if len(found) == limit:
                return Entries(found, True)
            found.append(row)
        if not jumped:
            if len(rows) < batch:
                return Entries(found, False)
            rows = afterRow(rows[-1][0], rows[-1][1], batch)
