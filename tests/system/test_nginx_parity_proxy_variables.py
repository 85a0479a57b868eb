"""
nginx as the oracle for ``proxy_pass`` with variables (issue 13): one
config under nginx 1.22 and wstunnel, both resolving through the same
twisted.names server on 127.0.0.1, the same requests sent to each; which
backend got each request, its request line and Host, and the status
compared, and the error-log lines of the two 502s found in both logs.
"""

from __future__ import annotations

import pytest_twisted

from dns_support import logged, start_dns  # noqa: F401 (a fixture)
from nginx_support import ask_both, request

CONF = """
upstream pool { server 127.0.0.1:{backend}; }
server {
    listen {listen};
    proxy_http_version 1.1;
    location /name/ { resolver 127.0.0.1:{dns}; proxy_pass http://$http_x_to:{backend}; }
    location /uri/ { resolver 127.0.0.1:{dns}; proxy_pass http://$http_x_to:{backend}/new$uri?q=1; }
    location /whole/ { resolver 127.0.0.1:{dns}; proxy_pass http://$http_x_to:{backend}$request_uri; }
    location /pool/ { proxy_pass http://$http_x_to; }
    location /none/ { proxy_pass http://$http_x_to:{backend}; }
}
"""

# (path, X-To, what nginx 1.22 does: the backend's request line and Host, or the status)
CASES = [
    ("/name/a?x=1", "backend.test", ("GET /name/a?x=1 HTTP/1.1", "backend.test:BACKEND")),
    ("/name/b", "BACKEND.test", ("GET /name/b HTTP/1.1", "BACKEND.test:BACKEND")),
    ("/uri/a?x=1", "backend.test", ("GET /new/uri/a?q=1 HTTP/1.1", "backend.test:BACKEND")),
    ("/whole/a?x=1", "backend.test", ("GET /whole/a?x=1 HTTP/1.1", "backend.test:BACKEND")),
    ("/name/c", "127.0.0.1", ("GET /name/c HTTP/1.1", "127.0.0.1:BACKEND")),
    ("/pool/a", "pool", ("GET /pool/a HTTP/1.1", "pool")),
    ("/name/d", "nowhere.test", 502),
    ("/none/a", "backend.test", 502),
]


@pytest_twisted.async_yield_fixture
async def dns():
    server = start_dns()
    server.records["backend.test"] = [("127.0.0.1", 60)]
    yield server
    await server.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_proxy_pass_with_variables_against_nginx(twins, dns, logged) -> None:
    """The same backend requests, statuses and error-log lines as nginx."""
    sides = twins.start(CONF.replace("{dns}", str(dns.port.getHost().port)))
    statuses = {side.name: [] for side in sides}
    for path, to, _ in CASES:
        answers = await ask_both(sides, request(path, extra=f"X-To: {to}\r\n"))
        for name, answer in answers.items():
            statuses[name].append(int(answer.status.split()[1]))
    expected_heads = [expected for _, _, expected in CASES if not isinstance(expected, int)]
    expected_statuses = [200 if not isinstance(expected, int) else expected for _, _, expected in CASES]
    for side in sides:
        heads = [(line.decode(), dict(headers.elements())[b"Host"].decode()) for line, headers in side.heads()]
        assert (side.name, heads) == (side.name, expected_heads)
        assert (side.name, statuses[side.name]) == (side.name, expected_statuses)
    nginx_log = twins.nginxes[0].error_log.read_text()
    for text in ("nowhere.test could not be resolved (3: Host not found)",
                 "no resolver defined to resolve backend.test"):
        assert text in nginx_log
        assert text in logged()
