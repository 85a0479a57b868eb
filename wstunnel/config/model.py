"""
The configuration model: immutable values built once by :mod:`wstunnel.config.loader`.

Everything a request needs is resolved here at load time (inheritance between
levels, compiled variable templates, resolved upstream addresses), so that the
per-request path only looks things up.  A reload builds a new :class:`Config`
and swaps one reference; connections keep the snapshot they started with.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping, Union

from attrs import Factory, field, frozen

from wstunnel.config.access_values import Access, AccessRule, LimitZone, RateLimits
from wstunnel.config.response_values import Charset, CookieFlags, CookieRules, Expires, Gzip, RedirectRule, UpstreamShape
from wstunnel.config.values import ConfigError, Source, Template, VarRef

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "Access",
    "AccessLog",
    "AccessRule",
    "AddedHeader",
    "Binding",
    "ClientLimits",
    "Config",
    "DEFAULT_HIDDEN",
    "DEFAULT_UPGRADE_PROTOCOLS",
    "Charset",
    "ConfigError",
    "FileSettings",
    "ConfigErrors",
    "CookieFlags",
    "CookieRules",
    "Expires",
    "ERROR_LOG_LEVELS",
    "ErrorLog",
    "ErrorPage",
    "ErrorPages",
    "Balancing",
    "HeaderSetting",
    "KeyPair",
    "Listen",
    "LimitZone",
    "ListenOptions",
    "Location",
    "LogFormat",
    "MapDef",
    "NEXT_UPSTREAM_CONDITIONS",
    "NextUpstream",
    "Peer",
    "RateLimits",
    "ProxyPass",
    "RedirectRule",
    "Resolver",
    "ResponseRules",
    "Return",
    "BreakStep",
    "Condition",
    "IfBlock",
    "RewriteProgram",
    "RewriteRule",
    "RewriteStep",
    "SetVariable",
    "Gzip",
    "Server",
    "ServerTLS",
    "Source",
    "Template",
    "Timeouts",
    "Upstream",
    "UpstreamShape",
    "UpstreamTLS",
    "VarRef",
    "Workers",
    "one_per_path",
]


@frozen
class Timeouts:
    """Per-location timeouts in seconds, with nginx's defaults."""

    connect: float = 60.0  # proxy_connect_timeout
    read: float = 60.0  # proxy_read_timeout: tunnel idle timeout, header wait
    send: float = 60.0  # proxy_send_timeout: a stalled write to the upstream
    client_send: float = 60.0  # send_timeout: a stalled write to the client


@frozen
class ClientLimits:
    """
    What one client may cost us, with nginx's defaults.  The head limits
    and ``header_timeout`` come from the listening address's default server
    (the virtual server is not known before the head is read, as in nginx);
    the others from the location that serves the request.
    """

    header_timeout: float = 60.0  # client_header_timeout: one deadline for the whole head
    body_timeout: float = 60.0  # client_body_timeout: the longest wait between two reads of a body
    keepalive_timeout: float = 75.0  # keepalive_timeout: idle time between requests; 0 = off
    keepalive_requests: int = 1000  # keepalive_requests: answers per connection
    header_buffers: int = 4  # large_client_header_buffers NUMBER
    header_buffer_size: int = 8192  # large_client_header_buffers SIZE: the longest line
    max_body_size: int = 1024 * 1024  # client_max_body_size; 0 = unlimited
    ignore_invalid_headers: bool = True  # off: header names beyond letters, digits and "-" are kept


# proxy_hide_header's built-in list (ngx_http_proxy_hide_headers).
DEFAULT_HIDDEN = frozenset(
    {
        b"date",
        b"server",
        b"x-pad",
        b"x-accel-expires",
        b"x-accel-redirect",
        b"x-accel-limit-rate",
        b"x-accel-buffering",
        b"x-accel-charset",
    }
)


