"""
TLS settings: the ``ssl_*`` and ``proxy_ssl_*`` directives turned into
immutable values, with every certificate and key loaded and checked once,
when the configuration is loaded.

A certificate problem must stop ``--check`` and startup with the file and
line of the directive and a plain reason, never surface as an OpenSSL error
list at the first handshake (or as a passphrase prompt on the terminal).
This module does the loading with ``cryptography`` and knows nothing of
sockets or Twisted; the values it makes are in :mod:`wstunnel.config.model`,
:mod:`wstunnel.net.tls` builds OpenSSL contexts from them, and the rules a
request obeys on a TLS connection are in :mod:`wstunnel.core.tls_rules`.
"""

from __future__ import annotations

import datetime
import os
from typing import Callable, Collection, Mapping

from attrs import define, field, frozen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from OpenSSL import SSL
from OpenSSL._util import lib as _lib

from wstunnel.config.model import Binding, ConfigError, KeyPair, Server, ServerTLS, Source, UpstreamTLS
from wstunnel.config.units import parse_size, parse_time

__all__ = [
    "KINDS",
    "Materials",
    "Setting",
    "check_bindings",
    "flag_on",
    "parse_setting",
    "server_tls",
    "set_groups",
    "upstream_tls",
]

# The kind of value of each directive; its contexts and argument counts are in the directive table.
KINDS: dict[str, str] = {
    "ssl_certificate": "path",
    "ssl_certificate_key": "path",
    "ssl_password_file": "path",
    "ssl_protocols": "protocols",
    "ssl_ciphers": "ciphers",
    "ssl_prefer_server_ciphers": "flag",
    "ssl_session_cache": "session_cache",
    "ssl_session_timeout": "time",
    "ssl_session_tickets": "flag",
    "ssl": "flag",
    "ssl_dhparam": "path",
    "ssl_ecdh_curve": "groups",
    "ssl_stapling": "flag",
    "ssl_stapling_verify": "flag",
    "ssl_stapling_file": "path",
    "ssl_stapling_responder": "name",
    "ssl_trusted_certificate": "path",
    "ssl_client_certificate": "path",
    "ssl_verify_client": "verify_client",
    "ssl_verify_depth": "number",
    "proxy_ssl_verify": "flag",
    "proxy_ssl_trusted_certificate": "path",
    "proxy_ssl_verify_depth": "number",
    "proxy_ssl_name": "name",
    "proxy_ssl_server_name": "flag",
    "proxy_ssl_protocols": "protocols",
    "proxy_ssl_certificate": "path",
    "proxy_ssl_certificate_key": "path",
    "proxy_ssl_password_file": "path",
}

DEFAULT_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
_SUPPORTED_PROTOCOLS = frozenset(DEFAULT_PROTOCOLS)
_OBSOLETE_PROTOCOLS = frozenset({"SSLv2", "SSLv3"})
# Accepted as nginx accepts them; OpenSSL 3 at its default security level
# cannot complete their handshakes under nginx either.
_REFUSED_BY_OPENSSL = ("TLSv1", "TLSv1.1")
_SMALLEST_SHARED_CACHE = 32768  # nginx: 8 pages
_VERIFY_CLIENT = ("on", "off", "optional")


@frozen
class Setting:
    """One ``ssl_*``/``proxy_ssl_*`` directive: its checked value and where it was written."""

    value: object
    source: Source
    args: tuple[str, ...] = ()  # of every occurrence so far, for the directives that add up


def parse_setting(
    name: str, args: tuple[str, ...], source: Source, warnings: list[str], previous: Setting | None = None
) -> Setting:
    """
    Check a directive's arguments now, so a typo is reported even where it
    is never used.  ``previous`` is the same directive earlier on the same
    level: as in nginx, ``ssl_protocols`` and ``ssl_session_cache`` add up
    (certbot's included file often repeats the site's ``ssl_protocols``).
    """
    earlier = () if previous is None else previous.args
    warnings.extend(f"{source}: {warning}" for warning in _warnings(name, args, earlier))
    combined = earlier + args
    return Setting(_PARSERS[KINDS[name]](name, combined, source), source, combined)


