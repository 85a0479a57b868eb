"""
The arguments of the upstream directives, checked as nginx checks them:
``server`` parameters, the balancing methods (``least_conn``, ``ip_hash``,
``hash``, ``random``) and ``proxy_next_upstream*``.

Each function turns directive arguments into values or raises
``ValueError`` with nginx's wording; the loader adds the file and line.
"""

from __future__ import annotations

from typing import Sequence

from wstunnel.config.units import parse_time

__all__ = [
    "BACKUP_METHODS",
    "CONDITIONS",
    "parse_balancing",
    "parse_next_upstream",
    "parse_server_params",
    "parse_tries",
]

# proxy_next_upstream's failure conditions, as nginx names them.
CONDITIONS = frozenset(
    {
        "error",
        "timeout",
        "invalid_header",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
        "http_403",
        "http_404",
        "http_429",
        "non_idempotent",
    }
)
# nginx: only round robin and least_conn have the BACKUP flag.
BACKUP_METHODS = frozenset({"round_robin", "least_conn"})
# Parameters of newer or commercial nginx versions.
_UNSUPPORTED = ("resolve", "service=", "slow_start=", "route=", "drain")
_NUMBERS = {"weight": 1, "max_fails": 0, "max_conns": 0}  # the lowest valid value


def _number(text: str, lowest: int, param: str) -> int:
    if not text.isdigit() or int(text) < lowest:
        raise ValueError(f'invalid parameter "{param}"')
    return int(text)


def parse_server_params(params: Sequence[str]) -> dict[str, object]:
    """``weight=N max_fails=N fail_timeout=T max_conns=N backup down`` as Peer fields."""
    fields: dict[str, object] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep and name in _NUMBERS:
            fields[name] = _number(value, _NUMBERS[name], param)
        elif sep and name == "fail_timeout":
            try:
                fields[name] = parse_time(value)
            except ValueError:
                raise ValueError(f'invalid parameter "{param}"') from None
        elif not sep and name in ("backup", "down"):
            fields[name] = True
        elif param.startswith(_UNSUPPORTED):
            raise ValueError(f'upstream server parameter "{param}" is not supported by wstunnel')
        else:
            raise ValueError(f'invalid parameter "{param}"')
    return fields


def parse_balancing(directive: str, args: Sequence[str]) -> tuple[str, str | None, bool, bool]:
    """
    ``least_conn``, ``ip_hash``, ``hash KEY [consistent]``, ``random [two
    [least_conn]]`` -> (method, key text, consistent, two).
    """
    if directive == "hash":
        if len(args) > 1 and args[1] != "consistent":
            raise ValueError(f'invalid parameter "{args[1]}"')
        return "hash", args[0], len(args) > 1, False
    if directive == "random":
        expected = ("two", "least_conn")
        for arg, allowed in zip(args, expected):
            if arg != allowed:
                raise ValueError(f'invalid parameter "{arg}"')
        return "random", None, False, bool(args)
    return directive, None, False, False


def parse_next_upstream(args: Sequence[str]) -> frozenset[str]:
    """``proxy_next_upstream`` conditions; ``off`` anywhere means none, as in nginx."""
    for arg in args:
        if arg != "off" and arg not in CONDITIONS:
            raise ValueError(f'invalid value "{arg}" in "proxy_next_upstream" directive')
    if "off" in args:
        return frozenset()
    return frozenset(args)


def parse_tries(text: str) -> int:
    """``proxy_next_upstream_tries``: a number, 0 for unlimited."""
    if not text.isdigit():
        raise ValueError(f'invalid number "{text}"')
    return int(text)
