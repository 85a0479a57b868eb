"""
The TLS lines people copy from certbot's ``options-ssl-nginx.conf`` and the
Mozilla SSL configuration generator: checked with nginx's wording at
FILE:LINE, and honoured over loopback (tickets off, the server's cipher
order, DH parameters for DHE ciphers, a stapled OCSP response, ``ssl on``,
ALPN with ``listen ... http2``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import threads
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from support import aio, config_errors, listen_backend, load_text, ok_and_close
from tls_support import DAY, NOW, any_cert_context, client_context
from wstunnel.app.tap import check
from wstunnel.net.tls import ContextCache

# RFC 7919's ffdhe2048 group, as `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048` writes it.
FFDHE2048 = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

# certbot's /etc/letsencrypt/options-ssl-nginx.conf, plus the ssl_dhparam line certbot adds to the site.
CERTBOT_OPTIONS = """
ssl_session_cache shared:le_nginx_SSL:10m;
ssl_session_timeout 1440m;
ssl_session_tickets off;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_prefer_server_ciphers off;
ssl_ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";
"""

# The Mozilla generator's "intermediate" server for nginx 1.22 (its add_header and resolver lines left out).
MOZILLA_INTERMEDIATE = """
server {{
    listen 127.0.0.1:0 ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_timeout 1d;
    ssl_session_cache shared:MozSSL:10m;
    ssl_session_tickets off;
    ssl_dhparam {dhparam};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {ca};
    ssl_stapling_file {ocsp};
    location / {{ proxy_pass http://127.0.0.1:{backend}; }}
}}
"""

DHE = "DHE-RSA-AES128-GCM-SHA256"
ECDHE_128, ECDHE_256 = "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"


@pytest.fixture(scope="module")
def rsa_site(ca, tmp_path_factory) -> tuple[str, str]:
    """An RSA certificate for 127.0.0.1 (DHE-RSA suites need one), signed by the test CA."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 10 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("rsa")
    cert_path, key_path = directory / "rsa.crt", directory / "rsa.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def files(ca, rsa_site, tmp_path_factory) -> dict[str, str]:
    """The site's files: certificate, key, CA, DH parameters and an OCSP response for the certificate."""
    directory = tmp_path_factory.mktemp("tls-lines")
    dhparam = directory / "ssl-dhparams.pem"
    dhparam.write_text(FFDHE2048)
    leaf = x509.load_pem_x509_certificate(Path(rsa_site[0]).read_bytes())
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(leaf, ca.cert, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, NOW, NOW + DAY, None, None)
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
        .sign(ca.key, hashes.SHA256())
    )
    staple = directory / "ocsp.der"
    staple.write_bytes(response.public_bytes(serialization.Encoding.DER))
    return {"cert": rsa_site[0], "key": rsa_site[1], "ca": ca.path, "dhparam": str(dhparam), "ocsp": str(staple)}


def tls12(ciphers: str | None = None) -> ssl.SSLContext:
    context = any_cert_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


async def handshake(port: int, context: ssl.SSLContext) -> ssl.SSLObject:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    writer.close()
    return writer.get_extra_info("ssl_object")


async def https_get(port: int, context: ssl.SSLContext) -> tuple[bytes, str | None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return await reader.read(), writer.get_extra_info("ssl_object").selected_alpn_protocol()
    finally:
        writer.close()


def stapled(port: int) -> bytes:
    """A blocking client (run in a thread) that asks for the OCSP staple; what it was given."""
    got: list[bytes] = []
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_ocsp_client_callback(lambda conn, data, _: got.append(data) or True)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # Blocking for pyOpenSSL, yet bounded: a silent server fails the test after 5 s.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        conn = SSL.Connection(ctx, sock)
        conn.request_ocsp()
        conn.set_connect_state()
        conn.do_handshake()
        conn.shutdown()
    return got[0]


def intermediate(files: dict[str, str], backend: int, **changes: str) -> str:
    conf = MOZILLA_INTERMEDIATE.format(backend=backend, **files)
    for old, new in changes.items():
        conf = conf.replace(old, new)
    return conf


# -- over loopback ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_mozilla_intermediate_server(files, proxy_services) -> None:
    """Tickets really off, DHE available through ssl_dhparam, the file's OCSP response stapled, ALPN http/1.1."""
    factory, bport = listen_backend(ok_and_close)
    try:
        service, port = proxy_services(intermediate(files, bport.getHost().port))
        assert service.runtime.config.notices == (f"{service.runtime.config.path}:3: \"listen ... http2\": "
                                                  'wstunnel serves HTTP/1.1 only, its ALPN offers "http/1.1"',)
        session = await aio(handshake(port, tls12()))
        assert session.session is not None and not session.session.has_ticket
        assert (await aio(handshake(port, tls12(DHE)))).cipher()[0] == DHE
        browser = any_cert_context()
        browser.set_alpn_protocols(["h2", "http/1.1"])
        answer, alpn = await aio(https_get(port, browser))
        assert (answer.split(b"\r\n")[0], alpn) == (b"HTTP/1.1 200 OK", "http/1.1")
        assert await threads.deferToThread(stapled, port) == Path(files["ocsp"]).read_bytes()
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_without_ssl_dhparam_no_dhe_suite_is_offered(files, proxy_services) -> None:
    _, port = proxy_services(intermediate(files, 9, **{f"ssl_dhparam {files['dhparam']};": ""}))
    with pytest.raises(ssl.SSLError):
        await aio(handshake(port, tls12(DHE)))


@pytest_twisted.ensureDeferred
async def test_tickets_on_give_a_ticket(files, proxy_services) -> None:
    _, port = proxy_services(intermediate(files, 9, **{"ssl_session_tickets off": "ssl_session_tickets on"}))
    assert (await aio(handshake(port, tls12()))).session.has_ticket


def resumed(port: int) -> bool:
    """Two blocking TLS 1.2 connections (run in a thread), the second offering the first's session."""
    context = tls12()
    session = None
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                while conn.recv(4096):
                    pass
                session, reused = conn.session, conn.session_reused
    return reused


@pytest.mark.parametrize("cache, tickets, reused", [
    ("shared:SSL:10m", "off", True),
    ("builtin:1000", "off", True),
    ("none", "off", False),
    ("off", "on", True),
])
@pytest_twisted.ensureDeferred
async def test_session_resumption(files, proxy_services, cache, tickets, reused) -> None:
    """The cache resumes by session id without tickets; tickets resume without a cache."""
    conf = intermediate(files, 9, **{"shared:MozSSL:10m": cache, "ssl_session_tickets off": f"ssl_session_tickets {tickets}"})
    _, port = proxy_services(conf)
    assert await threads.deferToThread(resumed, port) is reused


@pytest.mark.parametrize("prefer, chosen", [("on", ECDHE_256), ("off", ECDHE_128)])
@pytest_twisted.ensureDeferred
async def test_prefer_server_ciphers(files, proxy_services, prefer, chosen) -> None:
    """The client lists AES128 first, the server AES256 first: who wins is ssl_prefer_server_ciphers."""
    conf = f"""
    server {{
        listen 127.0.0.1:0 ssl;
        ssl_certificate {files['cert']};
        ssl_certificate_key {files['key']};
        ssl_ciphers {ECDHE_256}:{ECDHE_128};
        ssl_prefer_server_ciphers {prefer};
    }}
    """
    _, port = proxy_services(conf)
    assert (await aio(handshake(port, tls12(f"{ECDHE_128}:{ECDHE_256}")))).cipher()[0] == chosen


@pytest_twisted.ensureDeferred
async def test_wss_through_ssl_on_and_the_certbot_options(ca, site_ec, proxy_services, tmp_path) -> None:
    """``ssl on`` (no ``ssl`` on the listen) serves wss, with certbot's options file included."""
    (tmp_path / "options-ssl-nginx.conf").write_text(CERTBOT_OPTIONS)

    async def scenario() -> None:
        async def echo(ws) -> None:
            async for message in ws:
                await ws.send(message)

        async with serve(echo, "127.0.0.1", 0) as server:
            backend = server.sockets[0].getsockname()[1]
            service, port = proxy_services(f"""
            server {{
                listen 127.0.0.1:0;
                ssl on;
                ssl_certificate {site_ec[0]};
                ssl_certificate_key {site_ec[1]};
                include {tmp_path / 'options-ssl-nginx.conf'};
                location / {{
                    proxy_pass http://127.0.0.1:{backend};
                    proxy_http_version 1.1;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection "upgrade";
                }}
            }}
            """)
            assert service.runtime.config.bindings[0].ssl
            async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context(ca.path),
                               server_hostname="localhost") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"

    await aio(scenario())


@pytest.fixture(scope="module")
def site_ec(ca) -> tuple[str, str]:
    return ca.issue("site", ["localhost", "127.0.0.1"])


def peer_chain(port: int) -> list[str]:
    """The certificates a blocking pyOpenSSL client (run in a thread) was sent, by subject."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        conn = SSL.Connection(ctx, sock)
        conn.set_connect_state()
        conn.do_handshake()
        chain = conn.get_peer_cert_chain(as_cryptography=True)
        conn.shutdown()
    return [cert.subject.rfc4514_string() for cert in chain]


@pytest_twisted.ensureDeferred
async def test_the_intermediates_of_the_chain_file_are_sent(ca, tmp_path, proxy_services) -> None:
    key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def issue(subject: str, issuer: x509.Name, public_key, signer, ca_flag: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    middle = issue("intermediate", ca.cert.subject, key.public_key(), ca.key, True)
    leaf = issue("leaf", middle.subject, leaf_key.public_key(), key, False)
    chain, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, middle)))
    key_file.write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _, port = proxy_services(f"server {{ listen 127.0.0.1:0 ssl; ssl_certificate {chain}; ssl_certificate_key {key_file}; }}")
    assert await threads.deferToThread(peer_chain, port) == ["CN=leaf", "CN=intermediate"]


# -- the contexts --------------------------------------------------------------------------


def _options(tmp_path: Path, files: dict[str, str], lines: str) -> int:
    config = load_text(tmp_path / "nginx.conf", f"""
    server {{
        listen 127.0.0.1:0 ssl;
        ssl_certificate {files['cert']};
        ssl_certificate_key {files['key']};
        {lines}
    }}
    """)
    (ctx, _, _), = ContextCache().get(config).values()
    return ctx.set_options(0)  # adds nothing, returns the options in force


@pytest.mark.parametrize(
    "lines, on, off",
    [
        ("", 0, SSL.OP_NO_TICKET | SSL.OP_CIPHER_SERVER_PREFERENCE),
        ("ssl_session_tickets off; ssl_prefer_server_ciphers on;", SSL.OP_NO_TICKET | SSL.OP_CIPHER_SERVER_PREFERENCE, 0),
    ],
)
def test_context_options(tmp_path, files, lines, on, off) -> None:
    options = _options(tmp_path, files, lines)
    assert (options & on, options & off) == (on, 0)


# -- loading -------------------------------------------------------------------------------


def test_loaded_values(tmp_path, files) -> None:
    config = load_text(tmp_path / "nginx.conf", intermediate(files, 9) + CERTBOT_OPTIONS.replace("10m", "1m"))
    tls = config.servers[0].tls
    assert (tls.session_cache, tls.session_tickets, tls.prefer_server_ciphers, tls.session_timeout) == (
        True, False, False, 86400.0)
    assert (tls.dhparam_file, tls.ecdh_curve, tls.ocsp_response) == (
        files["dhparam"], "auto", Path(files["ocsp"]).read_bytes())


def test_warnings(tmp_path, files) -> None:
    path = tmp_path / "nginx.conf"
    config = load_text(path, f"""ssl on;
ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
ssl_stapling on;
server {{ listen 127.0.0.1:0; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']}; }}
server {{ listen 127.0.0.2:0; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']}; }}
""")
    assert [w.replace(str(path), "FILE") for w in config.warnings] == [
        'FILE:1: the "ssl" directive is deprecated, use the "listen ... ssl" directive instead',
        "FILE:2: \"ssl_protocols\" TLSv1 TLSv1.1: OpenSSL's security level refuses these handshakes, "
        "as it does under nginx; TLSv1.2 and TLSv1.3 are negotiated",
        'FILE:3: "ssl_stapling" ignored, wstunnel staples only from "ssl_stapling_file"',
    ]
    assert [b.ssl for b in config.bindings] == [True, True]
    assert config.servers[0].tls.protocols == ("TLSv1.2",)


@pytest.mark.parametrize(
    "line, message",
    [
        ("ssl maybe;", 'invalid value "maybe" in "ssl" directive, it must be "on" or "off"'),
        ("ssl_session_cache foo;", 'invalid session cache "foo"'),
        ("ssl_session_cache shared:SSL;", 'invalid session cache "shared:SSL"'),
        ("ssl_session_cache shared::1m;", 'invalid session cache "shared::1m"'),
        ("ssl_session_cache builtin:x;", 'invalid session cache "builtin:x"'),
        ("ssl_session_cache builtin:1000 shared:a:1k;", 'session cache "shared:a:1k" is too small'),
        ("ssl_session_cache a b c;", 'invalid number of arguments in "ssl_session_cache" directive'),
        ("ssl_session_tickets maybe;", 'invalid value "maybe" in "ssl_session_tickets" directive, it must be "on" or "off"'),
        ("ssl_prefer_server_ciphers 1;", 'invalid value "1" in "ssl_prefer_server_ciphers" directive, it must be "on" or "off"'),
        ("ssl_ecdh_curve foo;", 'OpenSSL refuses the groups "foo" of the "ssl_ecdh_curve" directive'),
        ("ssl_stapling yes;", 'invalid value "yes" in "ssl_stapling" directive, it must be "on" or "off"'),
        ("ssl_stapling_verify on off;", 'invalid number of arguments in "ssl_stapling_verify" directive'),
        ("ssl_protocols TLSv1 TLSv1.1;", '"ssl_protocols" names no protocol OpenSSL allows: add TLSv1.2 or TLSv1.3'),
        ("ssl_protocols SSLv3 TLSv1.2;", '"ssl_protocols" value "SSLv3" is not supported by wstunnel (insecure): use TLSv1.2 and TLSv1.3'),
        ("ssl_dhparam $host.pem;", 'variables in "ssl_dhparam" are not supported by wstunnel'),
        ("location / { ssl_stapling on; }", '"ssl_stapling" directive is not allowed here'),
        ("location / { ssl on; }", '"ssl" directive is not allowed here'),
        ("ssl_dhparam a; ssl_dhparam b;", '"ssl_dhparam" directive is duplicate'),
    ],
)
def test_argument_errors(tmp_path, line, message) -> None:
    assert config_errors(tmp_path, f"server {{ listen 127.0.0.1:0;\n{line}\n}}\n") == [f"FILE:2: {message}"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("ssl_dhparam {missing};", 'ssl_dhparam "{missing}": cannot read the file (No such file or directory)'),
        ("ssl_dhparam {cert};", 'ssl_dhparam "{cert}": not a PEM file of DH parameters'),
        ("ssl_trusted_certificate {missing};",
         'ssl_trusted_certificate "{missing}": cannot read the file (No such file or directory)'),
        ("ssl_stapling on; ssl_stapling_file {missing};",
         'ssl_stapling_file "{missing}": cannot read the file (No such file or directory)'),
        ("ssl_stapling on; ssl_stapling_file {cert};", 'ssl_stapling_file "{cert}": not a DER OCSP response'),
    ],
)
def test_file_errors(tmp_path, files, line, message) -> None:
    names = {"missing": str(tmp_path / "missing.pem"), "cert": files["cert"]}
    text = (f"server {{ listen 127.0.0.1:0 ssl; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};\n"
            f"{line.format(**names)}\n}}\n")
    assert config_errors(tmp_path, text) == [f"FILE:2: {message.format(**names)}"]


def test_a_stapling_file_without_ssl_stapling_is_not_read(tmp_path, files) -> None:
    config = load_text(tmp_path / "nginx.conf", f"""
    server {{ listen 127.0.0.1:0 ssl; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};
              ssl_stapling_file {tmp_path / 'missing.der'}; }}
    """)
    assert config.servers[0].tls.ocsp_response is None


def test_groups_are_set(tmp_path, files) -> None:
    config = load_text(tmp_path / "nginx.conf", f"""
    server {{ listen 127.0.0.1:0 ssl; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};
              ssl_ecdh_curve X25519:prime256v1:secp384r1; }}
    """)
    assert config.servers[0].tls.ecdh_curve == "X25519:prime256v1:secp384r1"
    ContextCache().get(config)



# -- parity with nginx 1.22 ------------------------------------------------------------------

PARITY = """
server {{
    listen {{listen}} ssl{http2};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets off;
    ssl_prefer_server_ciphers on;
    ssl_ecdh_curve auto;
    location / {{ proxy_pass http://127.0.0.1:{{backend}}; }}
}}
"""


def only(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers only ``version``, with every cipher it has."""
    context = any_cert_context()
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    return context


async def outcome(port: int, context: ssl.SSLContext) -> str:
    try:
        return (await handshake(port, context)).version()
    except ssl.SSLError:
        return "refused"


@pytest_twisted.ensureDeferred
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_old_protocols_accepted_and_refused_by_both(twins, site_ec) -> None:
    """``ssl_protocols TLSv1 TLSv1.1 TLSv1.2`` loads in both, and neither completes a 1.0 or 1.1 handshake."""
    sides = twins.start(PARITY.format(http2="", cert=site_ec[0], key=site_ec[1]))
    versions = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
    seen = {side.name: [await aio(outcome(side.port, only(v))) for v in versions] for side in sides}
    assert seen == {name: ["refused", "refused", "TLSv1.2", "refused"] for name in ("wstunnel", "nginx")}


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("http2, expected", [("", "http/1.1"), (" http2", "h2")])
async def test_alpn_choice(twins, site_ec, http2, expected) -> None:
    """
    A browser offering h2 and http/1.1 gets http/1.1 from both without
    ``http2``; with it nginx picks h2 and wstunnel still http/1.1.
    """
    sides = twins.start(PARITY.format(http2=http2, cert=site_ec[0], key=site_ec[1]))
    chosen = {}
    for side in sides:
        browser = any_cert_context()
        browser.set_alpn_protocols(["h2", "http/1.1"])
        chosen[side.name] = (await aio(handshake(side.port, browser))).selected_alpn_protocol()
    assert chosen == {"wstunnel": "http/1.1", "nginx": expected}


@pytest_twisted.ensureDeferred
async def test_a_client_offering_only_h2_is_refused_by_both(twins, site_ec) -> None:
    sides = twins.start(PARITY.format(http2="", cert=site_ec[0], key=site_ec[1]))
    h2_only = any_cert_context()
    h2_only.set_alpn_protocols(["h2"])
    assert {side.name: await aio(outcome(side.port, h2_only)) for side in sides} == {
        "wstunnel": "refused", "nginx": "refused"}


def test_check_prints_the_warnings_and_the_notice(tmp_path, files, capsys) -> None:
    """``--check`` (like ``nginx -t``) shows what these lines do differently, each at its line."""
    path = tmp_path / "nginx.conf"
    path.write_text(f"""server {{
    listen 127.0.0.1:8443 http2;
    ssl on;
    ssl_stapling on;
    ssl_certificate {files['cert']};
    ssl_certificate_key {files['key']};
}}
""")
    with pytest.raises(SystemExit) as exit_:
        check(str(path))
    assert exit_.value.code == 0
    lines = capsys.readouterr().err.replace(str(path), "FILE").splitlines()
    assert lines == [
        'wstunnel: [notice] FILE:2: "listen ... http2": wstunnel serves HTTP/1.1 only, its ALPN offers "http/1.1"',
        'wstunnel: [warn] FILE:3: the "ssl" directive is deprecated, use the "listen ... ssl" directive instead',
        'wstunnel: [warn] FILE:4: "ssl_stapling" ignored, wstunnel staples only from "ssl_stapling_file"',
        "wstunnel: configuration file FILE test is successful",
    ]


# -- directives that add up, as in nginx -------------------------------------------------------


@pytest.mark.parametrize(
    "lines, kept",
    [
        ("ssl_session_cache shared:a:1m;", True),
        ("ssl_session_cache builtin;", True),
        ("ssl_session_cache none;", False),
        ("ssl_session_cache none shared:a:1m;", False),
        ("ssl_session_cache shared:a:1m off;", False),
        ("ssl_session_cache off builtin:1000;", True),
        ("ssl_session_cache shared:a:1m;\nssl_session_cache none;", False),
        ("ssl_session_cache none;\nssl_session_cache builtin;", True),
    ],
)
def test_session_cache_arguments_add_up(tmp_path, files, lines, kept) -> None:
    config = load_text(tmp_path / "nginx.conf", f"""
    server {{ listen 127.0.0.1:0 ssl; ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};
    {lines}
    }}
    """)
    assert config.servers[0].tls.session_cache is kept


def test_ssl_protocols_twice_on_one_level_add_up(tmp_path, site_ec) -> None:
    """certbot's options file repeats the site's ``ssl_protocols``; nginx ORs them and warns of repeats."""
    path = tmp_path / "nginx.conf"
    config = load_text(path, f"""server {{
    listen 127.0.0.1:0 ssl; ssl_certificate {site_ec[0]}; ssl_certificate_key {site_ec[1]};
    ssl_protocols TLSv1.3;
    ssl_protocols TLSv1.2 TLSv1.3;
}}
""")
    assert config.servers[0].tls.protocols == ("TLSv1.2", "TLSv1.3")
    assert [w.replace(str(path), "FILE") for w in config.warnings] == [
        'FILE:4: duplicate value "TLSv1.3" in "ssl_protocols" directive']


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("cache", ["shared:SSL:1m", "none", "none shared:SSL:1m", "builtin:1000 off"])
async def test_session_cache_resumes_as_in_nginx(twins, site_ec, cache) -> None:
    conf = f"""
    server {{
        listen {{listen}} ssl;
        ssl_certificate {site_ec[0]};
        ssl_certificate_key {site_ec[1]};
        ssl_session_tickets off;
        ssl_session_cache {cache};
        location / {{ proxy_pass http://127.0.0.1:{{backend}}; }}
    }}
    """
    sides = twins.start(conf)
    seen = {side.name: await threads.deferToThread(resumed, side.port) for side in sides}
    assert seen["wstunnel"] == seen["nginx"]
