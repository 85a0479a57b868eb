"""
``proxy_pass`` with variables over loopback (issue 13): the rendered host
names an upstream block, an IP, or a name that ``resolver`` resolves
through a twisted.names server on 127.0.0.1; without a resolver, and for a
name that does not resolve, nginx's 502 and error-log line.
"""

from __future__ import annotations

import pytest_twisted

from dns_support import logged, start_dns  # noqa: F401 (a fixture)
from nginx_support import ask, echo_answer, request
from support import aio, listen_backend, start_proxy

CONF = """
events {{}}
http {{
    access_log off;
    {resolver}
    upstream pool {{ server 127.0.0.1:{backend}; }}
    server {{
        listen 127.0.0.1:0;
        location / {{ proxy_pass http://$http_x_to; }}
        location /port/ {{ proxy_pass http://$http_x_to:{backend}; }}
        location /uri/ {{ proxy_pass http://$http_x_to:{backend}/new$uri?via=var; }}
    }}
}}
"""


@pytest_twisted.async_yield_fixture
async def setup(tmp_path):
    """A DNS server, an echo backend, and a function starting wstunnel on CONF with a resolver line."""
    dns = start_dns()
    factory, bport = listen_backend(echo_answer)
    backend = bport.getHost().port
    services = []

    def start(resolver: str = f"resolver 127.0.0.1:{dns.port.getHost().port};") -> int:
        service, port = start_proxy(tmp_path, CONF.format(resolver=resolver, backend=backend))
        services.append(service)
        return port

    yield dns, factory, backend, start
    for service in services:
        service.stopService()
    for conn in factory.connections:
        conn.transport.abortConnection()
    await bport.stopListening()
    await dns.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_name_is_resolved_and_its_answer_kept_for_its_ttl(setup) -> None:
    dns, factory, backend, start = setup
    dns.records["backend.test"] = [("127.0.0.1", 60)]
    port = start()
    for path in ("/port/a?x=1", "/port/b"):
        answer = await aio(ask(port, request(path, extra="X-To: backend.test\r\n")))
        assert answer.status == b"HTTP/1.1 200 OK"
    assert [head.split(b"\r\n")[0] for head in factory.heads] == [b"GET /port/a?x=1 HTTP/1.1", b"GET /port/b HTTP/1.1"]
    assert b"\r\nHost: backend.test:%d\r\n" % backend in factory.heads[0]
    assert dns.questions("backend.test") == 1


@pytest_twisted.ensureDeferred
async def test_a_uri_part_with_variables_replaces_the_whole_uri(setup) -> None:
    dns, factory, backend, start = setup
    port = start()
    answer = await aio(ask(port, request("/uri/x?a=b", extra="X-To: 127.0.0.1\r\n")))
    assert answer.body == b"GET /new/uri/x?via=var HTTP/1.1"
    assert dns.asked == {}  # an IP literal is never resolved


@pytest_twisted.ensureDeferred
async def test_a_name_of_an_upstream_block_uses_it(setup) -> None:
    dns, factory, backend, start = setup
    port = start(resolver="")
    answer = await aio(ask(port, request("/a", extra="X-To: POOL\r\n")))
    assert answer.body == b"GET /a HTTP/1.1"
    assert b"\r\nHost: POOL\r\n" in factory.heads[0]


@pytest_twisted.ensureDeferred
async def test_without_a_resolver_a_name_is_a_502(setup, logged) -> None:
    dns, factory, backend, start = setup
    port = start(resolver="")
    answer = await aio(ask(port, request("/port/a", extra="X-To: backend.test\r\n")))
    assert answer.status == b"HTTP/1.1 502 Bad Gateway"
    assert "no resolver defined to resolve backend.test" in logged()
    assert factory.heads == []


@pytest_twisted.ensureDeferred
async def test_a_name_that_does_not_resolve_is_a_502(setup, logged) -> None:
    dns, factory, backend, start = setup
    port = start()
    answer = await aio(ask(port, request("/port/a", extra="X-To: nowhere.test\r\n")))
    assert answer.status == b"HTTP/1.1 502 Bad Gateway"
    assert "nowhere.test could not be resolved (3: Host not found)" in logged()


@pytest_twisted.ensureDeferred
async def test_a_resolver_that_does_not_answer_is_a_504(setup, logged) -> None:
    dns, factory, backend, start = setup
    dns.silent.add("slow.test")
    port = start(resolver=f"resolver 127.0.0.1:{dns.port.getHost().port}; resolver_timeout 200ms;")
    answer = await aio(ask(port, request("/port/a", extra="X-To: slow.test\r\n")))
    assert answer.status.split()[1] == b"504"
    assert "slow.test could not be resolved (110: Operation timed out)" in logged()
