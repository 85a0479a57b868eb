"""
The rewrite module's directives as loaded (config.rewrite): the program of
each level, compiled once; ``set`` names known everywhere; ``rewrite_log``
inherited; the implicit location of a location's ``if``.
"""

from __future__ import annotations

from pathlib import Path

from support import config_errors
from wstunnel.config.loader import load_config
from wstunnel.config.model import BreakStep, Config, IfBlock, Return, RewriteRule, SetVariable
from wstunnel.core.routing import Router


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "proxy.conf"
    path.write_text(text)
    return load_config(str(path), resolve=lambda host, port: [host])


def test_a_level_without_rewrite_directives_has_no_program(tmp_path: Path) -> None:
    config = load(tmp_path, "server {\nlisten 127.0.0.1:8080;\nlocation / { proxy_pass http://127.0.0.1:9001; }\n}\n")
    (server,) = config.servers
    assert server.rewrites is None and server.locations[0].rewrites is None


def test_the_program_keeps_file_order_and_splits_each_replacement(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "server {\nlisten 127.0.0.1:8080;\nlocation / {\n"
        "set $a x;\n"
        "rewrite ^/u/(\\d+)$ /user?id=$1? last;\n"
        "rewrite ^/e https://e.test/$uri;\n"
        "rewrite ^/p /q permanent;\n"
        "break;\n"
        "return 404;\n"
        "proxy_pass http://127.0.0.1:9001;\n}\n}\n",
    )
    steps = config.servers[0].locations[0].rewrites.steps
    assert [step.__class__ for step in steps] == [SetVariable, RewriteRule, RewriteRule, RewriteRule, BreakStep, Return]
    user, external, permanent = steps[1:4]
    assert (user.uri.text, user.args.text, user.add_args) == ("/user", "id=$1", False)
    assert (user.flag, user.redirect) == ("last", 0)
    assert (external.uri.text, external.args, external.redirect) == ("https://e.test/$uri", None, 302)
    assert (permanent.redirect, permanent.flag) == (301, "permanent")


def test_a_variable_set_later_is_known_earlier_and_elsewhere(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "server {\nlisten 127.0.0.1:8080;\nlocation /a { return 200 $late; }\n}\n"
        "server {\nlisten 127.0.0.1:8081;\nset $late 1;\nreturn 204;\n}\n",
    )
    assert config.servers[0].locations[0].rewrites is not None


def test_a_variable_nobody_sets_is_unknown_at_its_line(tmp_path: Path) -> None:
    assert config_errors(tmp_path, "server {\nlisten 127.0.0.1:8080;\nif ($nobody) { return 404; }\n}\n") == [
        'FILE:3: unknown "nobody" variable'
    ]


def test_rewrite_log_is_inherited_and_overridden(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "http {\nrewrite_log on;\nserver {\nlisten 127.0.0.1:8080;\nrewrite ^/x /y;\n"
        "location /on { rewrite ^ /a; proxy_pass http://127.0.0.1:9001; }\n"
        "location /off { rewrite_log off; rewrite ^ /a; proxy_pass http://127.0.0.1:9001; }\n}\n}\n",
    )
    (server,) = config.servers
    assert server.rewrites.log
    assert [location.rewrites.log for location in server.locations] == [True, False]


def test_an_if_in_a_location_opens_a_location_inheriting_from_it(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "server {\nlisten 127.0.0.1:8080;\nlocation /p/ {\nproxy_pass http://127.0.0.1:9001/q/;\n"
        "proxy_read_timeout 5s;\nif ($arg_x) { add_header X-If 1; }\n}\n}\n",
    )
    (server,) = config.servers
    outer, implicit = server.locations
    (block,) = outer.rewrites.steps
    assert isinstance(block, IfBlock) and block.location is implicit
    assert implicit.proxy_pass == outer.proxy_pass and implicit.path == "/p/"
    assert implicit.timeouts.read == 5.0 and [h.name for h in implicit.response.add_headers] == [b"X-If"]
    assert Router(config).find_location(server, "/p/z") is outer


def test_an_if_at_server_level_has_no_location(tmp_path: Path) -> None:
    config = load(tmp_path, "server {\nlisten 127.0.0.1:8080;\nif ($host = a.test) { return 301 https://a.test; }\n}\n")
    (block,) = config.servers[0].rewrites.steps
    assert isinstance(block, IfBlock) and block.location is None and block.condition.op == "="


def test_the_inside_of_a_refused_server_if_is_checked_as_a_server_if(tmp_path: Path) -> None:
    assert config_errors(
        tmp_path,
        "server {\nlisten 127.0.0.1:8080;\nif (bad) {\nproxy_pass http://127.0.0.1:9001;\nrewrite ^ /x foo;\n}\n}\n",
    ) == [
        'FILE:3: invalid condition "bad"',
        'FILE:4: "proxy_pass" directive is not allowed here',
        'FILE:5: invalid parameter "foo"',
    ]
