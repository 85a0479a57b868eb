"""
nginx's access phase for one request: allow/deny on ``$remote_addr``, basic
authentication, then the auth subrequest, combined by ``satisfy``.

The checks run in nginx's order (access, auth_basic, auth_request), each
passing, refusing or declining.  Under ``satisfy all`` the first refusal is
the answer; under ``satisfy any`` the first pass lets the request through
and otherwise a 401 outranks a 403.  The htpasswd file is read by the
caller (``users``) and the subrequest made by it (:class:`Pending`), so
nothing here does any I/O.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Callable, NamedTuple

from wstunnel.config.model import Access, AccessRule, Template
from wstunnel.core.htpasswd import UserTable, basic_credentials, verify
from wstunnel.core.variables import RequestVars, header_named, render
from wstunnel.wire.request import RequestHead

__all__ = ["Denial", "Pending", "UserFiles", "auth_verdict", "check_access", "remote_user"]

# An htpasswd file's table, or why it could not be read.
UserFiles = Callable[[str], "UserTable | OSError"]
Headers = tuple[tuple[bytes, bytes], ...]
_UPSTREAM_HTTP = "upstream_http_"


class Denial(NamedTuple):
    """A request the access phase stops: 401 carries the challenge for WWW-Authenticate."""

    status: int
    detail: str
    challenge: bytes | None = None


class Pending(NamedTuple):
    """The auth subrequest decides: ``kept`` is what ``satisfy any`` refused with so far."""

    access: Access
    kept: Denial | None


_PASSED = Denial(200, "")


def check_access(access: Access, rv: RequestVars, users: UserFiles | None) -> Denial | Pending | None:
    """None when the request may go on to its content; else what stops it, or the subrequest it waits for."""
    if access.limited is not None and rv.head.method not in access.except_methods:
        access = access.limited
    if not access.checks:
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
    if access.auth_request is not None:
        return Pending(access, kept)
    return kept


def auth_verdict(pending: Pending, rv: RequestVars, status: int, headers: Headers) -> Denial | None:
    """
    The subrequest answered ``status`` with ``headers``: its
    ``auth_request_set`` variables are set on the request, then 2xx lets it
    through, 401 (with the subrequest's ``WWW-Authenticate``) and 403 refuse
    it, anything else is a 500, as in nginx.
    """
    access = pending.access
    for name, template in access.auth_request_set:
        rv.assign(name, _render_after(template, rv, status, headers))
    if 200 <= status < 300:
        return None
    if status not in (401, 403):
        return Denial(500, f"auth request unexpected status: {status}")
    challenge = next((v for n, v in headers if n.lower() == b"www-authenticate"), None) if status == 401 else None
    outcome = Denial(status, f"auth request answered {status}", challenge)
    if not access.satisfy_any:
        return outcome
    kept = pending.kept
    return kept if kept is not None and kept.status == 401 else outcome


def _render_after(template: Template, rv: RequestVars, status: int, headers: Headers) -> str:
    """A value of auth_request_set: ``$upstream_http_*`` and ``$upstream_status`` are the subrequest's answer."""
    parts = []
    for part in template.parts:
        if isinstance(part, str):
            parts.append(part)
        elif part.name == "upstream_status":
            parts.append(str(status))
        elif part.name.startswith(_UPSTREAM_HTTP):
            parts.append(header_named(headers, part.name[len(_UPSTREAM_HTTP) :]))
        else:
            parts.append(rv.get(part.name))
    return "".join(parts)


def remote_user(head: RequestHead) -> str | None:
    """``$remote_user``: the user of the request's Basic credentials, checked or not, as nginx gives it."""
    given = head.values(b"authorization")
    credentials = basic_credentials(given[0]) if given else None
    return None if credentials is None else credentials[0].decode("latin-1")


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
