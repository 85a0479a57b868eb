"""
The ``listen`` directive: its address and parameters, with nginx's checks
and wording, and the socket options each listening address ends up with.

As in nginx, the socket options (``backlog=``, ``so_keepalive=``,
``reuseport``...) belong to the address, not to one server: only one
``listen`` of an address may carry them, and writing any of them gives the
address a socket of its own (``bind``) even when a wildcard listen on the
same port exists.
"""

from __future__ import annotations

from typing import Iterable

from wstunnel.config.addresses import format_address, listen_addresses
from wstunnel.config.levels import Level, ServerLevel
from wstunnel.config.model import ConfigError, Listen, ListenOptions, Source
from wstunnel.config.read import Stmt
from wstunnel.config.units import parse_time
from wstunnel.config.walk import Load

__all__ = ["address_options", "listen"]

_FLAGS = ("default_server", "default", "ssl", "proxy_protocol", "http2")
_SOCKET_FLAGS = ("bind", "reuseport", "deferred")
_VALUED = ("backlog", "ipv6only", "so_keepalive", "fastopen")


def listen(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, ServerLevel)
    address, *params = stmt.args
    flags: set[str] = set()
    values: dict[str, object] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep and name in _FLAGS + _SOCKET_FLAGS:
            flags.add(name)
        elif sep and name in _VALUED:
            values[name] = _PARSERS[name](param, value, stmt.source)
        else:
            raise ConfigError(stmt.source, _refusal(param))
    if "http2" in flags:
        load.notices.append(
            f'{stmt.source}: "listen ... http2": wstunnel serves HTTP/1.1 only, its ALPN offers "http/1.1"'
        )
    options = _options(flags, values)
    for host, port in listen_addresses(address, stmt.source, load.resolve):
        level.listens.append(
            Listen(
                host,
                port,
                bool(flags & {"default_server", "default"}),
                stmt.source,
                proxy_protocol="proxy_protocol" in flags,
                ssl="ssl" in flags,
                options=options,
            )
        )


def _refusal(param: str) -> str:
    name = param.partition("=")[0]
    if name in ("rcvbuf", "sndbuf", "accept_filter"):
        return f'"listen" parameter "{param}" is not supported by wstunnel'
    return f'invalid parameter "{param}"'


def _options(flags: set[str], values: dict[str, object]) -> ListenOptions | None:
    """nginx: any socket option makes the address bind a socket of its own."""
    if not (flags & set(_SOCKET_FLAGS)) and not values:
        return None
    given = {name: values[name] for name in ("backlog", "ipv6only", "fastopen") if name in values}
    keepalive = values.get("so_keepalive")
    if keepalive is not None:
        given["so_keepalive"] = keepalive is not False
    if isinstance(keepalive, tuple):
        given["keepalive_timers"] = keepalive
    return ListenOptions(
        reuseport="reuseport" in flags,
        deferred="deferred" in flags,
        bind=True,
        **given,  # type: ignore[arg-type]
    )


def _backlog(param: str, value: str, source: Source) -> int:
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(source, f'invalid backlog "{param}"')
    return int(value)


def _fastopen(param: str, value: str, source: Source) -> int:
    if not value.isdigit():
        raise ConfigError(source, f'invalid fastopen "{param}"')
    return int(value)


def _ipv6only(param: str, value: str, source: Source) -> bool:
    if value not in ("on", "off"):
        raise ConfigError(source, f'invalid parameter "{param}"')
    return value == "on"


def _so_keepalive(param: str, value: str, source: Source) -> bool | tuple[int | None, int | None, int | None]:
    """``on``, ``off``, or ``[keepidle]:[keepintvl]:[keepcnt]`` (times in seconds, a count)."""
    if value in ("on", "off"):
        return value == "on"
    parts = value.split(":")
    if len(parts) > 3 or not any(parts):
        raise ConfigError(source, f'invalid so_keepalive value: "{value}"')
    parts += [""] * (3 - len(parts))
    try:
        idle, interval = (_seconds(part) for part in parts[:2])
        count = None if not parts[2] else _positive(parts[2])
    except ValueError:
        raise ConfigError(source, f'invalid so_keepalive value: "{value}"') from None
    return idle, interval, count


def _seconds(text: str) -> int | None:
    if not text:
        return None
    seconds = parse_time(text)
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(text)
    return int(seconds)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError(text)
    return int(text)


_PARSERS = {"backlog": _backlog, "fastopen": _fastopen, "ipv6only": _ipv6only, "so_keepalive": _so_keepalive}


def address_options(listens: Iterable[Listen]) -> tuple[ListenOptions, list[ConfigError]]:
    """The socket options of one address, from the one listen that may write them."""
    written = [listen for listen in listens if listen.options is not None]
    errors = [
        ConfigError(listen.source, f"duplicate listen options for {format_address(listen.host, listen.port)}")
        for listen in written[1:]
    ]
    options = written[0].options if written else None
    return options or ListenOptions(), errors