# proxy_upgrade_protocols' default: the upgrade tokens that may open a tunnel.
DEFAULT_UPGRADE_PROTOCOLS = frozenset({b"websocket"})


@frozen
class ResponseRules:
    """How an upstream response head is read and passed on."""

    hide: frozenset[bytes] = DEFAULT_HIDDEN  # lower-case names never passed to the client
    redirects: tuple[RedirectRule, ...] = ()  # proxy_redirect, first match wins
    buffer_size: int = 4096  # proxy_buffer_size: the largest response head
    add_headers: tuple[AddedHeader, ...] = ()  # add_header, config order
    cookies: CookieRules | None = None  # proxy_cookie_domain, proxy_cookie_path, proxy_cookie_flags
    expires: Expires | None = None  # None: expires off
    charset: Charset | None = None  # None: charset off


@frozen
class AddedHeader:
    """One effective ``add_header NAME VALUE [always]``."""

    name: bytes
    value: Template
    always: bool


@frozen
class HeaderSetting:
    """One effective ``proxy_set_header NAME VALUE``."""

    name: str
    value: Template
    source: Source


@frozen
class Peer:
    """
    One resolved address of an upstream ``server`` line, with the line's
    parameters (nginx's defaults: weight 1, max_fails 1, fail_timeout 10s,
    no max_conns).
    """

    host: str  # an IP literal, resolved at load time (no brackets); the path for unix:
    port: int  # 0 for a unix: socket
    name: str  # as written in the config, e.g. "localhost:8282"
    weight: int = 1
    max_fails: int = 1  # 0: failures are not counted
    fail_timeout: float = 10.0
    max_conns: int = 0  # 0: unlimited
    backup: bool = False
    down: bool = False
    unix: bool = False  # host is a unix-domain socket path

    @property
    def address(self) -> str:
        """``$upstream_addr`` form: ``1.2.3.4:80``, ``[::1]:80`` or ``unix:/path``."""
        if self.unix:
            return f"unix:{self.host}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@frozen
class Balancing:
    """
    How an upstream chooses its peer: ``round_robin`` (smooth weighted, the
    default), ``least_conn``, ``ip_hash``, ``hash`` (``key``, ``consistent``)
    or ``random`` (``two``: the better of two random picks by connections).
    """

    method: str = "round_robin"
    key: Template | None = None
    consistent: bool = False
    two: bool = False


@frozen
class Upstream:
    """
    An ``upstream`` block, or the implicit group of a ``proxy_pass host:port``
    (every address the host resolves to is a peer, as in nginx).  ``peers``
    keeps config order, backup peers included (``Peer.backup``).
    """

    name: str
    peers: tuple[Peer, ...]
    implicit: bool
    source: Source
    balancing: Balancing = field(factory=Balancing)
    keepalive: int = 0  # idle connections kept for reuse; 0 = one connection per request
    keepalive_timeout: float = 60.0  # how long an idle connection is kept
    keepalive_requests: int = 1000  # requests per connection before it is retired


@frozen(eq=False)
class KeyPair:
    """A certificate chain (leaf first, then intermediates) and its private key."""

    certificate_file: str
    chain: tuple[x509.Certificate, ...]
    key: object  # a cryptography private key

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


@frozen(eq=False)
class ServerTLS:
    """What one ``server`` block presents and demands in a TLS handshake."""

    key_pair: KeyPair
    protocols: tuple[str, ...]
    ciphers: str | None  # OpenSSL syntax; None: Twisted's modern default list
    session_timeout: float
    session_tickets: bool
    client_ca_file: str | None  # ssl_client_certificate
    verify_client: str  # "off", "on", "optional"
    verify_depth: int
    prefer_server_ciphers: bool = False
    session_cache: bool = False  # OpenSSL's built-in cache ("builtin" or "shared")
    dhparam_file: str | None = None
    ecdh_curve: str = "auto"  # OpenSSL groups list
    ocsp_response: bytes | None = None  # DER, stapled from ssl_stapling_file


