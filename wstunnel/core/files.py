"""
Which file a request gets, as nginx's static, index, autoindex and
try_files handlers decide it: the URI mapped under ``root`` or ``alias``,
``try_files`` tried in order, a directory's index, its listing, or nginx's
301 to the directory with a slash.

Everything is decided from ``stat`` answers of an injected
:class:`FileSystem`, so the decision is tested without a disk; the file is
opened where it is sent (:mod:`wstunnel.net.fileserve`), and its
conditional and range answer is :mod:`wstunnel.core.filereply`'s.  An
internal redirect (an index file, a ``try_files`` URI or ``@name``) runs
location selection again for the new URI, at most ten times, as nginx.
"""

from __future__ import annotations

import os
import stat
from typing import Callable, NamedTuple, Protocol, Union

from wstunnel.config.model import FileSettings, Location, Server
from wstunnel.core.autoindex import listing
from wstunnel.core.compression import static_variant
from wstunnel.core.filereply import FileReply
from wstunnel.core.redirect import counted, moved_target, named_location
from wstunnel.core.routing import Redirect, Router, redirect_url
from wstunnel.core.variables import RequestVars, mapped_path, render
from wstunnel.wire.errors import error_page
from wstunnel.wire.request import ConnInfo, RequestHead

__all__ = [
    "LOCAL_FILES",
    "Elsewhere",
    "FileError",
    "FileOutcome",
    "FileSystem",
    "LocalFiles",
    "Page",
    "ServeFile",
    "page_reply",
    "serve_files",
    "serves_files",
]

_READABLE = (b"GET", b"HEAD")
# What nginx's header filters leave off a file sent under an error code.
_NOT_ON_PAGES = frozenset({b"Last-Modified", b"Accept-Ranges"})


class FileSystem(Protocol):
    """What the decision reads of the disk."""

    def stat(self, path: str) -> os.stat_result: ...

    def listdir(self, path: str) -> list[str]: ...


class LocalFiles:
    """The machine's own file system; symbolic links are followed, as nginx does by default."""

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)


LOCAL_FILES = LocalFiles()


class ServeFile(NamedTuple):
    """
    A file to send: ``path`` is opened and answered where the answer is
    written.  ``status`` is an error page's code (0: the file's own): as
    in nginx, the page is sent whole under it, whatever the request's
    conditional and range headers, without Last-Modified.
    """

    conn: ConnInfo
    location: Location | None
    vars: RequestVars
    path: str
    status: int = 0


def page_reply(serve: ServeFile, head: RequestHead, reply: Callable[[RequestHead], FileReply]) -> FileReply:
    """What ``head`` gets of the file of ``serve``, made by ``reply``: an error page's file whole, under its code."""
    if not serve.status:
        return reply(head)
    plain = RequestHead(head.method, head.target, head.http_version, ())
    whole = reply(plain)
    kept = tuple((name, value) for name, value in whole.headers if name not in _NOT_ON_PAGES)
    return whole._replace(status=serve.status, headers=kept)


class Page(NamedTuple):
    """A whole answer made here: the directory's 301, its listing."""

    vars: RequestVars
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class FileError(NamedTuple):
    vars: RequestVars
    status: int
    detail: str
    level: str = "info"  # of the refusal's log line; a missing file's follows log_not_found


class Elsewhere(NamedTuple):
    """An internal redirect reached a location that proxies or has rewrite or access directives: the dispatch goes on there."""

    location: Location
    vars: RequestVars


FileOutcome = Union[ServeFile, Page, FileError, Elsewhere]


def serves_files(server: Server, found: Location | None) -> bool:
    """Whether the request is the file handlers' business: ``internal``, or no proxy_pass here (a ``return`` has answered already)."""
    if found is None:
        return server.files is not None
    files = found.files
    return files is not None and (files.internal or found.proxy_pass is None)


def serve_files(router: Router, found: Location | None, rv: RequestVars, fs: FileSystem) -> FileOutcome:
    """
    What the request gets from the files of ``found`` (None: its server's,
    no location matched); an ``internal`` one was refused to a client's
    request where it was found.
    """
    return _follow(router, found, rv, fs, False)


def _follow(router: Router, found: Location | None, rv: RequestVars, fs: FileSystem, jumped: bool) -> FileOutcome:
    files = rv.server.files if found is None else found.files
    if found is not None and (found.proxy_pass is not None or (jumped and _phased(found))):
        return Elsewhere(found, rv)
    if files is None:
        return FileError(rv, 404, f"no location for {rv.target.uri!r}")
    step = _content(found, files, rv, fs)
    if not isinstance(step, _Jump):
        return step
    if not counted(rv):
        return FileError(rv, 500, f"rewrite or internal redirection cycle while redirecting to {step.uri!r}")
    return _jump(router, step, rv, fs)


def _phased(found: Location) -> bool:
    """Whether a location an internal redirect reached has rewrite or access phases to run before its content."""
    access = found.access
    return found.rewrites is not None or access.checks or access.limited is not None


class _Jump(NamedTuple):
    """An internal redirect: to a URI (with its arguments) or to a named location."""

    uri: str
    args: str | None


def _jump(router: Router, step: _Jump, rv: RequestVars, fs: FileSystem) -> FileOutcome:
    if step.uri.startswith("@"):
        named = named_location(rv.server, step.uri)
        if named is None:
            return FileError(rv, 500, f"could not find named location {step.uri!r}")
        return _follow(router, named, _moved(rv, named, None, None), fs, True)
    found, matches = router.locate(rv.server, step.uri)
    if isinstance(found, Redirect):
        found = found.location
    moved = _moved(rv, found, step.uri, step.args)
    for match in matches:
        moved.captured(match)
    return _follow(router, found, moved, fs, True)