def _warnings(name: str, args: tuple[str, ...], earlier: tuple[str, ...]) -> list[str]:
    if name == "ssl":
        return ['the "ssl" directive is deprecated, use the "listen ... ssl" directive instead']
    if name != "ssl_protocols":
        return []
    repeated = [arg for i, arg in enumerate(args) if arg in earlier or arg in args[:i]]
    warnings = [f'duplicate value "{arg}" in "ssl_protocols" directive' for arg in repeated]
    old = [arg for arg in _REFUSED_BY_OPENSSL if arg in args and arg not in earlier]
    if old:
        warnings.append(
            f'"ssl_protocols" {" ".join(old)}: OpenSSL\'s security level refuses these handshakes, '
            "as it does under nginx; TLSv1.2 and TLSv1.3 are negotiated"
        )
    return warnings


def _invalid(name: str, value: str, source: Source, hint: str = "") -> ConfigError:
    return ConfigError(source, f'invalid value "{value}" in "{name}" directive{hint}')


def _path(name: str, args: tuple[str, ...], source: Source) -> str:
    if "$" in args[0]:
        raise ConfigError(source, f'variables in "{name}" are not supported by wstunnel')
    if args[0].startswith("data:"):
        raise ConfigError(source, f'"data:" values in "{name}" are not supported by wstunnel')
    return args[0]


def _protocols(name: str, args: tuple[str, ...], source: Source) -> tuple[str, ...]:
    for arg in args:
        if arg in _OBSOLETE_PROTOCOLS:
            raise ConfigError(
                source, f'"{name}" value "{arg}" is not supported by wstunnel (insecure): use TLSv1.2 and TLSv1.3'
            )
        if arg not in _SUPPORTED_PROTOCOLS and arg not in _REFUSED_BY_OPENSSL:
            raise _invalid(name, arg, source)
    usable = tuple(sorted(_SUPPORTED_PROTOCOLS.intersection(args)))
    if not usable:
        raise ConfigError(source, f'"{name}" names no protocol OpenSSL allows: add TLSv1.2 or TLSv1.3')
    return usable


def _session_cache(name: str, args: tuple[str, ...], source: Source) -> bool:
    """
    Whether sessions are kept, by nginx's rules: the last of ``off``,
    ``none`` and ``builtin`` decides, and a ``shared`` zone counts only
    when none of them is written.  ``builtin`` and ``shared`` both mean
    OpenSSL's cache in each process.
    """
    builtin, shared = None, False
    for arg in args:
        kind = _cache_kind(arg, source)
        if kind == "shared":
            shared = True
        else:
            builtin = kind
    return builtin == "builtin" or (builtin is None and shared)


def _cache_kind(arg: str, source: Source) -> str:
    if arg in ("off", "none"):
        return arg
    kind, _, rest = arg.partition(":")
    if kind == "builtin" and (not rest or (rest.isdigit() and int(rest) > 0)):
        return kind
    zone, _, size = rest.partition(":")
    if kind != "shared" or not zone or not size:
        raise ConfigError(source, f'invalid session cache "{arg}"')
    try:
        if parse_size(size) < _SMALLEST_SHARED_CACHE:
            raise ConfigError(source, f'session cache "{arg}" is too small')
    except ValueError:
        raise ConfigError(source, f'invalid session cache "{arg}"') from None
    return kind


def set_groups(ctx: SSL.Context, groups: str) -> None:
    """
    The key exchange groups of ``ssl_ecdh_curve`` (pyOpenSSL binds only
    the single-curve call).  Raises ``SSL.Error`` for a name OpenSSL lacks.
    """
    if groups != "auto" and not _lib.SSL_CTX_set1_curves_list(ctx._context, groups.encode("ascii")):
        _lib.ERR_clear_error()  # else a later, unrelated pyOpenSSL call reports it
        raise SSL.Error(f"unknown group in {groups!r}")


def _groups(name: str, args: tuple[str, ...], source: Source) -> str:
    try:
        set_groups(SSL.Context(SSL.TLS_METHOD), args[0])
    except (SSL.Error, UnicodeEncodeError):
        raise ConfigError(source, f'OpenSSL refuses the groups "{args[0]}" of the "{name}" directive') from None
    return args[0]


