"""
htpasswd files as nginx's auth_basic reads them, and the password check.

A file is parsed whole into a table from login to password field, keeping
the first line of each login as nginx's scan does.  The formats are
nginx's: ``{PLAIN}``, ``{SHA}``, ``{SSHA}``, ``$apr1$`` and ``$1$`` are
done here, everything else goes to the system's crypt(3) as in nginx
(``$5$``, ``$6$``, bcrypt ``$2y$`` where libcrypt has it, DES).  Every
comparison of secrets is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import hmac
import re
from typing import Callable, NamedTuple

__all__ = ["UserTable", "basic_credentials", "parse_users", "verify"]

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MD5_MAGICS = (b"$apr1$", b"$1$")
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
# The shapes of the password fields a verifier exists for; anything else is logged as unknown.
_KNOWN = re.compile(rb"\{PLAIN\}|\{SHA\}|\{SSHA\}|\$(apr1|1|5|6|2[aby]|y|gy|7|sha1|md5)[$,]|[./0-9A-Za-z]{13}\Z|_")


class UserTable(NamedTuple):
    """One htpasswd file: login -> password field, and the lines whose format is unknown."""

    users: dict[bytes, bytes]
    unknown: tuple[int, ...]


def parse_users(data: bytes) -> UserTable:
    """
    nginx's reading: a line starting with ``#`` is a comment, the login
    ends at the first ``:``, the password field at the next ``:`` or the
    end of the line.
    """
    users: dict[bytes, bytes] = {}
    unknown = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line or line[:1] in (b"#", b"\r"):
            continue
        login, colon, rest = line.partition(b":")
        if not colon:
            continue
        password = rest.split(b":", 1)[0].split(b"\r", 1)[0]
        if login not in users:
            users[login] = password
        if not _KNOWN.match(password):
            unknown.append(number)
    return UserTable(users, tuple(unknown))


def basic_credentials(value: bytes) -> tuple[bytes, bytes] | None:
    """
    The user and password of an ``Authorization: Basic`` value, None when
    malformed: nginx's ngx_http_auth_basic_user (the scheme case-blind,
    spaces before the credentials, base64 up to the first ``=``, a
    non-empty user before a ``:``).
    """
    if len(value) < 6 or value[:6].lower() != b"basic ":
        return None
    encoded = value[6:].lstrip(b" ").split(b"=", 1)[0]
    if not encoded or len(encoded) % 4 == 1 or not _B64_ALPHABET.issuperset(encoded):
        return None
    try:
        decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
    except binascii.Error:
        return None
    user, colon, password = decoded.partition(b":")
    if not user or not colon:
        return None
    return user, password


def verify(field: bytes, password: bytes) -> bool:
    """Whether ``password`` matches the htpasswd password ``field``."""
    if field.startswith(b"{PLAIN}"):
        return hmac.compare_digest(field[7:], password)
    if field.startswith(b"{SHA}"):
        return hmac.compare_digest(field[5:], base64.b64encode(hashlib.sha1(password).digest()))
    if field.startswith(b"{SSHA}"):
        return _ssha(field[6:], password)
    for magic in _MD5_MAGICS:
        if field.startswith(magic):
            return hmac.compare_digest(field, md5_crypt(password, field, magic))
    computed = _system_crypt(password, field)
    return computed is not None and hmac.compare_digest(field, computed)


def _ssha(encoded: bytes, password: bytes) -> bool:
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    digest, salt = decoded[:20], decoded[20:]
    return len(digest) == 20 and hmac.compare_digest(digest, hashlib.sha1(password + salt).digest())


def md5_crypt(password: bytes, setting: bytes, magic: bytes) -> bytes:
    """Poul-Henning Kamp's MD5 crypt, which Apache's ``$apr1$`` is with its own magic."""
    salt = setting[len(magic) :].split(b"$", 1)[0][:8]
    ctx = hashlib.md5(password + magic + salt)
    alternate = hashlib.md5(password + salt + password).digest()
    for left in range(len(password), 0, -16):
        ctx.update(alternate[: min(16, left)])
    bits = len(password)
    while bits:
        ctx.update(b"\0" if bits & 1 else password[:1])
        bits >>= 1
    final = ctx.digest()
    for i in range(1000):
        round_ = hashlib.md5(password if i & 1 else final)
        if i % 3:
            round_.update(salt)
        if i % 7:
            round_.update(password)
        round_.update(final if i & 1 else password)
        final = round_.digest()
    return magic + salt + b"$" + _md5_crypt_text(final)


def _md5_crypt_text(final: bytes) -> bytes:
    groups = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    out = bytearray()
    for a, b, c in groups:
        out += _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
    out += _to64(final[11], 2)
    return bytes(out)


def _to64(value: int, count: int) -> bytes:
    out = bytearray()
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def _load_crypt() -> Callable[[bytes, bytes], bytes | None]:
    """
    crypt(3) from libcrypt through ctypes: the function nginx calls, so a
    file works here exactly when it works under nginx on the same host
    (the stdlib ``crypt`` module is gone from Python 3.13).
    """
    name = ctypes.util.find_library("crypt")
    try:
        function = ctypes.CDLL(name).crypt
    except (OSError, AttributeError):
        return lambda password, setting: None
    function.restype = ctypes.c_char_p
    function.argtypes = (ctypes.c_char_p, ctypes.c_char_p)

    def crypt(password: bytes, setting: bytes) -> bytes | None:
        if b"\0" in password or b"\0" in setting:
            return None
        result = function(password, setting)
        return None if result is None or result.startswith(b"*") else result

    return crypt


_system_crypt = _load_crypt()
