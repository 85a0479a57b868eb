"""The directive table itself: its entries agree with the modules that give them meaning."""

from __future__ import annotations

import pytest

from wstunnel.config import servers, tls
from wstunnel.config.access import LIMIT_EXCEPT
from wstunnel.config.directives import IGNORED_DIRECTIVES, TABLE, UPSTREAM_TABLE, lookup
from wstunnel.config.model import ConfigError, Source
from wstunnel.config.read import Stmt
from wstunnel.config.walk import ALL_CONTEXTS, EVENTS, MAIN, UPSTREAM

KNOWN_CONTEXTS = ALL_CONTEXTS | {EVENTS, UPSTREAM, LIMIT_EXCEPT}
SRC = Source("t.conf", 7)


def _stmt(name: str) -> Stmt:
    return Stmt(name, (), SRC, None)


def test_every_tls_directive_has_a_kind_and_a_table_line() -> None:
    in_table = {name for name, entry in TABLE.items() if entry.handler is servers.tls_setting}
    assert in_table == set(tls.KINDS)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_entries_name_known_contexts(name: str) -> None:
    entry = TABLE[name]
    assert entry.contexts and entry.contexts <= KNOWN_CONTEXTS
    assert entry.max_args is None or entry.min_args <= entry.max_args


def test_upstream_directives_stay_in_upstream_blocks() -> None:
    assert all(entry.contexts == {UPSTREAM} for entry in UPSTREAM_TABLE.values())
    assert lookup(_stmt("keepalive_timeout"), UPSTREAM) is UPSTREAM_TABLE["keepalive_timeout"]
    assert lookup(_stmt("keepalive_timeout"), MAIN) is TABLE["keepalive_timeout"]


@pytest.mark.parametrize(
    "name, ctx, message",
    [
        ("least_conn", MAIN, '"least_conn" directive is not allowed here'),
        ("sub_filter", MAIN, '"sub_filter" is not supported by wstunnel'),
        ("no_such_thing", MAIN, 'unknown directive "no_such_thing"'),
    ],
)
def test_lookup_refuses_with_nginx_wording(name: str, ctx: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lookup(_stmt(name), ctx)
    assert str(caught.value) == f"t.conf:7: {message}"


def test_only_harmless_directives_are_ignored() -> None:
    assert {"pid", "sendfile"} <= IGNORED_DIRECTIVES
    assert not IGNORED_DIRECTIVES & {"deny", "allow", "auth_basic", "proxy_pass", "ssl_verify_client"}