def _ciphers(name: str, args: tuple[str, ...], source: Source) -> str:
    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(args[0].encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise ConfigError(source, f'no cipher in "{args[0]}" of the "{name}" directive is known to OpenSSL') from None
    return args[0]


def _flag(name: str, args: tuple[str, ...], source: Source) -> bool:
    if args[0] not in ("on", "off"):
        raise _invalid(name, args[0], source, ', it must be "on" or "off"')
    return args[0] == "on"


def _time(name: str, args: tuple[str, ...], source: Source) -> float:
    try:
        return parse_time(args[0])
    except ValueError as exc:
        raise ConfigError(source, f'"{name}" directive {exc}') from None


def _number(name: str, args: tuple[str, ...], source: Source) -> int:
    if not args[0].isdigit() or not 0 <= int(args[0]) <= 100:
        raise _invalid(name, args[0], source)
    return int(args[0])


def _verify_client(name: str, args: tuple[str, ...], source: Source) -> str:
    if args[0] == "optional_no_ca":
        raise ConfigError(source, '"ssl_verify_client optional_no_ca" is not supported by wstunnel')
    if args[0] not in _VERIFY_CLIENT:
        raise _invalid(name, args[0], source, ', it must be "on", "off" or "optional"')
    return args[0]


def _name(name: str, args: tuple[str, ...], source: Source) -> str:
    if "$" in args[0]:
        raise ConfigError(source, f'variables in "{name}" are not supported by wstunnel')
    return args[0].lower()


_PARSERS: dict[str, Callable[[str, tuple[str, ...], Source], object]] = {
    "path": _path,
    "protocols": _protocols,
    "ciphers": _ciphers,
    "session_cache": _session_cache,
    "groups": _groups,
    "flag": _flag,
    "time": _time,
    "number": _number,
    "verify_client": _verify_client,
    "name": _name,
}


# -- loaded material -------------------------------------------------------------------


@define
class Materials:
    """
    Loads certificate and key files once per load (an ``ssl_certificate``
    at http level serves every server), collecting expiry warnings.
    """

    base_dir: str
    now: datetime.datetime
    warnings: list[str] = field(factory=list)
    _pairs: dict[tuple[str, str, str | None], KeyPair] = field(factory=dict)
    _ca_files: set[str] = field(factory=set)

    def path(self, setting: Setting) -> str:
        """nginx resolves relative paths against the configuration's directory."""
        return os.path.join(self.base_dir, str(setting.value))

    def key_pair(self, cert: Setting, key: Setting, password: Setting | None, prefix: str) -> KeyPair:
        cert_path, key_path = self.path(cert), self.path(key)
        password_path = self.path(password) if password is not None else None
        cache_key = (cert_path, key_path, password_path)
        if cache_key not in self._pairs:
            chain = self._certificates(cert, cert_path, f"{prefix}certificate")
            passwords = self._passwords(password, password_path, f"{prefix}password_file")
            private_key = self._key(key, key_path, passwords, f"{prefix}certificate_key")
            if _public_der(chain[0].public_key()) != _public_der(private_key.public_key()):  # type: ignore[attr-defined]
                raise ConfigError(
                    key.source, f'{prefix}certificate_key "{key_path}" does not match the certificate "{cert_path}"'
                )
            self._check_dates(chain[0], cert, cert_path, prefix)
            self._pairs[cache_key] = KeyPair(cert_path, chain, private_key)
        return self._pairs[cache_key]

    def ca_file(self, setting: Setting, directive: str) -> str:
        """A file of trusted CA certificates, checked to be PEM; OpenSSL reads it by path."""
        path = self.path(setting)
        if path not in self._ca_files:
            self._certificates(setting, path, directive)
            self._ca_files.add(path)
        return path

    def dhparam(self, setting: Setting) -> str:
        """A PEM file of DH parameters (for DHE ciphers), checked now; OpenSSL reads it by path."""
        path = self.path(setting)
        self._read(setting, path, "ssl_dhparam")
        try:
            SSL.Context(SSL.TLS_METHOD).load_tmp_dh(path.encode())
        except SSL.Error:
            raise ConfigError(setting.source, f'ssl_dhparam "{path}": not a PEM file of DH parameters') from None
        return path

    def ocsp_response(self, setting: Setting) -> bytes:
        """The DER OCSP response of ``ssl_stapling_file``, stapled as it is."""
        path = self.path(setting)
        data = self._read(setting, path, "ssl_stapling_file")
        try:
            ocsp.load_der_ocsp_response(data)
        except ValueError:
            raise ConfigError(setting.source, f'ssl_stapling_file "{path}": not a DER OCSP response') from None
        return data

    def warn(self, message: str) -> None:
        """A warning once, though an http-level directive reaches it through every server."""
        if message not in self.warnings:
            self.warnings.append(message)

    def _read(self, setting: Setting, path: str, directive: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError(setting.source, f'{directive} "{path}": cannot read the file ({exc.strerror})') from None

    def _certificates(self, setting: Setting, path: str, directive: str) -> tuple[x509.Certificate, ...]:
        data = self._read(setting, path, directive)
        try:
            return tuple(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise ConfigError(setting.source, f'{directive} "{path}": not a PEM certificate file') from None

    def _passwords(self, setting: Setting | None, path: str | None, directive: str) -> list[bytes] | None:
        if setting is None or path is None:
            return None
        lines = self._read(setting, path, directive).splitlines()
        return [line for line in lines if line] or [b""]

    def _key(self, setting: Setting, path: str, passwords: list[bytes] | None, directive: str) -> object:
        data = self._read(setting, path, directive)
        if b"-----BEGIN" not in data:
            raise ConfigError(setting.source, f'{directive} "{path}": not a PEM private key file')
        for password in passwords or [None]:  # type: ignore[list-item]
            try:
                return serialization.load_pem_private_key(data, password)
            except TypeError:
                if passwords is None:
                    raise ConfigError(
                        setting.source,
                        f'{directive} "{path}": the key is encrypted and no "{directive.replace("certificate_key", "password_file")}" is set',
                    ) from None
            except ValueError:
                if passwords is None:
                    raise ConfigError(setting.source, f'{directive} "{path}": not a PEM private key file') from None
        raise ConfigError(setting.source, f'{directive} "{path}": no password in the password file decrypts the key')

    def _check_dates(self, leaf: x509.Certificate, setting: Setting, path: str, prefix: str) -> None:
        if leaf.not_valid_after_utc < self.now:
            self.warnings.append(
                f'{setting.source}: {prefix}certificate "{path}" expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC'
            )
        elif leaf.not_valid_before_utc > self.now:
            self.warnings.append(
                f'{setting.source}: {prefix}certificate "{path}" is not valid before '
                f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
            )


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- building settings from the directives in force -------------------------------------------


def server_tls(raw: Mapping[str, Setting], materials: Materials) -> ServerTLS | None:
    """The TLS side of a server, or None when it has no ``ssl_certificate``."""
    cert, key = raw.get("ssl_certificate"), raw.get("ssl_certificate_key")
    if cert is None and key is None:
        return None
    if cert is None:
        assert key is not None
        raise ConfigError(key.source, 'no "ssl_certificate" is defined for the "ssl_certificate_key" directive')
    if key is None:
        raise ConfigError(cert.source, f'no "ssl_certificate_key" is defined for certificate "{cert.value}"')
    pair = materials.key_pair(cert, key, raw.get("ssl_password_file"), "ssl_")
    verify = _value(raw, "ssl_verify_client", "off")
    ca = raw.get("ssl_client_certificate")
    if verify != "off" and ca is None:
        raise ConfigError(raw["ssl_verify_client"].source, 'no "ssl_client_certificate" for "ssl_verify_client"')
    trusted = raw.get("ssl_trusted_certificate")
    if trusted is not None:
        materials.ca_file(trusted, "ssl_trusted_certificate")
    dhparam = raw.get("ssl_dhparam")
    return ServerTLS(
        key_pair=pair,
        protocols=_value(raw, "ssl_protocols", DEFAULT_PROTOCOLS),
        ciphers=_value(raw, "ssl_ciphers", None),
        session_timeout=_value(raw, "ssl_session_timeout", 300.0),
        session_tickets=_value(raw, "ssl_session_tickets", True),
        client_ca_file=None if ca is None else materials.ca_file(ca, "ssl_client_certificate"),
        verify_client=verify,
        verify_depth=_value(raw, "ssl_verify_depth", 1),
        prefer_server_ciphers=_value(raw, "ssl_prefer_server_ciphers", False),
        session_cache=_value(raw, "ssl_session_cache", False),
        dhparam_file=None if dhparam is None else materials.dhparam(dhparam),
        ecdh_curve=_value(raw, "ssl_ecdh_curve", "auto"),
        ocsp_response=_staple(raw, materials),
    )


def _staple(raw: Mapping[str, Setting], materials: Materials) -> bytes | None:
    """
    The response to staple.  wstunnel never asks an OCSP responder: without
    ``ssl_stapling_file`` it serves without stapling, as nginx does when its
    responder cannot be reached.
    """
    stapling = raw.get("ssl_stapling")
    if stapling is None or not stapling.value:
        return None
    response = raw.get("ssl_stapling_file")
    if response is None:
        materials.warn(
            f'{stapling.source}: "ssl_stapling" ignored, wstunnel staples only from "ssl_stapling_file"'
        )
        return None
    return materials.ocsp_response(response)


def upstream_tls(raw: Mapping[str, Setting], default_name: str, materials: Materials) -> UpstreamTLS:
    """The TLS settings for a location that proxies to ``https://``."""
    cert, key = raw.get("proxy_ssl_certificate"), raw.get("proxy_ssl_certificate_key")
    if (cert is None) != (key is None):
        present = cert or key
        assert present is not None
        raise ConfigError(
            present.source, '"proxy_ssl_certificate" and "proxy_ssl_certificate_key" must be given together'
        )
    client = None
    if cert is not None and key is not None:
        client = materials.key_pair(cert, key, raw.get("proxy_ssl_password_file"), "proxy_ssl_")
    trusted = raw.get("proxy_ssl_trusted_certificate")
    return UpstreamTLS(
        verify=_value(raw, "proxy_ssl_verify", True),
        trusted_file=None if trusted is None else materials.ca_file(trusted, "proxy_ssl_trusted_certificate"),
        verify_depth=_value(raw, "proxy_ssl_verify_depth", 9),
        name=_value(raw, "proxy_ssl_name", default_name),
        server_name=_value(raw, "proxy_ssl_server_name", True),
        protocols=_value(raw, "proxy_ssl_protocols", DEFAULT_PROTOCOLS),
        client=client,
    )


def flag_on(raw: Mapping[str, Setting], name: str) -> bool:
    """Whether an on/off directive in force is on (``ssl on``: every listen of the server is TLS)."""
    return bool(_value(raw, name, False))


def _value(raw: Mapping[str, Setting], name: str, default):  # type: ignore[no-untyped-def]
    setting = raw.get(name)
    return default if setting is None else setting.value


def check_bindings(bindings: tuple[Binding, ...], failed: Collection[int] = ()) -> list[ConfigError]:
    """
    Every server on a TLS socket needs a certificate, and a socket is TLS
    or not for all its servers: a wildcard listen takes the specific
    addresses of its port (one socket), so they must agree with it.
    ``failed`` holds ``id()`` of servers whose certificate was already
    reported as unusable.
    """
    errors = []
    for binding in bindings:
        if binding.ssl:
            errors.extend(
                ConfigError(_listen_source(s, binding), 'no "ssl_certificate" is defined for the "listen ... ssl" directive')
                for s in binding.servers
                if s.tls is None and id(s) not in failed
            )
    wild = {(b.port, ":" in b.host): b for b in bindings if b.host in ("0.0.0.0", "::")}
    for binding in bindings:
        other = wild.get((binding.port, ":" in binding.host))
        if other is not None and other is not binding and other.ssl != binding.ssl:
            errors.append(
                ConfigError(
                    _listen_source(binding.default, binding),
                    f'"listen {binding.host}:{binding.port}" and a wildcard listen on port {binding.port} '
                    'must both use "ssl" or neither',
                )
            )
    return errors


def _listen_source(server: Server, binding: Binding) -> Source:
    return next((l.source for l in server.listens if (l.host, l.port) == (binding.host, binding.port)), server.source)
