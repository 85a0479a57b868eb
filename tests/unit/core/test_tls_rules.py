"""The per-request TLS rules as pure functions: the handshake's server, 421, mTLS refusals, $ssl_*."""

from __future__ import annotations

import pytest

from wstunnel.config.model import Binding, KeyPair, Server, ServerTLS, Source
from wstunnel.config.templates import BUILTIN_VARIABLES
from wstunnel.core.tls_rules import (
    CERTIFICATE_ERROR_NOTE,
    NO_CERTIFICATE_NOTE,
    TLS_VARIABLES,
    handshake_server,
    refusal,
)
from wstunnel.wire.request import TLSInfo

SRC = Source("t.conf", 1)


def _server(name: str, verify_client: str = "off") -> Server:
    tls = ServerTLS(KeyPair("cert.pem", (), None), ("TLSv1.3",), None, 300.0, True, "ca.pem", verify_client, 1)
    return Server((name,), (), (), SRC, tls=tls)


def _info(verify: str = "NONE") -> TLSInfo:
    return TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", "a.test", "CN=client", verify)


A, B = _server("a.test"), _server("b.test")
BINDING = Binding("127.0.0.1", 443, A, (A, B))


def _select(name: str) -> Server:
    return {"a.test": A, "b.test": B}.get(name, A)


@pytest.mark.parametrize("sni, expected", [(None, A), ("", A), ("B.Test.", B), ("a.test", A)])
def test_handshake_server_follows_sni_else_default(sni, expected) -> None:
    assert handshake_server(_select, BINDING, sni) is expected


def test_host_naming_another_server_is_421() -> None:
    error = refusal(A, B, _info())
    assert error is not None and error.status == 421


def test_same_server_without_client_certificate_rules_passes() -> None:
    assert refusal(A, A, _info("NONE")) is None


@pytest.mark.parametrize(
    "verify, note",
    [("NONE", NO_CERTIFICATE_NOTE), ("FAILED:certificate has expired", CERTIFICATE_ERROR_NOTE), ("SUCCESS", None)],
)
def test_verify_client_on_refuses_as_nginx(verify, note) -> None:
    strict = _server("a.test", "on")
    error = refusal(strict, strict, _info(verify))
    if note is None:
        assert error is None
    else:
        assert error is not None and (error.status, error.note) == (400, note)


def test_optional_verification_never_refuses() -> None:
    lax = _server("a.test", "optional")
    assert refusal(lax, lax, _info("FAILED:unknown ca")) is None


def test_every_ssl_variable_is_known_to_the_loader() -> None:
    assert set(TLS_VARIABLES) <= BUILTIN_VARIABLES
    assert {n for n in BUILTIN_VARIABLES if n.startswith("ssl_")} == set(TLS_VARIABLES)
    info = _info("SUCCESS")
    assert [TLS_VARIABLES[n](info) for n in sorted(TLS_VARIABLES)] == [
        "TLS_AES_128_GCM_SHA256", "CN=client", "SUCCESS", "TLSv1.3", "a.test"
    ]