def _moved(rv: RequestVars, location: Location | None, uri: str | None, args: str | None) -> RequestVars:
    """The request's variables after an internal redirect; a named location keeps the URI, ``args`` None the arguments."""
    target = rv.target if uri is None else moved_target(rv.target, uri, args)
    moved = RequestVars(
        config=rv.config, server=rv.server, location=location, conn=rv.conn, head=rv.head, target=target, host=rv.host
    )
    moved.carry_on(rv)
    return moved


def _content(found: Location | None, files: FileSettings, rv: RequestVars, fs: FileSystem) -> FileOutcome | _Jump:
    """nginx's content phase for one location: try_files first, then the index, listing or file."""
    uri = rv.target.uri
    if files.try_files:
        tried = _try_files(found, files, rv, fs)
        if not isinstance(tried, str):
            return tried
        if tried != uri:
            # As in nginx, the file try_files found is the request's $uri from here on.
            rv.retarget(moved_target(rv.target, tried, None))
        uri = tried
    if rv.head.method not in _READABLE:
        return FileError(rv, 405, f"{rv.head.method.decode('latin-1')} of a file")
    if uri.endswith("/"):
        return _directory(found, files, rv, fs, uri)
    return _file(found, files, rv, fs, uri)


def _try_files(found: Location | None, files: FileSettings, rv: RequestVars, fs: FileSystem) -> str | FileError | _Jump:
    """The first candidate that exists (its URI), else the last argument: ``=code``, ``@name`` or a URI."""
    *candidates, last = files.try_files
    for candidate in candidates:
        name = render(candidate, rv)
        want_dir = name.endswith("/")
        path = mapped_path(found, files, rv, name)
        found_stat = _stat(fs, path.rstrip("/") if want_dir and len(path) > 1 else path)
        if isinstance(found_stat, os.stat_result) and stat.S_ISDIR(found_stat.st_mode) == want_dir:
            return name
    fallback = render(last, rv)
    if fallback.startswith("=") and fallback[1:].isdigit():
        return FileError(rv, int(fallback[1:]), f"try_files ended in {fallback}")
    if fallback.startswith("@"):
        return _Jump(fallback, None)
    uri, mark, args = fallback.partition("?")
    return _Jump(uri, args if mark else None)


def _directory(found: Location | None, files: FileSettings, rv: RequestVars, fs: FileSystem, uri: str) -> FileOutcome | _Jump:
    """A URI ending in "/": the first index that exists, else the listing (autoindex) or 403."""
    path = mapped_path(found, files, rv, uri)
    for name in files.index:
        index = render(name, rv)
        if index.startswith("/"):
            return _Jump(index, None)
        if isinstance(_stat(fs, path + index), os.stat_result):
            return _Jump(uri + index, None)
    found_stat = _stat(fs, path.rstrip("/") or "/")
    if not isinstance(found_stat, os.stat_result):
        return FileError(rv, found_stat, f'"{path}" is not found')
    if not stat.S_ISDIR(found_stat.st_mode):
        return FileError(rv, 404, f'"{path}" is not a directory')
    if not files.autoindex:
        return FileError(rv, 403, f'directory index of "{path}" is forbidden')
    try:
        names = fs.listdir(path)
    except OSError as exc:
        return FileError(rv, 403, f'opendir() "{path}" failed ({exc.strerror})')
    body = listing(uri, path, names, fs)
    return Page(rv, 200, ((b"Content-Type", b"text/html"),), body)


def _file(found: Location | None, files: FileSettings, rv: RequestVars, fs: FileSystem, uri: str) -> FileOutcome:
    """A file's URI: the file, or nginx's 301 to the directory's URI with a slash."""
    path = mapped_path(found, files, rv, uri)
    found_stat = _stat(fs, path)
    if not isinstance(found_stat, os.stat_result):
        if found_stat == 404 and _lone_sibling(found, rv, fs, path):
            return ServeFile(rv.conn, found, rv, path)
        if found_stat == 404:
            level = "error" if files.log_not_found else ""
            return FileError(rv, 404, f'open() "{path}" failed (2: No such file or directory)', level)
        return FileError(rv, found_stat, f'open() "{path}" failed')
    if stat.S_ISDIR(found_stat.st_mode):
        url = redirect_url(rv.target, rv.conn, rv.host)
        headers = ((b"Location", url.encode("latin-1")), (b"Content-Type", b"text/html"))
        return Page(rv, 301, headers, error_page(301))
    if not stat.S_ISREG(found_stat.st_mode):
        return FileError(rv, 404, f'"{path}" is not a regular file')
    return ServeFile(rv.conn, found, rv, path)


def _lone_sibling(found: Location | None, rv: RequestVars, fs: FileSystem, path: str) -> bool:
    """nginx's gzip_static handler runs first: a client it serves gets ``x.gz`` for ``/x`` even without ``x``."""
    variant = None if found is None else static_variant(found.gzip, rv.head, path)
    if variant is None or not variant.serve:
        return False
    sibling = _stat(fs, path + ".gz")
    return isinstance(sibling, os.stat_result) and stat.S_ISREG(sibling.st_mode)


def _stat(fs: FileSystem, path: str) -> os.stat_result | int:
    """The file's stat, or the status its absence means: 403 when a directory may not be searched."""
    if not path or "\0" in path:
        return 404
    try:
        return fs.stat(path)
    except PermissionError:
        return 403
    except (OSError, ValueError):
        return 404
