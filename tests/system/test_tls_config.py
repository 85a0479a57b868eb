"""
Loading the TLS directives: every certificate problem is one located,
plain error at startup and in ``--check`` (nothing bound), an expired
certificate a warning; values and defaults of every directive.
"""

from __future__ import annotations

import datetime
import socket

import pytest

from support import config_errors, write_config
from twistd_support import run_twistd
from tls_support import NOW
from wstunnel.config.loader import load_config
from wstunnel.app.tap import check

DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def site(ca) -> tuple[str, str]:
    return ca.issue("site", ["example.test"])


def server(cert: str, key: str, extra: str = "") -> str:
    return f"""
    server {{
        listen 127.0.0.1:0 ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {extra}
        location / {{ proxy_pass http://127.0.0.1:9; }}
    }}
    """


def test_missing_file(tmp_path, site) -> None:
    assert config_errors(tmp_path, server("/nonexistent/cert.pem", site[1])) == [
        'FILE:3: ssl_certificate "/nonexistent/cert.pem": cannot read the file (No such file or directory)'
    ]


def test_unreadable_file(tmp_path, site) -> None:
    # A directory cannot be read as a file, whatever the user (the tests may run as root).
    assert config_errors(tmp_path, server(site[0], str(tmp_path))) == [
        f'FILE:4: ssl_certificate_key "{tmp_path}": cannot read the file (Is a directory)'
    ]


def test_not_pem(tmp_path, site) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    assert config_errors(tmp_path, server(str(junk), site[1])) == [
        f'FILE:3: ssl_certificate "{junk}": not a PEM certificate file'
    ]
    assert config_errors(tmp_path, server(site[0], site[0])) == [
        f'FILE:4: ssl_certificate_key "{site[0]}": not a PEM private key file'
    ]


def test_key_that_does_not_match(tmp_path, ca, site) -> None:
    other = ca.issue("other", ["other.test"])
    assert config_errors(tmp_path, server(site[0], other[1])) == [
        f'FILE:4: ssl_certificate_key "{other[1]}" does not match the certificate "{site[0]}"'
    ]


def test_encrypted_key_needs_a_password_file(tmp_path, ca) -> None:
    cert, key = ca.issue("locked", ["locked.test"], password=b"s3cret")
    assert config_errors(tmp_path, server(cert, key)) == [
        f'FILE:4: ssl_certificate_key "{key}": the key is encrypted and no "ssl_password_file" is set'
    ]
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("nope\nstill-nope\n")
    assert config_errors(tmp_path, server(cert, key, f"ssl_password_file {wrong};")) == [
        f'FILE:4: ssl_certificate_key "{key}": no password in the password file decrypts the key'
    ]
    right = tmp_path / "right.pass"
    right.write_text("nope\ns3cret\n")
    config = load_config(write_config(tmp_path, server(cert, key, f"ssl_password_file {right};")))
    assert config.servers[0].tls is not None


@pytest.mark.parametrize(
    "dates, words",
    [((NOW - 10 * DAY, NOW - DAY), "expired on"), ((NOW + DAY, NOW + 10 * DAY), "is not valid before")],
    ids=["expired", "not-yet-valid"],
)
def test_out_of_date_certificate_is_a_warning(tmp_path, ca, dates, words) -> None:
    cert, key = ca.issue("dated", ["dated.test"], not_before=dates[0], not_after=dates[1])
    config = load_config(write_config(tmp_path, server(cert, key)))
    date = dates[1] if words == "expired on" else dates[0]
    assert config.warnings == (
        f'{tmp_path}/nginx.conf:3: ssl_certificate "{cert}" {words} {date:%Y-%m-%d %H:%M:%S} UTC',
    )


