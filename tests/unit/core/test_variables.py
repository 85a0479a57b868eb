import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstunnel.config.model import (
    Config,
    ConfigError,
    Location,
    MapDef,
    Peer,
    ProxyPass,
    Server,
    Source,
    Template,
    Timeouts,
    Upstream,
    VarRef,
)
from wstunnel.wire.request import ConnInfo, RequestHead, Target
from wstunnel.config.templates import BUILTIN_VARIABLES, compile_template
from wstunnel.core.variables import RequestVars, evaluate_map, render

SRC = Source("test.conf", 7)


def tpl(text, maps=()):
    return compile_template(text, SRC, maps)


def mapdef(variable, source, exact, default=None, maps=()):
    return MapDef(
        variable=variable,
        source_template=tpl(source, maps),
        exact={k: tpl(v, maps) for k, v in exact.items()},
        default=tpl(default or "", maps),
        source=SRC,
    )


def make_location(proxy_host="backend"):
    upstream = Upstream("backend", (Peer("127.0.0.1", 8000, "127.0.0.1:8000"),), False, SRC)
    return Location(
        path="/chat/",
        exact=False,
        proxy_pass=ProxyPass("http", upstream, None, proxy_host, SRC),
        http_version="1.1",
        set_headers=(),
        timeouts=Timeouts(),
        access_logs=(),
        source=SRC,
    )


def make_vars(headers=(), maps=(), location=None, host="example.com", args="x=1"):
    config = Config(
        path="test.conf",
        bindings=(),
        servers=(),
        upstreams={},
        maps={m.variable: m for m in maps},
        error_logs=(),
    )
    server = Server(names=("example.com", "www.example.com"), listens=(), locations=(), source=SRC)
    return RequestVars(
        config=config,
        server=server,
        location=location,
        conn=ConnInfo("192.0.2.1", 54321, "127.0.0.1", 8080, "http"),
        head=RequestHead(b"GET", b"/a%20b/?x=1", b"1.1", tuple(headers)),
        target=Target(path="/a%20b/", args=args, uri="/a b/", request_uri=f"/a%20b/?{args}"),
        host=host,
    )


# -- compile_template


def test_literal_template_is_one_part():
    t = tpl("upgrade")
    assert t.parts == ("upgrade",)
    assert t.is_literal
    assert t.text == "upgrade"


def test_empty_template():
    assert tpl("").parts == ("",)


def test_variables_and_literals_alternate():
    t = tpl("a $host b ${remote_addr}c$uri")
    assert t.parts == ("a ", VarRef("host"), " b ", VarRef("remote_addr"), "c", VarRef("uri"))
    assert not t.is_literal


def test_adjacent_variables():
    assert tpl("$host$uri").parts == (VarRef("host"), VarRef("uri"))


def test_name_ends_at_non_name_character():
    assert tpl("$host-x").parts == (VarRef("host"), "-x")
    assert tpl("$host.example").parts == (VarRef("host"), ".example")


def test_names_are_case_insensitive():
    assert tpl("$HTTP_Upgrade").parts == (VarRef("http_upgrade"),)


@pytest.mark.parametrize("name", sorted(BUILTIN_VARIABLES) + ["http_upgrade", "http_x_forwarded_for", "http_"])
def test_known_variables(name):
    assert tpl(f"${name}").parts == (VarRef(name),)


def test_map_variables_are_known():
    assert tpl("$connection_upgrade", {"connection_upgrade"}).parts == (VarRef("connection_upgrade"),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("$nosuch", 'unknown "nosuch" variable'),
        ("x ${status} y", 'unknown "status" variable'),
        ("$connection_upgrade", 'unknown "connection_upgrade" variable'),
        ("${host", 'the closing bracket in "host" variable is missing'),
        ("cost $", 'invalid variable name in "cost $"'),
        ("$-x", 'invalid variable name in "$-x"'),
        ("${}", 'invalid variable name in "${}"'),
    ],
)
def test_template_errors_name_the_line(text, message):
    with pytest.raises(ConfigError) as info:
        tpl(text)
    assert str(info.value) == f"test.conf:7: {message}"


# -- render and RequestVars


def test_render_literal_returns_text():
    assert render(tpl("close"), make_vars()) == "close"


def test_render_single_variable_and_mixed():
    rv = make_vars()
    assert render(tpl("$remote_addr"), rv) == "192.0.2.1"
    assert render(tpl("for=${remote_addr}:$remote_port"), rv) == "for=192.0.2.1:54321"


@pytest.mark.parametrize(
    "name, value",
    [
        ("host", "example.com"),
        ("remote_addr", "192.0.2.1"),
        ("remote_port", "54321"),
        ("server_addr", "127.0.0.1"),
        ("server_port", "8080"),
        ("server_name", "example.com"),
        ("scheme", "http"),
        ("request_uri", "/a%20b/?x=1"),
        ("uri", "/a b/"),
        ("args", "x=1"),
        ("proxy_add_x_forwarded_for", "192.0.2.1"),
        ("proxy_host", ""),
    ],
)
def test_builtin_values(name, value):
    assert make_vars().get(name) == value


def test_proxy_host_comes_from_the_location():
    assert make_vars(location=make_location("backend:8080")).get("proxy_host") == "backend:8080"


def test_host_is_as_given():
    assert make_vars(host="other.example").get("host") == "other.example"


def test_http_header_lookup():
    rv = make_vars([(b"Upgrade", b"websocket"), (b"X-Custom-Thing", b"v"), (b"x_under", b"u")])
    assert rv.get("http_upgrade") == "websocket"
    assert rv.get("http_x_custom_thing") == "v"
    assert rv.get("http_x_under") == "u"
    assert rv.get("http_missing") == ""


