"""
nginx as the oracle for TLS: the seed 003 config with its TLS lines, and
small configs around it, run under a real nginx and under wstunnel with
certificates from a throwaway CA (tests/tls_support.py); the same TLS (or
plain) clients talk to both, and what they get, what the backends receive
and what the access logs say are compared.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
import pytest_twisted
from cryptography import x509

from support import WAIT, aio
from nginx_support import Response, ask, echo_through_both, read_response, request, scripted_answer
from tls_support import SEED_003_TLS, Authority, client_context, listen_tls_backend

LOG = "log_format tls '$request $status';\naccess_log {{log}} tls;\n"

# tls_support's copy of the seed's conf.d file, on the twins' addresses.
SEED_003 = LOG + SEED_003_TLS.replace("listen 127.0.0.1:0 ssl", "listen {{listen}} ssl")


TWO_SITES = """
ssl_protocols TLSv1.2 TLSv1.3;
server {
    listen {listen} ssl;
    server_name a.test;
    ssl_certificate {a_cert};
    ssl_certificate_key {a_key};
    location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-TLS $TLS; }
}
server {
    listen {listen} ssl default_server;
    server_name b.test;
    ssl_certificate {b_cert};
    ssl_certificate_key {b_key};
    location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-TLS $TLS; }
}
""".replace("$TLS", '"$ssl_protocol|$ssl_cipher|$ssl_server_name"')

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture(scope="module")
def seed_003(ca) -> str:
    cert, key = ca.issue("site", ["test.enzhico.net", "127.0.0.1"])
    return SEED_003.format(port="{backend}", cert=cert, key=key)


@pytest.fixture(scope="module")
def two_sites(ca) -> str:
    conf = TWO_SITES
    for name in "ab":
        cert, key = ca.issue(name, [f"{name}.test"])
        conf = conf.replace(f"{{{name}_cert}}", cert).replace(f"{{{name}_key}}", key)
    return conf


def any_cert() -> ssl.SSLContext:
    """A client that checks nothing, to see which certificate it is given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def handshake(port: int, context: ssl.SSLContext, sni: str | None) -> x509.Certificate:
    """A TLS handshake and nothing else; the leaf the proxy showed."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=sni)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der)
    finally:
        writer.close()


async def ask_tls(port: int, context: ssl.SSLContext, sni: str | None, host: str) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=sni)
    try:
        writer.write(request("/", host, extra="Connection: close\r\n"))
        return await read_response(reader)
    finally:
        writer.close()


# ---------------------------------------------------------------- serving TLS


@pytest_twisted.ensureDeferred
async def test_wss_echo_through_the_seed_003_config(twins, ca, seed_003) -> None:
    """The websockets client verifies the proxy's certificate against the test CA."""
    talked = await aio(echo_through_both(twins, seed_003, lambda side: f"wss://127.0.0.1:{side.port}/",
                                         ssl=client_context(ca.path), server_hostname="test.enzhico.net"))
    assert talked == ["wstunnel", "nginx"]


@pytest_twisted.ensureDeferred
async def test_sni_picks_the_same_certificate(twins, two_sites) -> None:
    sides = twins.start(two_sites)
    names = ["a.test", "b.test", None, "other.test"]
    seen = {}
    for side in sides:
        leaves = [await aio(handshake(side.port, any_cert(), sni)) for sni in names]
        seen[side.name] = [leaf.subject.rfc4514_string() for leaf in leaves]
    assert seen["wstunnel"] == seen["nginx"]
    assert seen["nginx"] == [f"CN={n}.test,O=wstunnel tests" for n in "abbb"]


def old_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers only ``version``, with every cipher it has."""
    context = any_cert()
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = version
    return context


async def handshake_outcome(port: int, version: ssl.TLSVersion) -> str:
    try:
        await handshake(port, old_client(version), "test.enzhico.net")
    except ssl.SSLError:
        return "refused"
    return "accepted"


@pytest_twisted.ensureDeferred
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_versions_with_the_default_ssl_protocols(twins, seed_003) -> None:
    """
    nginx 1.22's default ``ssl_protocols`` is TLSv1 TLSv1.1 TLSv1.2, but
    OpenSSL 3 at nginx's default security level cannot complete 1.0 or 1.1
    handshakes (nginx answers an internal_error alert; wstunnel, which does
    not enable them, a protocol_version alert).  The documented difference
    (doc/configuration.md, ssl_protocols) is TLS 1.3, which wstunnel's
    default includes and nginx 1.22's does not (1.23.4 added it).
    """
    sides = twins.start(seed_003)
    versions = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
    seen = {side.name: [await aio(handshake_outcome(side.port, v)) for v in versions] for side in sides}
    assert seen == {
        "nginx": ["refused", "refused", "accepted", "refused"],
        "wstunnel": ["refused", "refused", "accepted", "accepted"],
    }


async def plain_then_close(port: int, raw: bytes) -> Response:
    """Plain bytes to the TLS port: the answer, which must be followed by the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        answer = await read_response(reader)
        assert await asyncio.wait_for(reader.read(), WAIT) == b"", "the connection stayed open"
        return answer
    finally:
        writer.close()


def comparable_pages(answers: dict[str, Response]) -> dict[str, bytes]:
    return {name: a.body.replace(a.header(b"Server"), b"TOKEN") for name, a in answers.items()}


