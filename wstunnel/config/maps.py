"""
``map SOURCE $variable { ... }``: exact-key maps, gathered as written and
compiled once every map's name is known (a map may name another), with a
cycle between maps refused at load time.
"""

from __future__ import annotations

import re

from wstunnel.config.levels import Level, RawMap
from wstunnel.config.model import ConfigError, MapDef, VarRef
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
    if name in load.maps or is_builtin(name):
        raise ConfigError(stmt.source, f'the duplicate "{name}" variable')
    raw = RawMap(name, source_text, {}, None, stmt.source)
    load.maps[name] = raw
    for entry in stmt.block or ():
        try:
            _map_entry(raw, entry)
        except ConfigError as exc:
            load.errors.append(exc)


def _map_entry(raw: RawMap, entry: Stmt) -> None:
    key = entry.name
    if key in ("hostnames", "volatile") and not entry.args:
        raise ConfigError(entry.source, f'"{key}" in "map" is not supported by wstunnel')
    if entry.block is not None or len(entry.args) != 1:
        raise ConfigError(entry.source, "invalid number of the map parameters")
    value = (entry.args[0], entry.source)
    if key == "default":
        if raw.default is not None:
            raise ConfigError(entry.source, "duplicate default map parameter")
        raw.default = value
        return
    if key.startswith("~"):
        raise ConfigError(entry.source, "regular expressions in map are not supported by wstunnel")
    key = key.removeprefix("\\").lower()
    if key in raw.entries:
        raise ConfigError(entry.source, f'conflicting parameter "{entry.name}"')
    raw.entries[key] = value


def compile_maps(load: Load) -> dict[str, MapDef]:
    maps: dict[str, MapDef] = {}
    for raw in load.maps.values():
        source_template = load.template(raw.source_text, raw.source)
        default = load.template(*raw.default) if raw.default else compile_template("", raw.source, ())
        exact = {key: load.template(text, src) for key, (text, src) in raw.entries.items()}
        if source_template is None or default is None or None in exact.values():
            continue
        maps[raw.variable] = MapDef(raw.variable, source_template, exact, default, raw.source)  # type: ignore[arg-type]
    _check_map_cycles(maps, load.errors)
    return maps


def _map_dependencies(mapdef: MapDef, maps: dict[str, MapDef]) -> list[str]:
    templates = [mapdef.source_template, mapdef.default, *mapdef.exact.values()]
    names = (p.name for t in templates for p in t.parts if isinstance(p, VarRef))
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
