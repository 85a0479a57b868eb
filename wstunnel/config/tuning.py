"""
Directives whose only effect in nginx is buffering, caching or tuning, where
what wstunnel does anyway is a correct answer (it streams both ways, caches
nothing, needs no hash sizes).  Each is accepted where nginx accepts it, its
arguments are checked as nginx checks them, and it leaves one notice at its
``file:line`` saying what wstunnel does instead, so that nothing is ignored
silently.  A directive that changes routing, responses or security never
belongs here: skipping it would change what is proxied.
"""

from __future__ import annotations

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError
from wstunnel.config.read import Stmt
from wstunnel.config.read import flag as on_off
from wstunnel.config.units import parse_size, parse_time
from wstunnel.config.walk import Load

__all__ = [
    "HANDLERS",
    "INSTEAD",
    "accepted",
    "aio",
    "buffers",
    "chunked_transfer_encoding",
    "flag",
    "ignore_headers",
    "keepalive_disable",
    "number",
    "size",
    "temp_path",
    "duration",
]

_STREAMED = "responses are streamed to the client as they arrive, paced by the client (as with proxy_buffering off)"
_NO_TEMP_FILES = "bodies are streamed, never written to temporary files"
_NO_CACHE = "nothing is cached: every request goes to the upstream"
_NO_HASH = "names are looked up in hash tables that need no sizing"
_NO_FILES = "each request opens and stats its file again; nothing about files is cached"
_FILE_READS = "files are read in 64 KiB pieces as the client drains them (sendfile on plain TCP connections)"

