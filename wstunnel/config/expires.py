"""
``expires [modified] TIME | epoch | max | off``, read as nginx 1.22's
headers module reads it: a time (``1h``, ``-1``, ``+30d``), ``@15h30m``
for a time of day, or, with variables, a value parsed when each answer
goes out.
"""

from __future__ import annotations

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, Expires, Source
from wstunnel.config.read import Stmt
from wstunnel.config.units import parse_time
from wstunnel.config.walk import Load

__all__ = ["COMPILERS", "expires", "parse_expires"]

_DAY = 24 * 60 * 60
_WORDS = {"epoch": "epoch", "max": "max", "off": "off"}


def expires(load: Load, stmt: Stmt, level: Level) -> None:
    if len(stmt.args) == 2 and stmt.args[0] != "modified":
        raise ConfigError(stmt.source, '"expires" directive invalid value')
    value = stmt.args[-1]
    if "$" not in value:
        try:
            parse_expires(value, modified=len(stmt.args) == 2)
        except ValueError as exc:
            raise ConfigError(stmt.source, f'"expires" directive {exc}') from None
    level.shaping["expires"] = [(stmt.args, stmt.source)]


def parse_expires(text: str, modified: bool) -> tuple[str, int]:
    """
    The kind (``access``, ``modified``, ``daily``, ``epoch``, ``max``,
    ``off``) and the signed seconds of a value; ValueError with nginx's
    words for a bad one.
    """
    if not modified and text in _WORDS:
        return _WORDS[text], 0
    kind, sign = ("modified" if modified else "access"), 1
    if text.startswith("@"):
        if modified:
            raise ValueError('daily time cannot be used with "modified" parameter')
        kind, text = "daily", text[1:]
    elif text[:1] in ("+", "-"):
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if "ms" in text:
        raise ValueError("invalid value")
    try:
        seconds = int(parse_time(text))
    except ValueError:
        raise ValueError("invalid value") from None
    if kind == "daily" and seconds > _DAY:
        raise ValueError("daily time value must be less than 24 hours")
    return kind, sign * seconds


def _compile(load: Load, written: list[tuple[tuple[str, ...], Source]]) -> Expires | None:
    (args, source), = written
    modified = len(args) == 2
    if "$" in args[-1]:
        template = load.template(args[-1], source)
        return None if template is None else Expires("modified" if modified else "access", 0, template)
    kind, seconds = parse_expires(args[-1], modified)
    return None if kind == "off" else Expires(kind, seconds)


COMPILERS = {"expires": _compile}
