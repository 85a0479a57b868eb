"""
A throwaway PKI for the TLS tests, generated at run time with
``cryptography``: a CA, leaf certificates for chosen names (optionally
expired, encrypted, or signed by an unknown CA), client certificates, and
helpers to trust the CA from Python's ``ssl`` and to run TLS backends.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor
from twisted.internet.ssl import CertificateOptions

from support import BackendFactory, ScriptedBackend

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

# The seed's conf.d file with TLS on its listener: {port} is the backend's, {cert} and {key} the site's files.
SEED_003_TLS = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
}}
upstream websocket {{
    server localhost:{port};
}}
server {{
    server_name test.enzhico.net;
    listen 127.0.0.1:0 ssl;
    location / {{
        proxy_pass http://websocket;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
    }}
    ssl_certificate {cert};
    ssl_certificate_key {key};
}}
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wstunnel tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A CA that writes PEM files into ``directory``."""

    def __init__(self, directory: Path, name: str = "wstunnel test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = self._write(f"{name.replace(' ', '-')}.pem", self.cert.public_bytes(serialization.Encoding.PEM))

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def issue(
        self,
        file_stem: str,
        names: list[str],
        *,
        client: bool = False,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        password: bytes | None = None,
    ) -> tuple[str, str]:
        """A leaf for ``names`` (DNS names or IP literals): paths of its chain file and key file."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - DAY)
            .not_valid_after(not_after or NOW + 10 * DAY)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        chain = cert.public_bytes(serialization.Encoding.PEM)
        return self._write(f"{file_stem}.crt", chain), self._write(f"{file_stem}.key", key_pem)


def client_context(ca_path: str, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    """What a browser does: verify the server against the (test) CA."""
    context = ssl.create_default_context(cafile=ca_path)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def server_options(cert: tuple[str, str]) -> CertificateOptions:
    chain = x509.load_pem_x509_certificates(Path(cert[0]).read_bytes())
    key = serialization.load_pem_private_key(Path(cert[1]).read_bytes(), None)
    return CertificateOptions(privateKey=key, certificate=chain[0], acceptableProtocols=[b"http/1.1"])


def listen_tls_backend(
    on_head: Callable[[ScriptedBackend, bytes, bytes], None], cert: tuple[str, str], half_close: bool = False
) -> tuple[BackendFactory, Any]:
    """A scripted backend (tests/support.py) behind TLS, with certificate ``cert``."""
    factory = BackendFactory(on_head, half_close)
    port = reactor.listenSSL(0, factory, server_options(cert), interface="127.0.0.1")
    return factory, port


def any_cert_context() -> ssl.SSLContext:
    """A client that checks nothing, to see which certificate it is given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
