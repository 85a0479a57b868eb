"""
core.dispatch.prepare called the way the client protocol calls it, without
a socket: the sans-IO tests of what a request gets (tests/unit/core) share
this one call.
"""

from __future__ import annotations

from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, prepare
from wstunnel.core.headers import header_plan
from wstunnel.core.routing import Router
from wstunnel.wire.request import ConnInfo, RequestHead

CONN = ConnInfo(remote_addr="127.0.0.1", remote_port=40000, server_addr="127.0.0.1", server_port=8080)


def redirect_chain(prefix: str, steps: int) -> str:
    """
    ``steps`` internal redirects, alternately a try_files jump and a
    rewrite, then an answer naming ``$uri`` and ``$request_uri``: location
    blocks for a server, to show nginx's limit of internal redirects.
    """
    blocks = []
    for i in range(steps):
        nxt = f"/{prefix}{i + 1}"
        step = f"rewrite ^ {nxt} last;" if i % 2 else f"try_files /none {nxt};"
        blocks.append(f"location = /{prefix}{i} {{ {step} }}")
    blocks.append(f'location = /{prefix}{steps} {{ return 200 "reached $uri $request_uri"; }}')
    return "\n".join(blocks)


def decide_for(config: Config, target: bytes, *, method: bytes = b"GET", host: bytes = b"a.test",
               **options: object) -> Decision:
    """The decision for ``METHOD TARGET`` with that Host on the config's first binding; ``options`` go to prepare."""
    return prepare(
        config=config,
        router=Router(config),
        binding=config.bindings[0],
        conn=CONN,
        tls=None,
        head=RequestHead(method, target, b"1.1", ((b"Host", host),)),
        pooled=set(),
        plans=lambda location: header_plan(location, config),
        **options,  # type: ignore[arg-type]
    )
