"""
auth_basic_user_file read from disk.  nginx reads the file at every
request, so an edit takes effect at once; here the parsed table is kept and
re-read when the file's mtime, size or inode change, which keeps that
promise without parsing the file per request.  Lines of an unknown password
format are logged once per version of the file, with file:line.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

from wstunnel.core.htpasswd import UserTable, parse_users

__all__ = ["UserFileCache"]


class UserFileCache:
    """The htpasswd tables of one runtime, by path."""

    log = Logger()

    def __init__(self) -> None:
        self._tables: dict[str, tuple[tuple[int, int, int], UserTable]] = {}

    def table(self, path: str) -> UserTable | OSError:
        """The file's table as it is now on disk, or the error reading it."""
        try:
            stat = os.stat(path)
            version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            kept = self._tables.get(path)
            if kept is not None and kept[0] == version:
                return kept[1]
            with open(path, "rb") as file:
                table = parse_users(file.read())
        except OSError as exc:
            self._tables.pop(path, None)
            self.log.error('open() "{path}" failed: {error}', path=path, error=exc.strerror)
            return exc
        for line in table.unknown:
            self.log.warn("{path}:{line}: unknown password format in auth_basic_user_file", path=path, line=line)
        self._tables[path] = (version, table)
        return table
