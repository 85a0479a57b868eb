"""
``map SOURCE $variable { ... }``: exact keys, ``hostnames`` wildcards and
regular expressions, gathered as written (regexes compiled at once, so a
bad one is reported at its line) and compiled into templates once every
map's name is known (a map may name another), with a cycle between maps
refused at load time.
"""

from __future__ import annotations

import re

from wstunnel.config.levels import Level, RawMap
from wstunnel.config.model import ConfigError, MapDef, Source, VarRef
from wstunnel.config.pcre import PcreError, compile_pcre
from wstunnel.config.read import Stmt
from wstunnel.config.templates import compile_template, is_builtin
from wstunnel.config.walk import Load

__all__ = ["compile_maps", "map_block"]

_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")


def map_block(load: Load, stmt: Stmt, level: Level) -> None:
    source_text, var = stmt.args
    name = var[1:].lower()
    if not var.startswith("$") or not _VARIABLE_NAME.fullmatch(name):
        raise ConfigError(stmt.source, f'invalid variable name "{var}"')
    if name in load.maps or name in load.captures or is_builtin(name):
        raise ConfigError(stmt.source, f'the duplicate "{name}" variable')
    raw = RawMap(name, source_text, {}, None, stmt.source)
    load.maps[name] = raw
    for entry in stmt.block or ():
        try:
            _map_entry(load, raw, entry)
        except ConfigError as exc:
            load.errors.append(exc)


def _map_entry(load: Load, raw: RawMap, entry: Stmt) -> None:
    key = entry.name
    if key == "hostnames" and not entry.args:
        raw.hostnames = True
        return
    if key == "volatile" and not entry.args:
        raw.volatile = True
        return
    if entry.block is not None or len(entry.args) != 1:
        raise ConfigError(entry.source, "invalid number of the map parameters")
    value = (entry.args[0], entry.source)
    if key == "default":
        if raw.default is not None:
            raise ConfigError(entry.source, "duplicate default map parameter")
        raw.default = value
        return
    if key.startswith("~"):
        raw.regexes.append((_regex(load, key, entry.source), *value))
        return
    key = key.removeprefix("\\").lower()
    if not raw.hostnames:
        _add_exact(raw, key, value, key)
    elif not _add_hostname(raw, key, value):
        raise ConfigError(entry.source, f'invalid hostname or wildcard "{entry.name}"')


def _regex(load: Load, key: str, source: Source) -> re.Pattern[str]:
    """
    ``~re`` or ``~*re`` compiled now; its named groups become variables that
    any later template may use, as in nginx.
    """
    caseless = key.startswith("~*")
    pattern = key[2:] if caseless else key[1:]
    try:
        compiled = compile_pcre(pattern, caseless)
    except PcreError as exc:
        raise ConfigError(source, f'"map" regex: pcre2_compile() failed: {exc} in "{pattern}"') from None
    for name in compiled.groupindex:
        name = name.lower()
        if name in load.maps or is_builtin(name):
            raise ConfigError(source, f'the duplicate "{name}" variable')
        load.captures.add(name)
    return compiled


def _add_exact(raw: RawMap, key: str, value: tuple[str, Source], written: str) -> None:
    if key in raw.entries:
        raise ConfigError(value[1], f'conflicting parameter "{written}"')
    raw.entries[key] = value


def _add_hostname(raw: RawMap, key: str, value: tuple[str, Source]) -> bool:
    """
    nginx's rules for a key under ``hostnames``: ``.example.com`` (also the
    exact name), ``*.example.com``, ``www.example.*``, else an exact name;
    any other ``*``, or ``..``, makes the key invalid (False).
    """
    if key.count("*") > 1 or ".." in key:
        return False
    if len(key) > 1 and key.startswith("."):
        _add_exact(raw, key[1:], value, key)
        wildcard = "*" + key
    elif len(key) > 2 and (key.startswith("*.") or key.endswith(".*")):
        wildcard = key
    elif "*" in key:
        return False
    else:
        _add_exact(raw, key, value, key)
        return True
    if wildcard in raw.wildcards:
        raise ConfigError(value[1], f'conflicting parameter "{key}"')
    raw.wildcards[wildcard] = value
    return True


def compile_maps(load: Load) -> dict[str, MapDef]:
    maps: dict[str, MapDef] = {}
    for raw in load.maps.values():
        mapdef = _compile_map(load, raw)
        if mapdef is not None:
            maps[raw.variable] = mapdef
    _check_map_cycles(maps, load.errors)
    return maps


def _compile_map(load: Load, raw: RawMap) -> MapDef | None:
    """The map's templates compiled; None once a mistake in one is reported."""
    source_template = load.template(raw.source_text, raw.source)
    default = load.template(*raw.default) if raw.default else compile_template("", raw.source, ())
    exact = {key: load.template(*value) for key, value in raw.entries.items()}
    wildcards = {key: load.template(*value) for key, value in raw.wildcards.items()}
    regexes = [(pattern, load.template(text, src)) for pattern, text, src in raw.regexes]
    templates = [source_template, default, *exact.values(), *wildcards.values(), *(t for _, t in regexes)]
    if None in templates:
        return None
    return MapDef(
        raw.variable,
        source_template,  # type: ignore[arg-type]
        exact,  # type: ignore[arg-type]
        default,  # type: ignore[arg-type]
        raw.source,
        head={k[2:]: t for k, t in wildcards.items() if k.startswith("*.")},  # type: ignore[misc]
        tail={k[:-2]: t for k, t in wildcards.items() if not k.startswith("*.")},  # type: ignore[misc]
        regexes=tuple(regexes),  # type: ignore[arg-type]
        hostnames=raw.hostnames,
        volatile=raw.volatile,
    )


def _map_dependencies(mapdef: MapDef, maps: dict[str, MapDef]) -> list[str]:
    names = (p.name for t in mapdef.templates() for p in t.parts if isinstance(p, VarRef))
    return list(dict.fromkeys(n for n in names if n in maps))


def _check_map_cycles(maps: dict[str, MapDef], errors: list[ConfigError]) -> None:
    """A map that needs its own value would recurse forever per request."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join(f"${n}" for n in path[path.index(name) :] + [name])
            raise ConfigError(maps[name].source, f"cycle in map variables: {cycle}")
        if name in done:
            return
        for dep in _map_dependencies(maps[name], maps):
            visit(dep, path + [name])
        done.add(name)

    for name in maps:
        try:
            visit(name, [])
        except ConfigError as exc:
            errors.append(exc)
            done.update(maps)
            return