@frozen(eq=False)
class UpstreamTLS:
    """How a location talks TLS to an ``https://`` upstream."""

    verify: bool
    trusted_file: str | None  # None: the system trust store
    verify_depth: int
    name: str  # checked against the certificate, sent as SNI
    server_name: bool
    protocols: tuple[str, ...]
    client: KeyPair | None


@frozen
class ProxyPass:
    """A parsed ``proxy_pass`` URL."""

    scheme: str  # "http" or "https"
    upstream: Upstream
    uri: str | None  # the URI part ("/", "/app/"), or None when absent
    proxy_host: str  # $proxy_host: host, plus ":port" when not the default
    source: Source
    tls: UpstreamTLS | None = None  # set for https
    # host[:port] with variables: rendered per request, it names an upstream
    # block or an address to resolve, and ``upstream`` is only a stand-in.
    authority: Template | None = None


@frozen
class Resolver:
    """
    ``resolver`` and ``resolver_timeout``: the DNS servers that names in a
    ``proxy_pass`` with variables are resolved through at request time.
    """

    servers: tuple[tuple[str, int], ...]  # (IP, port), in config order
    source: Source
    valid: float | None = None  # valid=: overrides the answers' TTL
    ipv4: bool = True
    ipv6: bool = True
    timeout: float = 30.0  # resolver_timeout


@frozen
class AccessLog:
    """``access_log PATH [FORMAT]``; ``off`` is an empty tuple on the location."""

    path: str  # a file path or "stderr"/"stdout"
    format: str  # a name in Config.log_formats ("combined" always exists)
    source: Source


@frozen
class LogFormat:
    """``log_format NAME [escape=...] STRING``, compiled at load time."""

    name: str
    escape: str  # "default", "json" or "none"
    template: Template
    source: Source


