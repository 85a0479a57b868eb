"""
The directive table: every directive wstunnel accepts, the contexts it may
appear in, its argument counts, whether it opens a block or may be given
only once, and its handler.  A directive not in the table is an error, never
silently skipped: an ignored ``deny`` or ``auth_basic`` would open what the
operator closed.  Only directives that cannot change what is proxied
(``pid``, ``types``..., and the buffering, caching and tuning ones of
:mod:`wstunnel.config.tuning`) are accepted, with a notice.

A new directive is one line here and a handler in the module of its topic.
"""

from __future__ import annotations

from wstunnel.config import access, charset, cookies, errorpages, expires, files, gzip, limits, listens, locations, logs, maps, proxy, ratelimits, request_shape, resolver, response, rewrite, servers, tuning, upstream, workers
from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError
from wstunnel.config.nginx_names import NGINX_DIRECTIVES
from wstunnel.config.read import Stmt, ignored_notice
from wstunnel.config.walk import (
    ALL_CONTEXTS,
    EVENTS,
    HTTP,
    HTTP_LEVELS,
    LOCATION,
    MAIN,
    SERVER,
    SERVER_LEVELS,
    UPSTREAM,
    Load,
    Spec,
    spec,
)

__all__ = ["EXTENSIONS", "IGNORED_DIRECTIVES", "TABLE", "UPSTREAM_TABLE", "lookup"]


def ignored(load: Load, stmt: Stmt, level: Level) -> None:
    load.notices.append(ignored_notice(stmt.source, stmt.name))


# The directives of wstunnel's own, which nginx does not have (doc/configuration.md marks each).
EXTENSIONS = frozenset({"wstunnel_metrics", "proxy_upgrade_protocols", "wstunnel_tunnel_rate"})