def test_check_prints_the_warning_and_succeeds(tmp_path, ca, capsys) -> None:
    cert, key = ca.issue("old", ["old.test"], not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    with pytest.raises(SystemExit) as info:
        check(write_config(tmp_path, server(cert, key)))
    assert info.value.code == 0
    assert f'[warn] {tmp_path}/nginx.conf:3: ssl_certificate "{cert}" expired on' in capsys.readouterr().err


def test_a_bad_key_never_binds(twistd, tmp_path, ca, site) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    other = ca.issue("mismatch", ["mismatch.test"])
    conf = write_config(tmp_path, server(site[0], other[1]).replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    for args in (["--check"], []):
        result = run_twistd(twistd, tmp_path, "-n", "--pidfile=", "wstunnel", "--config", conf, *args)
        assert result.returncode == 1
        assert result.stderr.splitlines()[0] == (
            f'{conf}:4: ssl_certificate_key "{other[1]}" does not match the certificate "{site[0]}"'
        )
        assert "listening" not in result.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        ("server { listen 443 ssl; }", 'FILE:1: no "ssl_certificate" is defined for the "listen ... ssl" directive'),
        ("server { ssl_certificate_key k; }", 'FILE:1: no "ssl_certificate" is defined for the "ssl_certificate_key" directive'),
        ("server { ssl_certificate c; }", 'FILE:1: no "ssl_certificate_key" is defined for certificate "c"'),
        ("ssl_protocols SSLv3 TLSv1.2;", 'FILE:1: "ssl_protocols" value "SSLv3" is not supported by wstunnel (insecure): use TLSv1.2 and TLSv1.3'),
        ("ssl_protocols TLSv9;", 'FILE:1: invalid value "TLSv9" in "ssl_protocols" directive'),
        ("ssl_ciphers NOTACIPHER;", 'FILE:1: no cipher in "NOTACIPHER" of the "ssl_ciphers" directive is known to OpenSSL'),
        ("ssl_prefer_server_ciphers maybe;", 'FILE:1: invalid value "maybe" in "ssl_prefer_server_ciphers" directive, it must be "on" or "off"'),
        ("ssl_session_tickets maybe;", 'FILE:1: invalid value "maybe" in "ssl_session_tickets" directive, it must be "on" or "off"'),
        ("ssl_session_timeout 5x;", 'FILE:1: "ssl_session_timeout" directive invalid time value "5x"'),
        ("ssl_verify_client optional_no_ca;", 'FILE:1: "ssl_verify_client optional_no_ca" is not supported by wstunnel'),
        ("ssl_verify_depth -1;", 'FILE:1: invalid value "-1" in "ssl_verify_depth" directive'),
        ("ssl_certificate $host.pem;", 'FILE:1: variables in "ssl_certificate" are not supported by wstunnel'),
        ("proxy_ssl_name $host;", 'FILE:1: variables in "proxy_ssl_name" are not supported by wstunnel'),
        ("ssl_certificate a; ssl_certificate b;", 'FILE:1: "ssl_certificate" directive is duplicate'),
        ("server { location / { ssl_certificate a; } }", 'FILE:1: "ssl_certificate" directive is not allowed here'),
        ("server { listen 443 ssl; listen 443; }", "FILE:1: a duplicate listen 0.0.0.0:443"),
        ("server { location / { proxy_pass https://127.0.0.1; proxy_ssl_certificate c; } }",
         'FILE:1: "proxy_ssl_certificate" and "proxy_ssl_certificate_key" must be given together'),
    ],
)
def test_directive_errors(tmp_path, text, message) -> None:
    assert message in config_errors(tmp_path, text)


def test_verify_client_needs_a_ca(tmp_path, site) -> None:
    assert config_errors(tmp_path, server(*site, "ssl_verify_client on;")) == [
        'FILE:5: no "ssl_client_certificate" for "ssl_verify_client"'
    ]


def test_tls_and_plain_listens_sharing_a_socket_must_agree(tmp_path, site) -> None:
    text = server(*site).replace("127.0.0.1:0 ssl", "8443 ssl") + "server { listen 127.0.0.1:8443; }"
    assert config_errors(tmp_path, text) == [
        'FILE:8: "listen 127.0.0.1:8443" and a wildcard listen on port 8443 must both use "ssl" or neither'
    ]


def test_defaults_and_inheritance(tmp_path, ca, site) -> None:
    config = load_config(write_config(tmp_path, f"""
        ssl_certificate {site[0]};
        ssl_certificate_key {site[1]};
        ssl_protocols TLSv1.3;
        proxy_ssl_verify_depth 3;
        server {{
            listen 127.0.0.1:0 ssl;
            location /a/ {{ proxy_pass https://localhost:8443; proxy_ssl_verify off; }}
            location /b/ {{ proxy_pass https://127.0.0.1/; proxy_ssl_name b.test; proxy_ssl_server_name off; }}
            location /c/ {{ proxy_pass http://127.0.0.1; }}
        }}
        server {{ listen 127.0.0.1:0 ssl; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off; }}
    """))
    first, second = config.servers
    assert first.tls.key_pair is second.tls.key_pair  # loaded once
    assert first.tls.protocols == ("TLSv1.3",) and second.tls.protocols == ("TLSv1.2", "TLSv1.3")
    assert (first.tls.session_timeout, first.tls.session_tickets, second.tls.session_tickets) == (300.0, True, False)
    assert (first.tls.verify_client, first.tls.verify_depth, first.tls.ciphers) == ("off", 1, None)
    a, b, c = first.locations
    assert (a.proxy_pass.scheme, a.proxy_pass.proxy_host) == ("https", "localhost:8443")
    assert a.proxy_pass.tls.verify is False and a.proxy_pass.tls.name == "localhost"
    assert (b.proxy_pass.proxy_host, b.proxy_pass.upstream.peers[0].port) == ("127.0.0.1", 443)
    assert (b.proxy_pass.tls.verify, b.proxy_pass.tls.name, b.proxy_pass.tls.server_name) == (True, "b.test", False)
    assert (b.proxy_pass.tls.verify_depth, b.proxy_pass.tls.trusted_file, b.proxy_pass.tls.client) == (3, None, None)
    assert b.proxy_pass.tls.protocols == ("TLSv1.2", "TLSv1.3")
    assert c.proxy_pass.tls is None
    assert [b.ssl for b in config.bindings] == [True]
