"""
nginx's access phase for one request: allow/deny on ``$remote_addr``, then
basic authentication, combined by ``satisfy``.

The checks run in nginx's order (access, then auth_basic), each passing,
refusing or declining.  Under ``satisfy all`` the first refusal is the
answer; under ``satisfy any`` the first pass lets the request through and
otherwise a 401 outranks a 403.  The htpasswd file is read by the caller
(``users``), so nothing here touches the file system.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Callable, NamedTuple

from wstunnel.config.model import Access, AccessRule
from wstunnel.core.htpasswd import UserTable, basic_credentials, verify
from wstunnel.core.variables import RequestVars, render

__all__ = ["Denial", "UserFiles", "check_access"]

# An htpasswd file's table, or why it could not be read.
UserFiles = Callable[[str], "UserTable | OSError"]


class Denial(NamedTuple):
    """A request the access phase stops: 401 carries the challenge for WWW-Authenticate."""

    status: int
    detail: str
    challenge: bytes | None = None


_PASSED = Denial(200, "")


def check_access(access: Access, rv: RequestVars, users: UserFiles | None) -> Denial | None:
    """None when the request may go on to its content; else what stops it."""
    if access.limited is not None and rv.head.method not in access.except_methods:
        access = access.limited
    if not access.rules and access.realm is None:
        return None
    kept: Denial | None = None
    for check in (_by_address, _by_password):
        outcome = check(access, rv, users)
        if outcome is None:
            continue
        if outcome is _PASSED:
            if access.satisfy_any:
                return None
            continue
        if not access.satisfy_any or outcome.status not in (401, 403):
            return outcome
        if kept is None or kept.status != 401:
            kept = outcome
    return kept


def _by_address(access: Access, rv: RequestVars, users: UserFiles | None) -> Denial | None:
    """The first rule for the client's address family that matches; None when none does."""
    if not access.rules:
        return None
    address = _client_address(rv.conn.remote_addr)
    for rule in access.rules:
        if _matches(rule, address):
            if rule.allow:
                return _PASSED
            return Denial(403, "access forbidden by rule")
    return None


def _client_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP (an IPv4-mapped IPv6 one as IPv4, as nginx checks it); None off IP."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _matches(rule: AccessRule, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    if rule.network is None:
        return not rule.unix or address is None
    return address is not None and address.version == rule.network.version and address in rule.network


def _by_password(access: Access, rv: RequestVars, users: UserFiles | None) -> Denial | None:
    """auth_basic: None when off or without a user file, as nginx declines then."""
    if access.realm is None or access.user_file is None:
        return None
    realm = render(access.realm, rv)
    if realm == "off":
        return None
    challenge = b'Basic realm="' + realm.encode("latin-1", "replace") + b'"'
    given = rv.head.values(b"authorization")
    credentials = basic_credentials(given[0]) if given else None
    if credentials is None:
        return Denial(401, "no user/password was provided for basic authentication", challenge)
    user, password = credentials
    table = users(access.user_file) if users is not None else OSError(errno.EIO, "no reader")
    if isinstance(table, OSError):
        status = 403 if table.errno == errno.ENOENT else 500
        return Denial(status, f'open() "{access.user_file}" failed ({table.strerror})')
    field = table.users.get(user)
    name = user.decode("latin-1")
    if field is None:
        return Denial(401, f'user "{name}" was not found in "{access.user_file}"', challenge)
    if not verify(field, password):
        return Denial(401, f'user "{name}": password mismatch', challenge)
    return _PASSED