TABLE: dict[str, Spec] = {
    "worker_processes": spec({MAIN}, 1, 1, workers.worker_processes, once=True),
    "events": spec({MAIN}, 0, 0, workers.events, block=True, once=True),
    "worker_connections": spec({EVENTS}, 1, 1, workers.worker_connections, once=True),
    "worker_rlimit_nofile": spec({MAIN}, 1, 1, workers.worker_rlimit_nofile, once=True),
    "worker_shutdown_timeout": spec({MAIN}, 1, 1, workers.worker_shutdown_timeout, once=True),
    "set_real_ip_from": spec({HTTP, SERVER}, 1, 1, servers.set_real_ip_from),
    "real_ip_header": spec({HTTP, SERVER}, 1, 1, servers.real_ip_header, once=True),
    "stub_status": spec({LOCATION}, 0, 1, locations.status_page),
    "wstunnel_metrics": spec({LOCATION}, 0, 1, locations.status_page),
    "http": spec({MAIN}, 0, 0, servers.http_block, block=True, once=True),
    "error_log": spec(ALL_CONTEXTS, 1, 2, logs.error_log),
    "map": spec({HTTP}, 2, 2, maps.map_block, block=True),
    "upstream": spec({HTTP}, 1, 1, upstream.upstream_block, block=True),
    "server": spec({HTTP}, 0, 0, servers.server_block, block=True),
    "listen": spec({SERVER}, 1, None, listens.listen),
    "server_name": spec({SERVER}, 1, None, servers.server_name),
    "location": spec({SERVER, LOCATION}, 1, 2, locations.location, block=True),
    "proxy_pass": spec({LOCATION}, 1, 1, proxy.proxy_pass, once=True),
    "return": spec({SERVER, LOCATION}, 1, 2, rewrite.return_directive),
    "proxy_http_version": spec(HTTP_LEVELS, 1, 1, proxy.proxy_http_version, once=True),
    "proxy_set_header": spec(HTTP_LEVELS, 2, 2, proxy.proxy_set_header),
    "proxy_upgrade_protocols": spec(HTTP_LEVELS, 1, None, proxy.proxy_upgrade_protocols, once=True),
    "access_log": spec(HTTP_LEVELS, 1, None, logs.access_log),
    "log_format": spec({HTTP}, 2, None, logs.log_format),
    "proxy_next_upstream": spec(HTTP_LEVELS, 1, None, upstream.next_upstream, once=True),
    "proxy_next_upstream_tries": spec(HTTP_LEVELS, 1, 1, upstream.next_upstream_limit, once=True),
    "proxy_next_upstream_timeout": spec(HTTP_LEVELS, 1, 1, upstream.next_upstream_limit, once=True),
    "proxy_connect_timeout": spec(HTTP_LEVELS, 1, 1, proxy.timeout, once=True),
    "proxy_read_timeout": spec(HTTP_LEVELS, 1, 1, proxy.timeout, once=True),
    "proxy_send_timeout": spec(HTTP_LEVELS, 1, 1, proxy.timeout, once=True),
    "send_timeout": spec(HTTP_LEVELS, 1, 1, proxy.timeout, once=True),
    "ssl_certificate": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_certificate_key": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_password_file": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_protocols": spec(SERVER_LEVELS, 1, None, servers.tls_setting),
    "ssl_ciphers": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_prefer_server_ciphers": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_session_timeout": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_session_tickets": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_client_certificate": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_verify_client": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_verify_depth": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_session_cache": spec(SERVER_LEVELS, 1, 2, servers.tls_setting),
    "ssl_dhparam": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_ecdh_curve": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_stapling": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_stapling_verify": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_stapling_file": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_stapling_responder": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "ssl_trusted_certificate": spec(SERVER_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_verify": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_trusted_certificate": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_verify_depth": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_name": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_server_name": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_protocols": spec(HTTP_LEVELS, 1, None, servers.tls_setting, once=True),
    "proxy_ssl_certificate": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_certificate_key": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "proxy_ssl_password_file": spec(HTTP_LEVELS, 1, 1, servers.tls_setting, once=True),
    "client_header_timeout": spec({HTTP, SERVER}, 1, 1, limits.client_time, once=True),
    "client_body_timeout": spec(HTTP_LEVELS, 1, 1, limits.client_time, once=True),
    "keepalive_timeout": spec(HTTP_LEVELS, 1, 2, limits.keepalive_timeout, once=True),
    "keepalive_requests": spec(HTTP_LEVELS, 1, 1, limits.client_count, once=True),
    "large_client_header_buffers": spec({HTTP, SERVER}, 2, 2, limits.header_buffers, once=True),
    "client_max_body_size": spec(HTTP_LEVELS, 1, 1, limits.client_max_body_size, once=True),
    "proxy_buffer_size": spec(HTTP_LEVELS, 1, 1, proxy.proxy_buffer_size, once=True),
    "proxy_hide_header": spec(HTTP_LEVELS, 1, 1, proxy.header_list),
    "proxy_pass_header": spec(HTTP_LEVELS, 1, 1, proxy.header_list),
    "proxy_redirect": spec(HTTP_LEVELS, 1, 2, proxy.proxy_redirect),
    "add_header": spec(HTTP_LEVELS, 2, 3, response.add_header),
    "server_tokens": spec(HTTP_LEVELS, 1, 1, response.server_tokens, once=True),
    # The rewrite module ("return" is above; what "if" blocks accept is config/walk.py's IF_DIRECTIVES).
    "rewrite": spec({SERVER, LOCATION}, 2, 3, rewrite.rewrite_directive),
    "set": spec({SERVER, LOCATION}, 2, 2, rewrite.set_directive),
    "if": spec({SERVER, LOCATION}, 1, None, rewrite.if_directive, block=True),
    "break": spec({SERVER, LOCATION}, 0, 0, rewrite.break_directive),
    "rewrite_log": spec(HTTP_LEVELS, 1, 1, rewrite.rewrite_log, once=True),
    # proxy_pass with variables: the DNS servers of request-time names.
    "resolver": spec(HTTP_LEVELS, 1, None, resolver.resolver, once=True),
    "resolver_timeout": spec(HTTP_LEVELS, 1, 1, resolver.resolver_timeout, once=True),
    # Compression (ngx_http_gzip_module, ngx_http_gzip_static_module).
    "gzip": spec(HTTP_LEVELS, 1, 1, gzip.gzip, once=True),
    "gzip_types": spec(HTTP_LEVELS, 1, None, gzip.gzip_types),
    "gzip_min_length": spec(HTTP_LEVELS, 1, 1, gzip.gzip_min_length, once=True),
    "gzip_comp_level": spec(HTTP_LEVELS, 1, 1, gzip.gzip_comp_level, once=True),
    "gzip_vary": spec(HTTP_LEVELS, 1, 1, gzip.gzip_vary, once=True),
    "gzip_proxied": spec(HTTP_LEVELS, 1, None, gzip.gzip_proxied),
    "gzip_disable": spec(HTTP_LEVELS, 1, None, gzip.gzip_disable),
    "gzip_http_version": spec(HTTP_LEVELS, 1, 1, gzip.gzip_http_version, once=True),
    "gzip_buffers": spec(HTTP_LEVELS, 2, 2, gzip.gzip_buffers, once=True),
    "gzip_static": spec(HTTP_LEVELS, 1, 1, gzip.gzip_static, once=True),
    # Response headers (resphdr): cookies, expires, charset and the upstream request's shape.
    "proxy_cookie_domain": spec(HTTP_LEVELS, 1, 2, cookies.cookie_rewrite),
    "proxy_cookie_path": spec(HTTP_LEVELS, 1, 2, cookies.cookie_rewrite),
    "proxy_cookie_flags": spec(HTTP_LEVELS, 1, None, cookies.cookie_flags),
    "expires": spec(HTTP_LEVELS, 1, 2, expires.expires, once=True),
    "charset": spec(HTTP_LEVELS, 1, 1, charset.charset_directive, once=True),
    "source_charset": spec(HTTP_LEVELS, 1, 1, charset.charset_directive, once=True),
    "override_charset": spec(HTTP_LEVELS, 1, 1, charset.charset_directive, once=True),
    "charset_types": spec(HTTP_LEVELS, 1, None, charset.charset_directive),
    "proxy_method": spec(HTTP_LEVELS, 1, 1, request_shape.request_shape_directive, once=True),
    "proxy_pass_request_headers": spec(HTTP_LEVELS, 1, 1, request_shape.request_shape_directive, once=True),
    "proxy_pass_request_body": spec(HTTP_LEVELS, 1, 1, request_shape.request_shape_directive, once=True),
    "ignore_invalid_headers": spec({HTTP, SERVER}, 1, 1, request_shape.ignore_invalid_headers, once=True),
    "client_body_buffer_size": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "sendfile_max_chunk": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "aio": spec(HTTP_LEVELS, 1, 1, tuning.aio, once=True),
    "aio_write": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "directio": spec(HTTP_LEVELS, 1, 1, tuning.accepted, once=True),
    "directio_alignment": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "read_ahead": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "proxy_ignore_headers": spec(HTTP_LEVELS, 1, None, tuning.ignore_headers),
    "output_buffers": spec(HTTP_LEVELS, 2, 2, tuning.buffers, once=True),
    "postpone_output": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "proxy_ignore_client_abort": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    # Access control: allow/deny, satisfy, auth_basic, auth_request, limit_except.
    "allow": spec(access.ACCESS_LEVELS, 1, 1, access.allow_deny),
    "deny": spec(access.ACCESS_LEVELS, 1, 1, access.allow_deny),
    "satisfy": spec(HTTP_LEVELS, 1, 1, access.satisfy, once=True),
    "auth_basic": spec(access.ACCESS_LEVELS, 1, 1, access.auth_basic, once=True),
    "auth_basic_user_file": spec(access.ACCESS_LEVELS, 1, 1, access.auth_basic_user_file, once=True),
    "auth_request": spec(HTTP_LEVELS, 1, 1, access.auth_request, once=True),
    "auth_request_set": spec(HTTP_LEVELS, 2, 2, access.auth_request_set),
    "limit_except": spec({LOCATION}, 1, None, access.limit_except, block=True, once=True),
    # Per-client limits: limit_conn, limit_req, limit_rate, the tunnel rate.
    "limit_conn_zone": spec({HTTP}, 2, 2, ratelimits.limit_conn_zone),
    "limit_conn": spec(HTTP_LEVELS, 2, 2, ratelimits.limit_conn),
    "limit_conn_status": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_status, once=True),
    "limit_conn_log_level": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_level, once=True),
    "limit_conn_dry_run": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_flag, once=True),
    "limit_req_zone": spec({HTTP}, 3, 4, ratelimits.limit_req_zone),
    "limit_req": spec(HTTP_LEVELS, 1, 3, ratelimits.limit_req),
    "limit_req_status": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_status, once=True),
    "limit_req_log_level": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_level, once=True),
    "limit_req_dry_run": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_flag, once=True),
    "limit_rate": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_rate, once=True),
    "limit_rate_after": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_size, once=True),
    "proxy_limit_rate": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_size, once=True),
    "wstunnel_tunnel_rate": spec(HTTP_LEVELS, 1, 1, ratelimits.limit_size, once=True),
    # Error pages: error_page, recursive_error_pages, proxy_intercept_errors.
    "error_page": spec(HTTP_LEVELS, 2, None, errorpages.error_page),
    "recursive_error_pages": spec(HTTP_LEVELS, 1, 1, errorpages.error_switch, once=True),
    "proxy_intercept_errors": spec(HTTP_LEVELS, 1, 1, errorpages.error_switch, once=True),
    # Serving files (wstunnel.config.files).
    "root": spec(HTTP_LEVELS, 1, 1, files.root),
    "alias": spec({LOCATION}, 1, 1, files.alias),
    "index": spec(HTTP_LEVELS, 1, None, files.index),
    "try_files": spec({SERVER, LOCATION}, 2, None, files.try_files, once=True),
    "autoindex": spec(HTTP_LEVELS, 1, 1, files.file_flag, once=True),
    "etag": spec(HTTP_LEVELS, 1, 1, files.file_flag, once=True),
    "log_not_found": spec(HTTP_LEVELS, 1, 1, files.file_flag, once=True),
    "if_modified_since": spec(HTTP_LEVELS, 1, 1, files.if_modified_since, once=True),
    "types": spec(HTTP_LEVELS, 0, 0, files.types_block, block=True),
    "default_type": spec(HTTP_LEVELS, 1, 1, files.default_type, once=True),
    "internal": spec({LOCATION}, 0, 0, files.internal, once=True),
    "disable_symlinks": spec(HTTP_LEVELS, 1, 2, files.disable_symlinks, once=True),
    # Accepted and ignored: none of these can change what is proxied.
    "pid": spec({MAIN}, 1, 1, ignored, once=True),
    "user": spec({MAIN}, 1, 2, ignored, once=True),
    "use": spec({EVENTS}, 1, 1, ignored, once=True),
    "multi_accept": spec({EVENTS}, 1, 1, ignored, once=True),
    "accept_mutex": spec({EVENTS}, 1, 1, ignored, once=True),
    # Buffering, caching and tuning: accepted, checked, with a notice of what wstunnel does instead.
    "proxy_buffering": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_request_buffering": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_buffers": spec(HTTP_LEVELS, 2, 2, tuning.buffers, once=True),
    "proxy_busy_buffers_size": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "proxy_max_temp_file_size": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "proxy_temp_file_write_size": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    **{
        f"{prefix}_temp_path": spec(HTTP_LEVELS, 1, 4, tuning.temp_path, once=True)
        for prefix in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    },
    "proxy_cache": spec(HTTP_LEVELS, 1, 1, tuning.accepted, once=True),
    "proxy_cache_background_update": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_cache_bypass": spec(HTTP_LEVELS, 1, None, tuning.accepted),
    "proxy_cache_convert_head": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_cache_key": spec(HTTP_LEVELS, 1, 1, tuning.accepted, once=True),
    "proxy_cache_lock": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_cache_lock_age": spec(HTTP_LEVELS, 1, 1, tuning.duration, once=True),
    "proxy_cache_lock_timeout": spec(HTTP_LEVELS, 1, 1, tuning.duration, once=True),
    "proxy_cache_max_range_offset": spec(HTTP_LEVELS, 1, 1, tuning.size, once=True),
    "proxy_cache_methods": spec(HTTP_LEVELS, 1, None, tuning.accepted, once=True),
    "proxy_cache_min_uses": spec(HTTP_LEVELS, 1, 1, tuning.number, once=True),
    "proxy_cache_path": spec({HTTP}, 2, None, tuning.accepted),
    "proxy_cache_revalidate": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "proxy_cache_use_stale": spec(HTTP_LEVELS, 1, None, tuning.accepted, once=True),
    "proxy_cache_valid": spec(HTTP_LEVELS, 1, None, tuning.accepted),
    "proxy_no_cache": spec(HTTP_LEVELS, 1, None, tuning.accepted),
    "sendfile": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "tcp_nopush": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "tcp_nodelay": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    **{
        f"{table}_hash_{part}_size": spec(contexts, 1, 1, tuning.number, once=True)
        for table, contexts in (
            ("server_names", {HTTP}),
            ("map", {HTTP}),
            ("variables", {HTTP}),
            ("types", HTTP_LEVELS),
            ("proxy_headers", HTTP_LEVELS),
        )
        for part in ("bucket", "max")
    },
    "open_file_cache": spec(HTTP_LEVELS, 1, 2, tuning.accepted, once=True),
    "open_file_cache_errors": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "open_file_cache_min_uses": spec(HTTP_LEVELS, 1, 1, tuning.number, once=True),
    "open_file_cache_valid": spec(HTTP_LEVELS, 1, 1, tuning.duration, once=True),
    "reset_timedout_connection": spec(HTTP_LEVELS, 1, 1, tuning.flag, once=True),
    "chunked_transfer_encoding": spec(HTTP_LEVELS, 1, 1, tuning.chunked_transfer_encoding, once=True),
    "keepalive_disable": spec(HTTP_LEVELS, 1, None, tuning.keepalive_disable, once=True),
}
UPSTREAM_TABLE: dict[str, Spec] = {
    "server": spec({UPSTREAM}, 1, None, upstream.upstream_server),
    "least_conn": spec({UPSTREAM}, 0, 0, upstream.balancing, once=True),
    "ip_hash": spec({UPSTREAM}, 0, 0, upstream.balancing, once=True),
    "hash": spec({UPSTREAM}, 1, 2, upstream.balancing, once=True),
    "random": spec({UPSTREAM}, 0, 2, upstream.balancing, once=True),
    "keepalive": spec({UPSTREAM}, 1, 1, upstream.upstream_keepalive, once=True),
    "keepalive_timeout": spec({UPSTREAM}, 1, 1, upstream.upstream_keepalive, once=True),
    "keepalive_requests": spec({UPSTREAM}, 1, 1, limits.client_count, once=True),
}

IGNORED_DIRECTIVES = frozenset(
    name for name, entry in TABLE.items() if entry.handler is ignored or entry.handler in tuning.HANDLERS
)


def lookup(stmt: Stmt, ctx: str) -> Spec:
    """The entry for ``stmt`` in ``ctx``: inside ``upstream``, its own directives come first."""
    entry = UPSTREAM_TABLE.get(stmt.name) if ctx == UPSTREAM else None
    entry = entry or TABLE.get(stmt.name)
    if entry is None and stmt.name in UPSTREAM_TABLE:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is not allowed here')
    if entry is None:
        raise _unknown(stmt)
    return entry


def _unknown(stmt: Stmt) -> ConfigError:
    if stmt.name in NGINX_DIRECTIVES:
        return ConfigError(stmt.source, f'"{stmt.name}" is not supported by wstunnel')
    return ConfigError(stmt.source, f'unknown directive "{stmt.name}"')
