"""The first difference between two nested records: how a stale cache or a changed resume config is named."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

ABSENT = "<absent>"


def first_difference(
    a: dict[str, Any], b: dict[str, Any], ignore: Collection[str] = (), prefix: str = ""
) -> tuple[str, Any, Any] | None:
    """(dotted key, value in a, value in b) of the first differing leaf in sorted key order, else None.

    Dotted keys in `ignore` are skipped; a key missing on one side is ABSENT.
    """
    for key in sorted(set(a) | set(b)):
        dotted = f"{prefix}{key}"
        if dotted in ignore:
            continue
        x, y = a.get(key, ABSENT), b.get(key, ABSENT)
        if isinstance(x, dict) and isinstance(y, dict):
            found = first_difference(x, y, ignore, f"{dotted}.")
            if found:
                return found
        elif x != y:
            return dotted, x, y
    return None
