"""
``proxy_method``, ``proxy_pass_request_headers`` and
``proxy_pass_request_body``: how the request sent upstream departs from
the client's, as nginx 1.22 reads them.
"""

from __future__ import annotations

from typing import Mapping

from wstunnel.config.levels import Level
from wstunnel.config.model import Source, Template, UpstreamShape
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = ["COMPILERS", "ignore_invalid_headers", "request_shape_directive", "upstream_shape"]

Written = list[tuple[tuple[str, ...], Source]]


def request_shape_directive(load: Load, stmt: Stmt, level: Level) -> None:
    if stmt.name != "proxy_method":
        flag(stmt)
    level.shaping[stmt.name] = [(stmt.args, stmt.source)]


def ignore_invalid_headers(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``on``: a request header whose name has a byte other than a letter, a
    digit or ``-`` is dropped, never passed nor read by ``$http_*``;
    ``off`` keeps it.  Read from the listening address's default server,
    before the virtual server is known, as the other head limits are.
    """
    level.client["ignore_invalid_headers"] = flag(stmt)


def _method(load: Load, written: Written) -> Template | None:
    (args, source), = written
    return load.template(args[0], source)


def _flag(load: Load, written: Written) -> bool:
    return written[0][0][0] == "on"


COMPILERS = {
    "proxy_method": _method,
    "proxy_pass_request_headers": _flag,
    "proxy_pass_request_body": _flag,
}


def upstream_shape(shaping: Mapping[str, object]) -> UpstreamShape:
    return UpstreamShape(
        method=shaping.get("proxy_method"),  # type: ignore[arg-type]
        pass_headers=bool(shaping.get("proxy_pass_request_headers", True)),
        pass_body=bool(shaping.get("proxy_pass_request_body", True)),
    )
