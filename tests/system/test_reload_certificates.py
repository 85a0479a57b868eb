"""
A reload re-reads certificates: after the files of a server's
``ssl_certificate`` are replaced, ``reload()`` (what SIGHUP calls) makes new
TLS connections get the new certificate on the same listening socket,
while a connection opened before keeps working; a replacement that does
not load (a key that does not match) fails the reload and the old
certificate stays in force.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest_twisted
from cryptography import x509

from support import aio, listen_backend, ok_and_close, start_proxy
from tls_support import Authority, any_cert_context

CONF = """
server {{
    listen 127.0.0.1:0 ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ proxy_pass http://127.0.0.1:{port}; }}
}}
"""


async def served_serial(port: int) -> int:
    """The serial number of the certificate a new TLS connection is given, after one request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=any_cert_context(),
                                                   server_hostname="site.test")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.write(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    return x509.load_der_x509_certificate(der).serial_number


@pytest_twisted.ensureDeferred
async def test_reload_serves_a_replaced_certificate_to_new_connections(tmp_path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("site", ["site.test"])
    factory, bport = listen_backend(ok_and_close)
    service, port = start_proxy(tmp_path, CONF.format(cert=cert, key=key, port=bport.getHost().port))
    try:
        old_serial = await aio(served_serial(port))
        # A connection opened before the reload, used after it.
        reader, writer = await aio(asyncio.open_connection("127.0.0.1", port, ssl=any_cert_context(),
                                                          server_hostname="site.test"))
        ca.issue("site", ["site.test"])  # new key and certificate, same file names
        assert service.reload()
        new_serial = await aio(served_serial(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        assert (await aio(reader.read())).startswith(b"HTTP/1.1 200 ")
        writer.close()

        # A certificate whose key does not match: the reload fails, the new one stays.
        other_cert, _ = ca.issue("other", ["site.test"])
        shutil.copyfile(other_cert, cert)
        assert not service.reload()
        assert await aio(served_serial(port)) == new_serial
    finally:
        await service.stopService()
        await bport.stopListening()
    assert old_serial != new_serial
