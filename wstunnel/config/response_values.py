"""
How a location reshapes what passes through it: the upstream request's
method and parts, and the answer's Location, cookies, charset, expiry and
compression.  Built at load by the topic modules of config/.
"""

from __future__ import annotations

import re

from attrs import frozen

from wstunnel.config.values import Template

__all__ = ["Charset", "CookieFlags", "CookieRules", "Expires", "Gzip", "RedirectRule", "UpstreamShape"]


@frozen
class RedirectRule:
    """One ``proxy_redirect REDIRECT REPLACEMENT`` (prefix match on Location and Refresh)."""

    pattern: Template
    replacement: Template
    regex: re.Pattern[str] | None = None  # "~" / "~*": a match replaces the whole URL


@frozen
class CookieFlags:
    """One ``proxy_cookie_flags COOKIE FLAG...``: the cookie's name (or a caseless regex) and its flags."""

    cookie: Template | None  # None for a regex
    regex: re.Pattern[str] | None
    flags: tuple[Template, ...]


@frozen
class CookieRules:
    """How Set-Cookie is rewritten; a domain or path rule has the shape of a proxy_redirect one."""

    domains: tuple[RedirectRule, ...] = ()
    paths: tuple[RedirectRule, ...] = ()
    flags: tuple[CookieFlags, ...] = ()


@frozen
class Charset:
    """``charset`` and its companions: the name Content-Type gets, on which types, from which source."""

    name: Template  # a name, or "$variable" naming it per answer
    types: frozenset[str]  # charset_types, lower case; "*" for every type
    source: Template | None = None  # source_charset; None: off
    override: bool = False  # override_charset


@frozen
class Expires:
    """
    One effective ``expires``: ``kind`` is access, modified, daily, epoch
    or max, ``seconds`` the signed time (of day, for daily); a value with
    variables is ``value``, parsed for each answer.
    """

    kind: str
    seconds: int
    value: Template | None = None


@frozen
class Gzip:
    """
    The gzip directives in force in one location, with nginx's defaults.
    ``types`` is None for ``gzip_types *``; ``proxied`` holds
    ``gzip_proxied``'s words as written.
    """

    enabled: bool = False
    types: frozenset[bytes] | None = frozenset({b"text/html"})
    min_length: int = 20
    comp_level: int = 1
    vary: bool = False
    proxied: frozenset[str] = frozenset({"off"})
    disable: tuple[re.Pattern[str], ...] = ()
    disable_msie6: bool = False
    http_version: bytes = b"1.1"
    static: str = "off"  # gzip_static: "off", "on" or "always"


@frozen
class UpstreamShape:
    """How the request sent upstream departs from the client's."""

    method: Template | None = None  # proxy_method; None: the client's
    pass_headers: bool = True  # proxy_pass_request_headers
    pass_body: bool = True  # proxy_pass_request_body
