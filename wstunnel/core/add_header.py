"""
``add_header``: the headers a location adds to the client's response,
on top of the upstream's (never replacing them) or on wstunnel's own
answers.  nginx adds them only to the statuses below unless ``always`` is
given; a 101 is not among them, so a tunnel's 101 gets only ``always``
ones.  An empty rendered value adds nothing.
"""

from __future__ import annotations

import re
from typing import Sequence

from wstunnel.config.model import AddedHeader
from wstunnel.core.variables import RequestVars, render

__all__ = ["ADDED_STATUSES", "added_headers"]

ADDED_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
# A CR or LF from a variable would start a header line of its own; such a
# value is never written.
_BAD_VALUE = re.compile(r"[\x00\r\n\x0b\x0c]")


def added_headers(entries: Sequence[AddedHeader], status: int, rv: RequestVars) -> list[tuple[bytes, bytes]]:
    """The ``(name, value)`` pairs ``entries`` add to an answer of ``status``."""
    if not entries:
        return []
    every = status in ADDED_STATUSES
    out = []
    for entry in entries:
        if not (every or entry.always):
            continue
        text = render(entry.value, rv)
        if text and not _BAD_VALUE.search(text):
            out.append((entry.name, text.encode("latin-1", "replace")))
    return out
