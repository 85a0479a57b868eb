"""
``charset``, ``charset_types``, ``source_charset`` and ``override_charset``
as nginx 1.22 reads them.  wstunnel never recodes a body (it has no
``charset_map``), which is also what nginx does without one: a charset and
a source charset that differ are refused at load, as nginx refuses them,
here with the line.
"""

from __future__ import annotations

from typing import Mapping

from wstunnel.config.levels import Level
from wstunnel.config.model import Charset, ConfigError, Source, Template
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = ["COMPILERS", "charset_directive", "charset_rule"]

DEFAULT_TYPES = frozenset(
    {"text/html", "text/xml", "text/plain", "text/vnd.wap.wml", "application/javascript", "application/rss+xml"}
)
Written = list[tuple[tuple[str, ...], Source]]


def charset_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """All four: ``override_charset`` takes on or off; ``charset_types`` lines add up."""
    if stmt.name == "override_charset":
        flag(stmt)
    level.shaping.setdefault(stmt.name, []).append((stmt.args, stmt.source))


def _name(load: Load, written: Written) -> tuple[Template, Source] | None:
    """A charset's name, or a variable naming it per answer (``$name``, the whole value)."""
    (args, source), = written
    if args[0] == "off":
        return None
    template = load.template(args[0], source) if args[0].startswith("$") else Template(args[0], (args[0],))
    return None if template is None else (template, source)


def _types(load: Load, written: Written) -> frozenset[str]:
    """As in nginx, text/html is always one of them."""
    return frozenset(t.lower() for args, _ in written for t in args) | {"text/html"}


def _override(load: Load, written: Written) -> bool:
    return written[0][0][0] == "on"


COMPILERS = {
    "charset": _name,
    "source_charset": _name,
    "charset_types": _types,
    "override_charset": _override,
}


def charset_rule(load: Load, shaping: Mapping[str, object]) -> Charset | None:
    """
    A location's charset, or None when it has none.  A literal source
    charset other than the charset needs recoding: an error at the
    source_charset line, reported once.
    """
    name = shaping.get("charset")
    if name is None:
        return None
    template, _ = name  # type: ignore[misc]
    source = shaping.get("source_charset")
    if source is not None:
        _check_recoding(load, template, *source)  # type: ignore[misc]
    return Charset(
        name=template,
        types=shaping.get("charset_types", DEFAULT_TYPES),  # type: ignore[arg-type]
        source=None if source is None else source[0],  # type: ignore[index]
        override=bool(shaping.get("override_charset", False)),
    )


def _check_recoding(load: Load, charset: Template, source: Template, where: Source) -> None:
    if not (charset.is_literal and source.is_literal) or charset.text.lower() == source.text.lower():
        return
    error = ConfigError(
        where,
        f'no "charset_map" between the charsets "{source.text}" and "{charset.text}": '
        "recoding is not supported by wstunnel",
    )
    if str(error) not in map(str, load.errors):
        load.errors.append(error)
