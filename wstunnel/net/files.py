"""
The filesystem answers to ``if``'s file tests, injected into the sans-IO
core (:func:`wstunnel.core.dispatch.prepare`), as nginx's ``open_file_info``
gives them: ``-f`` a regular file, ``-d`` a directory, ``-e`` either (or
a link), ``-x`` the owner's execute bit.  Symbolic links are followed.
"""

from __future__ import annotations

import os
import stat

__all__ = ["file_test"]


def file_test(test: str, path: str) -> bool:
    """Whether ``path`` passes ``test`` (``-f``, ``-d``, ``-e``, ``-x``); a path that cannot be read about fails it."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    if test == "-f":
        return stat.S_ISREG(mode)
    if test == "-d":
        return stat.S_ISDIR(mode)
    if test == "-x":
        return bool(mode & stat.S_IXUSR)
    return True
