"""
``autoindex on``: a directory's listing in nginx's HTML, byte for byte
(names escaped in the link and in the text, long names cut at 50
characters, directories first, hidden files left out, sizes exact, times
in GMT), so a client that scrapes nginx's listing reads ours.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Iterable, Protocol
from urllib.parse import quote

__all__ = ["listing"]

_NAME_WIDTH = 50
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# ngx_escape_html: these four only.
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


class _Stat(Protocol):
    def stat(self, path: str) -> os.stat_result: ...


def listing(uri: str, path: str, names: Iterable[str], fs: _Stat) -> bytes:
    """The page for directory ``path`` at ``uri``; an entry that vanished meanwhile is left out."""
    title = uri.translate(_HTML)
    lines = [f"<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n"]
    lines.append(f'<h1>Index of {title}</h1><hr><pre><a href="../">../</a>\r\n')
    entries = []
    for name in names:
        if name.startswith("."):
            continue
        try:
            info = fs.stat(os.path.join(path, name))
        except OSError:
            continue
        entries.append((not stat.S_ISDIR(info.st_mode), name, info))
    for is_file, name, info in sorted(entries, key=lambda e: (e[0], e[1].encode("utf-8", "surrogateescape"))):
        lines.append(_entry(name, not is_file, info))
    lines.append("</pre><hr></body>\r\n</html>\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def _entry(name: str, is_dir: bool, info: os.stat_result) -> str:
    slash = "/" if is_dir else ""
    href = quote(name.encode("utf-8", "surrogateescape"), safe="") + slash
    width = len(name) + len(slash)
    if width > _NAME_WIDTH:
        text, width = name[: _NAME_WIDTH - 3].translate(_HTML) + "..&gt;", _NAME_WIDTH
    else:
        text = name.translate(_HTML) + slash
    t = time.gmtime(info.st_mtime)
    when = f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}"
    size = "-" if is_dir else str(info.st_size)
    return f'<a href="{href}">{text}</a>{" " * (_NAME_WIDTH - width)} {when} {size:>19}\r\n'
