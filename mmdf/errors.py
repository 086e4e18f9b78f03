"""User-facing errors.

Anything a user can fix (a bad config key, a malformed label file, a missing
clip) raises :class:`MmdfError`; the command line prints its message without a
traceback and exits with status 2. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

from typing import Iterable


class MmdfError(Exception):
    """An input problem the user can fix; the message says what and where."""


class ConfigError(MmdfError):
    """A config file or override is wrong (unknown key, bad type, missing base)."""


class LabelError(MmdfError):
    """A label file is malformed or does not match the clip folder."""


def list_offenders(items: Iterable[str], limit: int = 5) -> str:
    """Format at most ``limit`` offenders and the total, e.g. ``'a', 'b' (2 in all)``.

    Errors about many rows must stay readable: show a handful, count the rest.
    """
    items = list(items)
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items)} in all)" if len(items) > limit else f" ({len(items)} in all)"
    return shown + more


def not_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, for an error that names the file: 'not UTF-8 text (byte 0xe9 on line 3; ...)'."""
    line = data[: exc.start].count(b"\n") + 1
    return f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}; Latin-1 or another legacy encoding?)"