# proxy_next_upstream's conditions, as nginx names them.
NEXT_UPSTREAM_CONDITIONS = frozenset(
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


@frozen
class NextUpstream:
    """
    ``proxy_next_upstream`` conditions (names as in nginx: ``error``,
    ``timeout``, ``http_502``, ``non_idempotent`` ...; empty for ``off``),
    ``proxy_next_upstream_tries`` and ``proxy_next_upstream_timeout``
    (0 = unlimited for both).
    """

    conditions: frozenset[str] = frozenset({"error", "timeout"})
    tries: int = 0
    timeout: float = 0.0


@frozen
class ErrorLog:
    path: str  # a file path or "stderr"
    level: str  # debug info notice warn error crit alert emerg
    source: Source


# error_log levels, least severe first.
ERROR_LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")


def one_per_path(error_logs: "tuple[ErrorLog, ...] | list[ErrorLog]") -> tuple[ErrorLog, ...]:
    """
    One level's ``error_log`` list as it is written to: a file named twice
    is written once, at the lower of its levels (nginx's error_log.t: a
    duplicate with a lower level widens the output).
    """
    chosen: dict[str, ErrorLog] = {}
    for error_log in error_logs:
        known = chosen.get(error_log.path)
        if known is None or ERROR_LOG_LEVELS.index(error_log.level) < ERROR_LOG_LEVELS.index(known.level):
            chosen[error_log.path] = error_log
    return tuple(chosen.values())


@frozen
class ErrorPage:
    """
    One code of an ``error_page`` line.  ``overwrite`` is nginx's: None
    without ``=`` (the answer keeps the error's code), 0 for a bare ``=``
    (the page's own code), else the code after ``=``.
    """

    status: int
    target: Template  # a URI, "@name" or a URL
    overwrite: int | None
    source: Source


@frozen
class ErrorPages:
    """The error pages in force at one level, with the two switches that govern them."""

    pages: tuple[ErrorPage, ...] = ()  # config order; the first naming a code wins
    recursive: bool = False  # recursive_error_pages
    intercept: bool = False  # proxy_intercept_errors


@frozen
class Return:
    """
    ``return``: the status and the text (or redirect URL) to answer with;
    ``text`` is None for a bare code, which gets its standard page.
    """

    status: int
    text: Template | None = None


@frozen
class Condition:
    """
    An ``if`` condition compiled at load: ``op`` is ``""`` (the value is
    true unless empty or ``"0"``), ``"="``, ``"!="``, ``"~"`` (``pattern``,
    caseless or not as written) or a file test ``"-f"``, ``"-d"``,
    ``"-e"``, ``"-x"``; ``negate`` is the ``!`` of ``!=``, ``!~`` or ``!-f``.
    """

    op: str
    value: Template
    operand: Template | None = None  # the right side of "=" and "!="
    pattern: re.Pattern[str] | None = None
    negate: bool = False


@frozen
class SetVariable:
    """``set $name value``."""

    name: str
    value: Template


@frozen
class RewriteRule:
    """
    ``rewrite regex replacement [flag]``, its replacement split at load
    where nginx splits it: ``uri`` before the first literal ``?``, ``args``
    after it (None without one); ``add_args`` is False after a trailing
    ``?``; ``redirect`` is 301 or 302 for an answer, 0 for a new URI.
    """

    pattern: re.Pattern[str]
    uri: Template
    args: Template | None
    add_args: bool
    flag: str  # "", "last", "break", "redirect" or "permanent"
    redirect: int
    source: Source


@frozen
class BreakStep:
    """``break``: the rewrite directives of this phase stop here."""


@frozen
class IfBlock:
    """
    ``if (condition) { ... }``: its steps run when the condition holds; in
    a location, ``location`` is the implicit one it opens, which then
    serves the request (None at server level).
    """

    condition: Condition
    steps: tuple[RewriteStep, ...]
    location: Location | None = None


RewriteStep = Union[SetVariable, RewriteRule, Return, BreakStep, IfBlock]


@frozen
class RewriteProgram:
    """The rewrite directives of one server or location in file order; ``log`` is ``rewrite_log``."""

    steps: tuple[RewriteStep, ...]
    log: bool = False


@frozen
class FileSettings:
    """
    Serving files beside the proxy (:mod:`wstunnel.config.files`): what a
    location without ``proxy_pass`` or ``return`` answers from disk.
    ``root``, ``index``, ``types`` and the flags are inherited as in nginx;
    ``alias``, ``try_files`` and ``internal`` belong to the location alone.
    """

    root: Template | None = None  # None: no document root, so no file exists
    alias: Template | None = None
    index: tuple[Template, ...] = ()  # index, the first that exists wins
    try_files: tuple[Template, ...] = ()  # the last one is the fallback: "=code", "@name" or a URI
    autoindex: bool = False
    types: Mapping[str, str] = field(factory=dict)  # lower-case extension -> MIME type
    default_type: str = "text/plain"
    etag: bool = True
    log_not_found: bool = True  # a missing file logged at error level, as nginx's "open() ... failed"
    if_modified_since: str = "exact"  # "off", "exact" or "before"
    internal: bool = False  # reachable only by an internal redirect
    regex_alias: bool = False  # alias in a regex location: the whole path, nothing of the URI appended
    send_timeout: float = 60.0  # send_timeout in force here, also where no location matched


@frozen
class Location:
    """
    A ``location`` with every inheritable setting already merged in from the
    server and http levels (nginx's inheritance rules are applied by the
    loader, so nothing walks the config per request).
    """

    path: str
    exact: bool  # "location = /path"
    proxy_pass: ProxyPass | None
    http_version: str  # "1.1" (our default) or "1.0"
    set_headers: tuple[HeaderSetting, ...]  # effective list, config order
    timeouts: Timeouts
    access_logs: tuple[AccessLog, ...]  # empty tuple = access_log off
    source: Source
    # "stub_status" or "metrics" (wstunnel_metrics): answered by wstunnel
    # itself instead of being proxied.
    status_page: str | None = None
    next_upstream: NextUpstream = field(factory=NextUpstream)
    # proxy_upgrade_protocols, lower case: "tcp" allows every version, "tcp/2" that one.
    upgrade_protocols: frozenset[bytes] = DEFAULT_UPGRADE_PROTOCOLS
    # Where this location's requests log errors: its own error_log list, or
    # the nearest enclosing level's (server, http, main), as in nginx.
    error_logs: tuple[ErrorLog, ...] = ()
    client: ClientLimits = ClientLimits()
    response: ResponseRules = ResponseRules()
    # "^~": a match ends the search before the regexes are tried.
    noregex: bool = False
    # "~" / "~*": compiled at load; ``path`` is then the regex as written.
    regex: re.Pattern[str] | None = None
    named: bool = False  # "@name": never chosen by a request's URI
    # The locations nested in this one, in file order; each is also in its
    # Server's ``locations``, which lists every location of the server.
    nested: tuple[Location, ...] = ()
    # proxy_pass's URI part when it has variables (captures): rendered per
    # request, it is the whole request-URI sent, as in nginx.
    proxy_uri: Template | None = None
    rewrites: RewriteProgram | None = None  # return, rewrite, set, if, break: run before the content
    resolver: Resolver | None = None  # "resolver" in force here, with its resolver_timeout
    gzip: Gzip = Gzip()
    upstream_shape: UpstreamShape = UpstreamShape()  # proxy_method, proxy_pass_request_headers
    access: Access = Access()  # allow/deny, auth_basic, auth_request, satisfy, limit_except
    limits: RateLimits | None = None  # limit_conn, limit_req, limit_rate; None: none apply
    errors: ErrorPages = ErrorPages()  # error_page, recursive_error_pages, proxy_intercept_errors
    files: FileSettings | None = None  # root/alias/try_files in force: files are served here
    # Whether a request found here goes straight upstream: decided at load,
    # so the request path branches once instead of walking every phase.
    proxies_only: bool = field(init=False, default=Factory(lambda loc: _proxies_only(loc), takes_self=True))
    # Whether an upstream answer here is relayed as it comes: no error page
    # intercepts it, no rate paces it, gzip does not encode it.
    relays_plainly: bool = field(init=False, default=Factory(lambda loc: _relays_plainly(loc), takes_self=True))


def _proxies_only(location: Location) -> bool:
    """No rewrite directives, access checks, ``internal`` or status page: the content phase is proxy_pass."""
    access, files = location.access, location.files
    return (
        location.proxy_pass is not None
        and location.rewrites is None
        and (files is None or not files.internal)
        and location.status_page is None
        and not access.checks
        and access.limited is None
    )


def _relays_plainly(location: Location) -> bool:
    """Neither proxy_intercept_errors, the limit_* directives nor gzip apply here (the head's own rules may)."""
    return not location.errors.intercept and location.limits is None and not location.gzip.enabled


@frozen
class ListenOptions:
    """The socket options of one listening address (``backlog=``, ``so_keepalive=``...)."""

    backlog: int = 511  # nginx's default on Linux
    reuseport: bool = False
    ipv6only: bool = True
    so_keepalive: bool | None = None  # None: the system's setting
    keepalive_timers: tuple[int | None, int | None, int | None] = (None, None, None)  # idle, interval, count
    deferred: bool = False
    fastopen: int | None = None
    bind: bool = False


@frozen
class Listen:
    """One ``listen`` of one server."""

    host: str  # "0.0.0.0", "::", or an address (no brackets)
    port: int
    default_server: bool
    source: Source
    proxy_protocol: bool = False  # "listen ... proxy_protocol"
    ssl: bool = False
    options: ListenOptions | None = None  # None: no socket option written on this listen


@frozen
class Server:
    names: tuple[str, ...]  # server_name values; ("",) by default
    listens: tuple[Listen, ...]
    locations: tuple[Location, ...]  # every one, nested, named and those "if" opens too, in config order
    source: Source
    # set_real_ip_from networks (ipaddress objects) and whether
    # "real_ip_header proxy_protocol" is in force, inherited from http.
    real_ip_from: tuple = ()
    real_ip_proxy_protocol: bool = False
    tls: ServerTLS | None = None  # None without ssl_certificate
    error_logs: tuple[ErrorLog, ...] = ()  # for its connections' messages outside a location
    client: ClientLimits = ClientLimits()
    access_logs: tuple[AccessLog, ...] = ()  # for requests refused or unrouted before a location
    rewrites: RewriteProgram | None = None  # the server's rewrite directives, before any location is chosen
    add_headers: tuple[AddedHeader, ...] = ()  # add_header for answers outside a location
    access: Access = Access()  # for requests no location takes
    errors: ErrorPages = ErrorPages()  # the error pages of answers outside a location
    files: FileSettings | None = None  # the server's root: files for a URI no location takes

    @property
    def name(self) -> str:
        """``$server_name``: the first name."""
        return self.names[0] if self.names else ""


@frozen
class Binding:
    """
    One socket to listen on, with the servers that answer on it: the virtual
    server is chosen among ``servers`` by Host, falling back to ``default``.
    """

    host: str
    port: int
    default: Server
    servers: tuple[Server, ...]
    # The PROXY header arrives before Host names a server, so these are per
    # address: a source trusted by any server on it is trusted.
    proxy_protocol: bool = False
    real_ip_from: tuple = ()
    real_ip_proxy_protocol: bool = False
    ssl: bool = False  # TLS on this socket (any "listen ... ssl" of it)
    options: ListenOptions = ListenOptions()


@frozen
class MapDef:
    """
    ``map SOURCE $variable { ... }``. Exact keys are stored lower-cased
    (nginx compares them case-insensitively); ``""`` is the empty-source key.
    With ``hostnames``, ``head`` holds ``*.example.com`` and ``.example.com``
    as ``example.com``, ``tail`` holds ``www.example.*`` as ``www.example``.
    Regexes keep file order, since the first match wins.
    """

    variable: str
    source_template: Template
    exact: Mapping[str, Template]
    default: Template
    source: Source
    head: Mapping[str, Template] = field(factory=dict)
    tail: Mapping[str, Template] = field(factory=dict)
    regexes: tuple[tuple[re.Pattern[str], Template], ...] = ()
    hostnames: bool = False  # also: one trailing dot of the source value is ignored
    volatile: bool = False  # evaluated at every use, never kept for the request

    def templates(self) -> list[Template]:
        """Every template the map may render, for walking what it depends on."""
        values = [*self.exact.values(), *self.head.values(), *self.tail.values()]
        return [self.source_template, self.default, *values, *(value for _, value in self.regexes)]


@frozen
class Workers:
    """Process-level settings (main and events context)."""

    processes: int = 1  # worker_processes; "auto" is resolved to the core count at load
    connections: int = 512  # worker_connections: per worker, both legs of a tunnel count
    rlimit_nofile: int | None = None  # worker_rlimit_nofile
    shutdown_timeout: float = 10.0  # worker_shutdown_timeout; nginx waits forever


@frozen
class Config:
    """The whole loaded configuration."""

    path: str
    bindings: tuple[Binding, ...]
    servers: tuple[Server, ...]
    upstreams: Mapping[str, Upstream]
    maps: Mapping[str, MapDef]
    error_logs: tuple[ErrorLog, ...]  # main level: messages with no request (start, reload, limits)
    notices: tuple[str, ...] = field(default=())  # "file:line: ..." ignored directives
    workers: Workers = field(factory=Workers)
    warnings: tuple[str, ...] = field(default=())  # "file:line: ..." e.g. an expired certificate
    log_formats: Mapping[str, LogFormat] = field(factory=dict)  # by name, "combined" included


class ConfigErrors(Exception):
    """Every mistake found in one load, so ``--check`` can list them all."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