def test_repeated_headers_are_joined_with_comma():
    rv = make_vars([(b"Accept", b"a"), (b"Host", b"h"), (b"accept", b"b")])
    assert rv.get("http_accept") == "a, b"


def test_cookies_are_joined_with_semicolon():
    rv = make_vars([(b"Cookie", b"a=1"), (b"Cookie", b"b=2")])
    assert rv.get("http_cookie") == "a=1; b=2"


def test_header_bytes_survive_as_latin1():
    assert make_vars([(b"X-Bin", b"caf\xe9")]).get("http_x_bin") == "caf\xe9"


@pytest.mark.parametrize(
    "args, name, value",
    [
        ("k=v", "k", "v"),
        ("a=1&K=%41b&k=2", "k", "%41b"),  # the first, name case-insensitive, value as sent
        ("kk=1&xk=2&k", "k", ""),  # a longer name, a name inside another, no "="
        ("k=&k=2", "k", ""),
        ("a=b=c", "a", "b=c"),
        ("", "k", ""),
    ],
)
def test_arg_variable(args, name, value):
    assert tpl(f"$arg_{name}").parts == (VarRef(f"arg_{name}"),)
    assert make_vars(args=args).get(f"arg_{name}") == value


def test_proxy_add_x_forwarded_for_appends_remote_addr():
    rv = make_vars([(b"X-Forwarded-For", b"10.0.0.1"), (b"X-Forwarded-For", b"10.0.0.2")])
    assert rv.get("proxy_add_x_forwarded_for") == "10.0.0.1, 10.0.0.2, 192.0.2.1"


# -- maps

CONNECTION_UPGRADE = mapdef("connection_upgrade", "$http_upgrade", {"": "close"}, "upgrade")


@pytest.mark.parametrize(
    "headers, value",
    [([(b"Upgrade", b"websocket")], "upgrade"), ([], "close"), ([(b"Upgrade", b"")], "close")],
)
def test_connection_upgrade_map(headers, value):
    assert make_vars(headers, [CONNECTION_UPGRADE]).get("connection_upgrade") == value


def test_exact_keys_match_case_insensitively():
    m = mapdef("kind", "$http_upgrade", {"websocket": "ws", "h2c": "h2"})
    assert make_vars([(b"Upgrade", b"WebSocket")], [m]).get("kind") == "ws"
    assert make_vars([(b"Upgrade", b"h2c")], [m]).get("kind") == "h2"


def test_map_without_default_is_empty():
    m = mapdef("kind", "$http_upgrade", {"websocket": "ws"})
    assert make_vars([(b"Upgrade", b"other")], [m]).get("kind") == ""
    assert make_vars([], [m]).get("kind") == ""


def test_map_source_may_combine_text_and_variables():
    m = mapdef("both", "$scheme:$http_x", {"http:1": "yes"}, "no")
    assert make_vars([(b"X", b"1")], [m]).get("both") == "yes"
    assert make_vars([(b"X", b"2")], [m]).get("both") == "no"


def test_map_values_may_use_variables_and_other_maps():
    inner = mapdef("inner", "$http_upgrade", {"websocket": "ws"}, "plain")
    outer = mapdef("outer", "$http_x", {"1": "kind=$inner from $remote_addr"}, "$server_name",
                   maps={"inner"})
    rv = make_vars([(b"Upgrade", b"websocket"), (b"X", b"1")], [inner, outer])
    assert rv.get("outer") == "kind=ws from 192.0.2.1"
    assert make_vars([], [inner, outer]).get("outer") == "example.com"


def test_map_result_is_cached_for_the_request():
    rv = make_vars([(b"Upgrade", b"websocket")], [CONNECTION_UPGRADE])
    assert rv.get("connection_upgrade") == "upgrade"
    rv.head = RequestHead(b"GET", b"/", b"1.1", ())
    assert rv.get("connection_upgrade") == "upgrade"
    assert rv.get("http_upgrade") == ""


def test_evaluate_map_does_not_cache():
    rv = make_vars([(b"Upgrade", b"websocket")], [CONNECTION_UPGRADE])
    assert evaluate_map(CONNECTION_UPGRADE, rv) == "upgrade"
    rv.head = RequestHead(b"GET", b"/", b"1.1", ())
    assert evaluate_map(CONNECTION_UPGRADE, rv) == "close"


def test_request_vars_has_no_instance_dict():
    assert not hasattr(make_vars(), "__dict__")


# -- properties

literal_text = st.text(st.characters(blacklist_characters="$\x00"), max_size=12)
variable_values = {
    "remote_addr": "192.0.2.1",
    "server_port": "8080",
    "uri": "/a b/",
    "args": "x=1",
    "http_upgrade": "websocket",
}


@given(literal_text)
def test_text_without_dollar_is_literal(text):
    t = tpl(text)
    assert t.is_literal
    assert render(t, make_vars()) == text


@given(st.lists(st.one_of(literal_text, st.sampled_from(sorted(variable_values))), max_size=8))
def test_render_concatenates_parts(chunks):
    # Variables are written braced so a following literal cannot extend the name.
    text = "".join(c if isinstance(c, str) and c not in variable_values else "${" + c + "}" for c in chunks)
    expected = "".join(variable_values.get(c, c) for c in chunks)
    rv = make_vars([(b"Upgrade", b"websocket")])
    assert render(tpl(text), rv) == expected


@given(st.text(max_size=20))
def test_compile_template_either_compiles_or_raises_config_error(text):
    try:
        t = tpl(text)
    except ConfigError as exc:
        assert exc.source == SRC
    else:
        assert isinstance(t, Template)
        assert all(isinstance(p, (str, VarRef)) for p in t.parts)
