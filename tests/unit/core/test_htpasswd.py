"""core.htpasswd: nginx's htpasswd formats, its way of reading the file, and the Basic credentials."""

from __future__ import annotations

import base64
import hashlib

import pytest

from wstunnel.core.htpasswd import basic_credentials, md5_crypt, parse_users, verify

# Made with `openssl passwd -apr1|-1|-5|-6 -salt abcdefgh secret`.
OPENSSL = [
    b"$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/",
    b"$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1",
    b"$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.",
    b"$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.",
]


def _ssha(password: bytes, salt: bytes) -> bytes:
    return b"{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt)


@pytest.mark.parametrize(
    "field",
    [
        b"{PLAIN}secret",
        b"{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()),
        _ssha(b"secret", b"saltsalt"),
        *OPENSSL,
    ],
)
def test_each_format_accepts_its_password_only(field: bytes) -> None:
    assert verify(field, b"secret")
    assert not verify(field, b"secreT")
    assert not verify(field, b"")


def test_md5_crypt_matches_openssl_for_long_passwords() -> None:
    # openssl passwd -apr1 -salt 12345678 0123456789abcdefghijklmnopqrstuvwxyz
    expected = b"$apr1$12345678$6SxMPPY0AeK0uL92flBxb/"
    assert md5_crypt(b"0123456789abcdefghijklmnopqrstuvwxyz", expected, b"$apr1$") == expected


def test_an_unknown_or_broken_field_never_matches() -> None:
    assert not verify(b"{SSHA}not base64!", b"secret")
    assert not verify(b"*", b"")
    assert not verify(b"", b"")
    assert not verify(b"{MD5}secret", b"secret")


def test_the_file_is_read_as_nginx_reads_it() -> None:
    table = parse_users(
        b"# a comment\n"
        b"alice:{PLAIN}one:a comment field\n"
        b"\n"
        b"bob:{PLAIN}two\r\n"
        b"alice:{PLAIN}shadowed\n"
        b"nocolon\n"
        b"carol:{MD5}x\n"
        b"dave:" + OPENSSL[3]
    )
    assert table.users == {
        b"alice": b"{PLAIN}one",
        b"bob": b"{PLAIN}two",
        b"carol": b"{MD5}x",
        b"dave": OPENSSL[3],
    }
    assert table.unknown == (7,)


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"Basic " + base64.b64encode(b"u:p"), (b"u", b"p")),
        (b"basic    " + base64.b64encode(b"u:p:q"), (b"u", b"p:q")),
        (b"Basic " + base64.b64encode(b"u:").rstrip(b"="), (b"u", b"")),
        (b"Basic " + base64.b64encode(b"u:p") + b"=trailing ignored", (b"u", b"p")),
        (b"Basic", None),
        (b"Basic ", None),
        (b"Bearer " + base64.b64encode(b"u:p"), None),
        (b"Basic " + base64.b64encode(b":p"), None),
        (b"Basic " + base64.b64encode(b"up"), None),
        (b"Basic !!!!", None),
        (b"Basic a", None),
        (b"Basic \xff\xfe", None),
    ],
)
def test_basic_credentials_are_parsed_as_nginx_does(value: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert basic_credentials(value) == expected
