"""
Access control as written: ``allow``/``deny``, ``satisfy``,
``auth_basic``/``auth_basic_user_file``, ``auth_request``/``auth_request_set``
and the ``limit_except`` block, gathered per level and merged by nginx's rules into
:class:`~wstunnel.config.model.Access`.

nginx merges allow/deny and auth_request_set all or nothing (one ``allow`` in a location drops
every inherited rule) and the rest one by one; a ``limit_except`` block
inherits from the location it is in, and a location nested in that one does
not inherit the block.
"""

from __future__ import annotations

import ipaddress
import os

from attrs import evolve

from wstunnel.config.levels import Level
from wstunnel.config.model import Access, AccessRule, ConfigError, Source
from wstunnel.config.read import Stmt
from wstunnel.config.templates import compile_template
from wstunnel.config.walk import HTTP_LEVELS, Load

__all__ = [
    "ACCESS_LEVELS",
    "LIMIT_EXCEPT",
    "allow_deny",
    "auth_basic",
    "auth_basic_user_file",
    "auth_request",
    "auth_request_set",
    "inherited_access",
    "limit_except",
    "satisfy",
]

# The context inside a limit_except block: only the access directives are accepted there.
LIMIT_EXCEPT = "limit_except"
ACCESS_LEVELS = HTTP_LEVELS | {LIMIT_EXCEPT}

# The methods nginx's limit_except knows.
_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE MKCOL COPY MOVE OPTIONS PROPFIND PROPPATCH LOCK UNLOCK PATCH".split()
)


def allow_deny(load: Load, stmt: Stmt, level: Level) -> None:
    rule = _rule(load, stmt, stmt.args[0])
    level.access.setdefault("rules", []).append(rule)  # type: ignore[union-attr]


def _rule(load: Load, stmt: Stmt, text: str) -> AccessRule:
    allow = stmt.name == "allow"
    if text == "all":
        return AccessRule(allow, None)
    if text == "unix:":
        return AccessRule(allow, None, unix=True)
    address = text.partition("/")[0]
    if ("." not in address and ":" not in address) or "%" in address:
        raise ConfigError(stmt.source, f'invalid parameter "{text}"')
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(stmt.source, f'invalid parameter "{text}"') from None
    if "/" in text and str(network.network_address) != str(ipaddress.ip_address(address)):
        load.notices.append(f"{stmt.source}: low address bits of {text} are meaningless")
    return AccessRule(allow, network)


def satisfy(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value not in ("all", "any"):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "satisfy" directive, it must be "all" or "any"')
    level.access["satisfy_any"] = value == "any"


def auth_basic(load: Load, stmt: Stmt, level: Level) -> None:
    """The realm (with variables), or ``off``: kept as written and compiled when merged."""
    text = stmt.args[0]
    level.access["realm"] = None if text == "off" else (text, stmt.source)


def auth_basic_user_file(load: Load, stmt: Stmt, level: Level) -> None:
    path = stmt.args[0]
    if "$" in path:
        raise ConfigError(stmt.source, '"auth_basic_user_file" with variables is not supported by wstunnel')
    level.access["user_file"] = os.path.join(load.main_dir, path)


def auth_request(load: Load, stmt: Stmt, level: Level) -> None:
    uri = stmt.args[0]
    if uri != "off" and not uri.startswith("/"):
        raise ConfigError(stmt.source, f'invalid URI "{uri}" in "auth_request" directive')
    level.access["auth_request"] = None if uri == "off" else uri


def auth_request_set(load: Load, stmt: Stmt, level: Level) -> None:
    """``$name value``: the value is rendered in the subrequest, where ``$upstream_http_*`` are its answer's headers."""
    name, value = stmt.args
    if not name.startswith("$") or len(name) < 2:
        raise ConfigError(stmt.source, f'invalid variable name "{name}"')
    variable = name[1:].lower()
    template = compile_template(value, stmt.source, _SubrequestNames(load.maps.keys() | load.captures))
    load.captures.add(variable)
    level.access.setdefault("auth_request_set", []).append((variable, template))  # type: ignore[union-attr]


class _SubrequestNames:
    """The variable names known in the subrequest: the config's, and those of its answer."""

    def __init__(self, names: set[str]) -> None:
        self._names = names

    def __contains__(self, name: object) -> bool:
        return name in self._names or name == "upstream_status" or str(name).startswith("upstream_http_")


def limit_except(load: Load, stmt: Stmt, level: Level) -> None:
    """The methods let through; the block's rules apply to every other one (GET lets HEAD through too)."""
    methods = set()
    for arg in stmt.args:
        method = arg.upper().encode("ascii", "replace")
        if method not in _METHODS:
            raise ConfigError(stmt.source, f'invalid method "{arg}"')
        methods.add(method)
    if b"GET" in methods:
        methods.add(b"HEAD")
    inner = Level(stmt.source)
    assert stmt.block is not None
    load.walk(stmt.block, LIMIT_EXCEPT, inner)
    level.access["limit_except"] = (frozenset(methods), inner)


def inherited_access(load: Load, level: Level, parent: Access) -> Access:
    """The access settings in force at ``level``, inside a level whose settings are ``parent``."""
    written = level.access
    if not written and parent.limited is None:
        return parent
    access = Access(
        rules=tuple(written["rules"]) if "rules" in written else parent.rules,  # type: ignore[arg-type]
        satisfy_any=written.get("satisfy_any", parent.satisfy_any),  # type: ignore[arg-type]
        realm=_realm(load, written["realm"]) if "realm" in written else parent.realm,  # type: ignore[arg-type]
        user_file=written.get("user_file", parent.user_file),  # type: ignore[arg-type]
        auth_request=written.get("auth_request", parent.auth_request),  # type: ignore[arg-type]
        auth_request_set=tuple(written["auth_request_set"])  # type: ignore[arg-type]
        if "auth_request_set" in written
        else parent.auth_request_set,
    )
    if "limit_except" in written:
        methods, inner = written["limit_except"]  # type: ignore[misc]
        access = evolve(access, except_methods=methods, limited=inherited_access(load, inner, access))
    return access


def _realm(load: Load, written: tuple[str, Source] | None) -> object:
    if written is None:
        return None
    text, source = written
    return load.template(text, source)