@pytest_twisted.ensureDeferred
async def test_plain_http_on_the_tls_port(twins, seed_003) -> None:
    """Both read the request, answer 400 with nginx's page, close, and log status 400."""
    sides = twins.start(seed_003)
    answers = {side.name: await aio(plain_then_close(side.port, request("/chat/", "test.enzhico.net")))
               for side in sides}
    w, n = answers["wstunnel"], answers["nginx"]
    assert w.status == n.status == b"HTTP/1.1 400 Bad Request"
    assert w.header(b"Connection") == n.header(b"Connection") == b"close"
    pages = comparable_pages(answers)
    assert pages["wstunnel"] == pages["nginx"]
    assert b"<title>400 The plain HTTP request was sent to HTTPS port</title>" in n.body
    logged = {side.name: await side.log.wait_for(1) for side in sides}
    assert logged["wstunnel"] == logged["nginx"] == ["GET /chat/ HTTP/1.1 400"]


@pytest_twisted.ensureDeferred
async def test_a_malformed_plain_request_on_the_tls_port_is_an_ordinary_400(twins, seed_003) -> None:
    """The request is parsed first: a broken one gets the usual 400 page, not the HTTPS one."""
    sides = twins.start(seed_003)
    answers = {side.name: await aio(plain_then_close(side.port, b"hello there\r\n\r\n")) for side in sides}
    pages = comparable_pages(answers)
    assert pages["wstunnel"] == pages["nginx"]
    assert b"<title>400 Bad Request</title>" in pages["nginx"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "sni, host, maximum, ciphers, expected",
    [
        ("a.test", "a.test", None, None, b"TLSv1.3|TLS_AES_256_GCM_SHA384|a.test"),
        ("a.test", "a.test", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256",
         b"TLSv1.2|ECDHE-ECDSA-AES128-GCM-SHA256|a.test"),
        ("B.Test", "b.test", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305",
         b"TLSv1.2|ECDHE-ECDSA-CHACHA20-POLY1305|B.Test"),  # the name as sent
        (None, "b.test", None, None, b"TLSv1.3|TLS_AES_256_GCM_SHA384|"),
    ],
    ids=["tls1.3", "tls1.2-aes128", "tls1.2-chacha-upper-sni", "no-sni"],
)
async def test_ssl_variables_sent_upstream(twins, two_sites, sni, host, maximum, ciphers, expected) -> None:
    sides = twins.start(two_sites, scripted_answer(OK))
    context = any_cert()
    if maximum is not None:
        context.maximum_version = maximum
        context.set_ciphers(ciphers)
    for side in sides:
        assert (await aio(ask_tls(side.port, context, sni, host))).body == b"ok"
    sent = {side.name: dict(side.head(0)[1].elements())[b"X-TLS"] for side in sides}
    assert sent["wstunnel"] == sent["nginx"]
    assert sent["nginx"] == expected


# ---------------------------------------------------------------- TLS to the upstream

HTTPS_UPSTREAM = """
server {
    listen {listen};
    location / {
        proxy_pass https://127.0.0.1:{tls_backend};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {ca};
        proxy_ssl_name {name};
    }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name, status", [("upstream.test", b"200"), ("wrong.test", b"502")])
async def test_verified_https_upstream(twins, ca, name, status) -> None:
    factory, port = listen_tls_backend(scripted_answer(OK), ca.issue("upstream", ["upstream.test"]))
    try:
        conf = HTTPS_UPSTREAM.replace("{tls_backend}", str(port.getHost().port))
        sides = twins.start(conf.replace("{ca}", ca.path).replace("{name}", name))
        answers = {side.name: await aio(ask(side.port, request("/x"))) for side in sides}
        assert [a.status.split(b" ")[1] for a in answers.values()] == [status, status]
        assert len(factory.heads) == (2 if status == b"200" else 0)
    finally:
        await port.stopListening()


MTLS = LOG + """
ssl_protocols TLSv1.2 TLSv1.3;
server {{
    listen {{listen}} ssl;
    server_name mtls.test;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_client_certificate {ca};
    ssl_verify_client on;
    location / {{ proxy_pass http://127.0.0.1:{{backend}}; }}
}}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "who, status, title",
    [
        ("trusted", b"HTTP/1.1 200 OK", None),
        (None, b"HTTP/1.1 400 Bad Request", b"400 No required SSL certificate was sent"),
        ("stranger", b"HTTP/1.1 400 Bad Request", b"400 The SSL certificate error"),
    ],
)
async def test_client_certificates_required(twins, ca, tmp_path, who, status, title) -> None:
    """``ssl_verify_client on``: nginx's 496/495 pages (sent as 400), logged as 400."""
    cert, key = ca.issue("mtls", ["mtls.test"])
    sides = twins.start(MTLS.format(cert=cert, key=key, ca=ca.path), scripted_answer(OK))
    client = None
    if who == "trusted":
        client = ca.issue("alice", ["alice"], client=True)
    elif who == "stranger":
        client = Authority(tmp_path, "stranger CA").issue("mallory", ["mallory"], client=True)
    answers = {side.name: await aio(ask_tls(side.port, client_context(ca.path, client), "mtls.test", "mtls.test"))
               for side in sides}
    assert answers["wstunnel"].status == answers["nginx"].status == status
    if title is not None:
        assert b"<title>" + title + b"</title>" in answers["nginx"].body
        pages = comparable_pages(answers)
        assert pages["wstunnel"] == pages["nginx"]
        assert all(side.backend.heads == [] for side in sides)
    logged = {side.name: await side.log.wait_for(1) for side in sides}
    assert logged["wstunnel"] == logged["nginx"] == [f"GET / HTTP/1.1 {status.split()[1].decode()}"]
