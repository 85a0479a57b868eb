"""log_format at load time: compiling a format, and the log-only variables it may name."""

from __future__ import annotations

import pytest

from wstunnel.config.logformats import ESCAPES, LOG_VARIABLES, combined_format, compile_log_format
from wstunnel.config.model import Config, ConfigError, Server, Source, VarRef
from wstunnel.core.attempts import UpstreamRecord
from wstunnel.core.logformat import LogEntry, bare_vars, render_line
from wstunnel.wire.request import ConnInfo, RequestHead

SRC = Source("test.conf", 3)
SERVER = Server(("example.com",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {}, {}, ())


def _entry() -> LogEntry:
    conn = ConnInfo("127.0.0.1", 40000, "127.0.0.1", 8080)
    head = RequestHead(b"GET", b"/", b"1.1", ())
    return LogEntry(conn, head, bare_vars(CONFIG, SERVER, conn, head), 1.0, 2.0, 200, 0, UpstreamRecord())


def test_combined_names_only_known_variables() -> None:
    fmt = combined_format(SRC)
    assert (fmt.name, fmt.escape, fmt.source) == ("combined", "default", SRC)
    assert VarRef("time_local") in fmt.template.parts


@pytest.mark.parametrize("escaping", ESCAPES)
def test_every_log_variable_compiles_and_renders(escaping: str) -> None:
    """A name compiled here without a getter in the renderer would fail at the first request."""
    text = "|".join(f"${name}" for name in sorted(LOG_VARIABLES))
    fmt = compile_log_format("all", escaping, text, SRC, ())
    assert len(render_line(fmt, _entry()).split("|")) == len(LOG_VARIABLES)


def test_maps_are_known_variables() -> None:
    fmt = compile_log_format("m", "json", "$room", SRC, ("room",))
    assert fmt.template.parts == (VarRef("room"),)


def test_an_unknown_variable_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_log_format("x", "default", "$nope", SRC, ())
    assert str(caught.value) == 'test.conf:3: unknown "nope" variable'
