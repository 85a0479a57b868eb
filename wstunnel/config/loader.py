"""
nginx-syntax configuration file -> :class:`~wstunnel.config.model.Config`.

The load runs in three steps, each in its own module: reading the files into
one statement tree (:mod:`~wstunnel.config.read`: crossplane, ``include``),
walking it against the directive table (:mod:`~wstunnel.config.walk`,
:mod:`~wstunnel.config.directives`, handlers by topic), and building the
frozen model (:mod:`~wstunnel.config.build`: inheritance, upstream names,
templates, bindings).  Everything is settled here, once, so a request never
walks the configuration.
"""

from __future__ import annotations

from wstunnel.config.addresses import Resolver, resolve_host
from wstunnel.config.build import build
from wstunnel.config.directives import IGNORED_DIRECTIVES, lookup
from wstunnel.config.model import Config
from wstunnel.config.read import read
from wstunnel.config.walk import Load

__all__ = ["IGNORED_DIRECTIVES", "Resolver", "load_config", "resolve_host"]


def load_config(path: str, *, resolve: Resolver = resolve_host) -> Config:
    """
    Read ``path`` (a whole nginx.conf or a conf.d snippet) and everything it
    includes.  Raises :class:`~wstunnel.config.model.ConfigErrors` listing
    every mistake found.
    """
    load = Load(path, resolve, lookup)
    return build(load, read(path, load.errors, load.notices))
