"""net.userfiles: htpasswd tables kept parsed, re-read when the file changes, unknown lines logged once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from wstunnel.net.userfiles import UserFileCache


def test_the_table_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_bytes(b"alice:{PLAIN}one\n")
    cache = UserFileCache()
    first = cache.table(str(path))
    assert not isinstance(first, OSError) and first.users == {b"alice": b"{PLAIN}one"}
    assert cache.table(str(path)) is first
    path.write_bytes(b"alice:{PLAIN}two\nbob:{PLAIN}three\n")
    os.utime(path, ns=(1, 1))
    second = cache.table(str(path))
    assert not isinstance(second, OSError) and second.users[b"alice"] == b"{PLAIN}two"


def test_a_missing_file_is_its_error(tmp_path: Path) -> None:
    missing = UserFileCache().table(str(tmp_path / "nothere"))
    assert isinstance(missing, OSError) and missing.errno == errno.ENOENT


def test_an_unknown_format_is_logged_once_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_bytes(b"# users\nalice:{MD5}abc\nbob:{PLAIN}x\n")
    events: list[dict] = []
    cache = UserFileCache()
    globalLogPublisher.addObserver(events.append)
    try:
        for _ in range(3):
            cache.table(str(path))
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [formatEvent(e) for e in events if e["log_level"] is LogLevel.warn]
    assert warnings == [f"{path}:2: unknown password format in auth_basic_user_file"]