# What wstunnel does instead, for the notice of each directive.
INSTEAD: dict[str, str] = {
    "proxy_buffering": _STREAMED,
    "proxy_request_buffering": "request bodies are streamed to the upstream as they arrive "
    "(as with proxy_request_buffering off)",
    "proxy_buffers": _STREAMED + "; only proxy_buffer_size (the largest response head) applies",
    "proxy_busy_buffers_size": _STREAMED,
    "proxy_max_temp_file_size": _NO_TEMP_FILES,
    "proxy_temp_file_write_size": _NO_TEMP_FILES,
    **{f"{kind}_temp_path": _NO_TEMP_FILES for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")},
    **{
        name: _NO_CACHE
        for name in (
            "proxy_cache", "proxy_cache_background_update", "proxy_cache_bypass", "proxy_cache_convert_head",
            "proxy_cache_key", "proxy_cache_lock", "proxy_cache_lock_age", "proxy_cache_lock_timeout",
            "proxy_cache_max_range_offset", "proxy_cache_methods", "proxy_cache_min_uses", "proxy_cache_path",
            "proxy_cache_revalidate", "proxy_cache_use_stale", "proxy_cache_valid", "proxy_no_cache",
        )
    },
    "sendfile": "files go out with sendfile on plain TCP connections and are read in 64 KiB pieces "
    "over TLS, whatever this says; proxied bodies are written from memory as they arrive",
    "tcp_nopush": "responses are written as they arrive, without TCP_CORK",
    "tcp_nodelay": "TCP_NODELAY is always set, on client and upstream connections (as with tcp_nodelay on)",
    **{
        f"{table}_hash_{part}_size": _NO_HASH
        for table in ("server_names", "map", "types", "variables", "proxy_headers")
        for part in ("bucket", "max")
    },
    **{
        name: _NO_FILES
        for name in ("open_file_cache", "open_file_cache_errors", "open_file_cache_min_uses", "open_file_cache_valid")
    },
    "reset_timedout_connection": "a client that stops reading past send_timeout is aborted at once, "
    "dropping what it did not read; the other timeouts close the connection",
    "chunked_transfer_encoding": "a response of unknown length to an HTTP/1.1 client is sent chunked "
    "(as with chunked_transfer_encoding on)",
    "keepalive_disable": "keep-alive is never disabled by browser; "
    "keepalive_timeout and keepalive_requests apply to every client",
    "client_body_buffer_size": "request bodies are streamed to the upstream as they arrive, "
    "never held in a buffer of this size or written to a file",
    "sendfile_max_chunk": "files go out 64 KiB at a time, one piece per drain of the socket",
    "aio": _FILE_READS,
    "aio_write": _FILE_READS,
    "directio": _FILE_READS,
    "directio_alignment": _FILE_READS,
    "read_ahead": _FILE_READS,
    "proxy_ignore_headers": "wstunnel acts on none of these upstream headers: nothing is cached, and "
    "X-Accel-Redirect, X-Accel-Limit-Rate, X-Accel-Buffering and X-Accel-Charset are hidden from the client "
    "without effect, as if every one were listed here",
    "output_buffers": "responses are written as they arrive; there are no output buffers to size",
    "postpone_output": "responses are written as they arrive, never held back to fill a packet",
    "proxy_ignore_client_abort": "when the client goes, wstunnel closes the upstream connection, "
    "and a tunnel ends both ways (as with proxy_ignore_client_abort off)",
}

_IGNORABLE = frozenset({
    "x-accel-redirect", "x-accel-expires", "x-accel-limit-rate", "x-accel-buffering", "x-accel-charset",
    "expires", "cache-control", "set-cookie", "vary",
})
_KEEPALIVE_BROWSERS = frozenset({"none", "msie6", "safari"})


def _notice(load: Load, stmt: Stmt) -> None:
    load.notices.append(f'{stmt.source}: "{stmt.name}" has no effect in wstunnel: {INSTEAD[stmt.name]}')


def _invalid(stmt: Stmt, what: str) -> ConfigError:
    """nginx's wording for a value its slot function refuses."""
    return ConfigError(stmt.source, f'"{stmt.name}" directive invalid {what}')


def _check_size(stmt: Stmt, text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise _invalid(stmt, "value") from None


def accepted(load: Load, stmt: Stmt, level: Level) -> None:
    """Arguments nginx reads at run time (zones, keys, conditions): only counted, by the table."""
    _notice(load, stmt)


def flag(load: Load, stmt: Stmt, level: Level) -> None:
    on_off(stmt)
    _notice(load, stmt)


def size(load: Load, stmt: Stmt, level: Level) -> None:
    _check_size(stmt, stmt.args[0])
    _notice(load, stmt)


def duration(load: Load, stmt: Stmt, level: Level) -> None:
    try:
        parse_time(stmt.args[0])
    except ValueError:
        raise _invalid(stmt, "value") from None
    _notice(load, stmt)


def number(load: Load, stmt: Stmt, level: Level) -> None:
    if not stmt.args[0].isdigit():
        raise _invalid(stmt, "number")
    _notice(load, stmt)


def buffers(load: Load, stmt: Stmt, level: Level) -> None:
    """``proxy_buffers NUMBER SIZE``: both above zero."""
    count, each = stmt.args
    if not count.isdigit() or int(count) == 0 or _check_size(stmt, each) == 0:
        raise _invalid(stmt, "value")
    _notice(load, stmt)


def temp_path(load: Load, stmt: Stmt, level: Level) -> None:
    """``*_temp_path PATH [LEVEL1 [LEVEL2 [LEVEL3]]]``: the levels are numbers above zero."""
    if any(not text.isdigit() or int(text) == 0 for text in stmt.args[1:]):
        raise _invalid(stmt, "value")
    _notice(load, stmt)


def chunked_transfer_encoding(load: Load, stmt: Stmt, level: Level) -> None:
    """``off`` changes responses (no chunking, so a close ends them): refused, not ignored."""
    if not on_off(stmt):
        raise ConfigError(
            stmt.source,
            '"chunked_transfer_encoding off" is not supported by wstunnel: '
            "a response of unknown length to an HTTP/1.1 client is always sent chunked",
        )
    _notice(load, stmt)


def aio(load: Load, stmt: Stmt, level: Level) -> None:
    """``aio on | off | threads[=pool]``."""
    value = stmt.args[0]
    if value not in ("on", "off", "threads") and not value.startswith("threads="):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    _notice(load, stmt)


def ignore_headers(load: Load, stmt: Stmt, level: Level) -> None:
    """``proxy_ignore_headers FIELD ...``: nginx's list of the headers it may ignore, without case."""
    for value in stmt.args:
        if value.lower() not in _IGNORABLE:
            raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    _notice(load, stmt)


def keepalive_disable(load: Load, stmt: Stmt, level: Level) -> None:
    for value in stmt.args:
        if value not in _KEEPALIVE_BROWSERS:
            raise ConfigError(stmt.source, f'invalid value "{value}"')
    _notice(load, stmt)


HANDLERS = frozenset(
    {
        accepted, flag, size, duration, number, buffers, temp_path, chunked_transfer_encoding, keepalive_disable,
        aio, ignore_headers,
    }
)
