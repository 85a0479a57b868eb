"""
The package's metadata is in setup.cfg; this file exists for the optional
compiled build only.  ``WSTUNNEL_COMPILE=1`` compiles the modules listed in
COMPILED with mypyc, which must be installed beside setuptools at version
MYPY (doc/compiled.md).  Without it the package stays pure Python and needs
no compiler, which is what is tested and deployed by default.
"""

from __future__ import annotations

import os

from setuptools import setup

MYPY = "2.4.1"

# The sans-IO modules where a plain GET and a WebSocket handshake spend their
# Python time (doc/compiled.md); tests/test_compiled_build.py keeps the list to
# modules that exist and load no Twisted.
COMPILED = [
    "wstunnel/wire/heads.py",
    "wstunnel/wire/request.py",
    "wstunnel/wire/response.py",
    "wstunnel/wire/framing.py",
    "wstunnel/wire/upstream.py",
    "wstunnel/core/headers.py",
    "wstunnel/core/dispatch.py",
    "wstunnel/core/routing.py",
    "wstunnel/core/variables.py",
    # compiled for its PageRequest: a compiled class takes only the subclasses compiled with it
    "wstunnel/core/errorpages.py",
    "wstunnel/balancing/balancer.py",
]


def _extensions() -> list:
    """mypyc's extension modules when the compiled build is asked for, else none."""
    if os.environ.get("WSTUNNEL_COMPILE") != "1":
        return []
    from mypy.version import __version__
    from mypyc.build import mypycify

    if __version__ != MYPY:
        raise SystemExit(f"WSTUNNEL_COMPILE=1 needs mypy=={MYPY} (found {__version__})")
    return mypycify(["--ignore-missing-imports", "--follow-imports=silent", *COMPILED], group_name="wstunnel")


setup(ext_modules=_extensions())
