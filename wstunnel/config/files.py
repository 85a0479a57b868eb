"""
Serving files: ``root``, ``alias``, ``index``, ``try_files``,
``autoindex``, ``types``, ``default_type``, ``etag``,
``if_modified_since`` and ``internal``, read into each level's ``files``
and built into a :class:`~wstunnel.config.model.FileSettings` per location
and server.  ``disable_symlinks`` is refused unless ``off``: wstunnel
follows symbolic links as nginx does by default, and checks nothing more.
"""

from __future__ import annotations

from typing import Mapping

from wstunnel.config.levels import Level, LocationLevel
from wstunnel.config.model import ConfigError, FileSettings, Template
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = [
    "INHERITED",
    "alias",
    "default_type",
    "disable_symlinks",
    "file_flag",
    "file_settings",
    "if_modified_since",
    "index",
    "inherited_files",
    "internal",
    "root",
    "try_files",
    "types_block",
]

# What a level passes on to the levels inside it; the rest is the location's own.
INHERITED = ("root", "index", "autoindex", "types", "default_type", "etag", "if_modified_since", "log_not_found")
# nginx's types when no "types" block is in force anywhere.
_DEFAULT_TYPES = {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}
_DEFAULT_INDEX = (Template("index.html", ("index.html",)),)


def root(load: Load, stmt: Stmt, level: Level) -> None:
    _path_directive(stmt, level, "alias")


def alias(load: Load, stmt: Stmt, level: Level) -> None:
    if isinstance(level, LocationLevel) and level.modifier == "@":
        raise ConfigError(stmt.source, '"alias" directive cannot be used inside the named location')
    _path_directive(stmt, level, "root")


def _path_directive(stmt: Stmt, level: Level, other: str) -> None:
    """``root`` and ``alias`` exclude each other in one location, with nginx's messages."""
    if other in level.files:
        raise ConfigError(
            stmt.source, f'"{stmt.name}" directive is duplicate, "{other}" directive was specified earlier'
        )
    if stmt.name in level.files:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
    level.files[stmt.name] = (stmt.args[0], stmt.source)


def index(load: Load, stmt: Stmt, level: Level) -> None:
    """Every ``index`` of a level adds its names; only the last name may be absolute."""
    names = list(level.files.get("index", ()))
    for position, name in enumerate(stmt.args):
        if not name:
            raise ConfigError(stmt.source, f'index "" in "{stmt.name}" directive is invalid')
        if name.startswith("/") and position != len(stmt.args) - 1:
            raise ConfigError(stmt.source, f'only the last index in "{stmt.name}" directive should be absolute')
        names.append((name, stmt.source))
    level.files["index"] = tuple(names)


def try_files(load: Load, stmt: Stmt, level: Level) -> None:
    last = stmt.args[-1]
    if last.startswith("=") and not (last[1:].isdigit() and 0 < int(last[1:]) < 1000):
        raise ConfigError(stmt.source, f'invalid code "{last}"')
    level.files["try_files"] = (stmt.args, stmt.source)


def file_flag(load: Load, stmt: Stmt, level: Level) -> None:
    """``autoindex``, ``etag``, ``log_not_found``: on or off."""
    level.files[stmt.name] = flag(stmt)


def if_modified_since(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value not in ("off", "exact", "before"):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    level.files["if_modified_since"] = value


def default_type(load: Load, stmt: Stmt, level: Level) -> None:
    level.files["default_type"] = stmt.args[0]


def internal(load: Load, stmt: Stmt, level: Level) -> None:
    level.files["internal"] = True


def disable_symlinks(load: Load, stmt: Stmt, level: Level) -> None:
    if stmt.args != ("off",):
        raise ConfigError(
            stmt.source, '"disable_symlinks" is not supported by wstunnel: symbolic links are followed, as nginx does by default'
        )


def types_block(load: Load, stmt: Stmt, level: Level) -> None:
    """``types { type ext...; }``: several blocks at one level add up; a later extension wins."""
    table = dict(level.files.get("types", {}))
    for entry in stmt.block or ():
        if entry.block is not None or not entry.args:
            load.errors.append(ConfigError(entry.source, f'invalid number of arguments in "{entry.name}" directive'))
            continue
        for extension in entry.args:
            table[extension.lower()] = entry.name
    level.files["types"] = table


def inherited_files(parent: Mapping[str, object], here: Mapping[str, object]) -> Mapping[str, object]:
    """nginx's merge: each setting a level gives replaces the enclosing one's."""
    given = {name: here[name] for name in INHERITED if name in here}
    return {**parent, **given} if given else parent


def file_settings(
    load: Load, inherited: Mapping[str, object], send_timeout: float, level: Level
) -> FileSettings | None:
    """
    What ``level`` serves from disk, None when it has no root, alias,
    try_files or ``internal`` in force; ``inherited`` is the merged file
    settings in force there and ``send_timeout`` its send_timeout.  Templates are compiled here, once every map and
    capture name is known.
    """
    own = level.files
    if not ("alias" in own or "try_files" in own or "internal" in own or "root" in inherited):
        return None
    regex = isinstance(level, LocationLevel) and level.regex is not None
    alias_text = own.get("alias")
    if alias_text is not None and regex and "$" not in alias_text[0]:  # type: ignore[index]
        load.errors.append(
            ConfigError(
                alias_text[1],  # type: ignore[index]
                'the "alias" directive must use captures inside location given by regular expression',
            )
        )
    tried = own.get("try_files")
    return FileSettings(
        root=_compiled(load, inherited.get("root")),
        alias=_compiled(load, alias_text),
        index=tuple(_compiled(load, n) for n in inherited.get("index", ())) or _DEFAULT_INDEX,  # type: ignore[misc, union-attr]
        try_files=() if tried is None else tuple(_compiled(load, (a, tried[1])) for a in tried[0]),  # type: ignore[index, misc]
        autoindex=bool(inherited.get("autoindex", False)),
        types=inherited.get("types", _DEFAULT_TYPES),  # type: ignore[arg-type]
        default_type=str(inherited.get("default_type", "text/plain")),
        etag=bool(inherited.get("etag", True)),
        log_not_found=bool(inherited.get("log_not_found", True)),
        if_modified_since=str(inherited.get("if_modified_since", "exact")),
        internal=bool(own.get("internal", False)),
        regex_alias=regex and alias_text is not None,
        send_timeout=send_timeout,
    )


def _compiled(load: Load, written: object) -> Template | None:
    if written is None:
        return None
    text, source = written  # type: ignore[misc]
    return load.template(text, source)
