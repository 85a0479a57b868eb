"""
``python -m wstunnel --check|--dump [-c FILE]``: validate (and print) a
configuration without twistd, for scripts and packaging hooks.  The proxy itself runs under twistd.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from wstunnel.app.tap import Options, check

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        print(f"wstunnel: {e}", file=sys.stderr)
        return 2
    if not (options["check"] or options["dump"]):
        print("wstunnel: only --check and --dump run here; start the proxy with: twistd -n wstunnel", file=sys.stderr)
        return 2
    check(options["config"], dump=options["dump"])


if __name__ == "__main__":
    sys.exit(main())
