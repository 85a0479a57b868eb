"""Which page replaces an error and what the request becomes on its way there (core.errorpages), sans-IO."""

from __future__ import annotations


import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Forward, Phases, Refuse, Respond, prepare
from wstunnel.core.errorpages import PageRequest, Redo, answered_status, error_answer, intercepts, replaceable
from wstunnel.core.headers import header_plan
from wstunnel.core.routing import Router
from wstunnel.wire.errors import error_page
from wstunnel.wire.request import ConnInfo, RequestHead
from wstunnel.wire.response import ResponseHead

CONF = """
http {
    server {
        listen 127.0.0.1:8080;
        error_page 404 /pages/404;
        location /pages/ { return 200 "page $uri $args"; }
        location /proxied/ { proxy_pass http://127.0.0.1:9001; }
        location /api {
            proxy_pass http://127.0.0.1:9002;
            proxy_intercept_errors on;
            error_page 502 =200 /pages/502?from=$uri;
            error_page 503 = @backup;
            error_page 500 /proxied/sorry;
            error_page 504 =307 https://status.test/$uri;
            error_page 507 https://status.test/;
            error_page 508 @missing;
        }
        location @backup { proxy_pass http://127.0.0.1:9003; }
        location /bare { return 403; error_page 403 /bare-page; }
        location /bare-page { return 404; }
        location /text { return 403 "no"; }
        location /bad-page { return 403; error_page 403 /bad%zz; }
        location /loop { return 404; error_page 404 /loop; recursive_error_pages on; }
        location /named-loop { return 404; error_page 404 @named-loop; recursive_error_pages on; }
        location @named-loop { return 404; error_page 404 @named-loop; recursive_error_pages on; }
    }
}
"""
CONN = ConnInfo(remote_addr="127.0.0.1", remote_port=40000, server_addr="127.0.0.1", server_port=8080)
BODY = ((b"Host", b"a.test"), (b"Content-Length", b"5"), (b"Expect", b"100-continue"), (b"X-Kept", b"1"))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("errorpages") / "proxy.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def redo(config: Config) -> Redo:
    return Redo(config, config.bindings[0], Phases(Router(config), set(), lambda location: header_plan(location, config)))


def decide(config: Config, target: bytes, method: bytes = b"GET", headers=((b"Host", b"a.test"),)) -> Decision:
    r = redo(config)
    return prepare(
        config=config, router=r.phases.router, binding=r.binding, conn=CONN, tls=None,
        head=RequestHead(method, target, b"1.1", headers), pooled=r.phases.pooled, plans=r.phases.plans,
    )


def after(config: Config, status: int, target: bytes, method: bytes = b"GET", headers=BODY) -> Decision | None:
    """The error ``status`` happening to a request for ``target`` in the location it reaches."""
    decision = decide(config, target, method, headers)
    assert decision.vars is not None
    return error_answer(status, decision.vars, redo(config))


def test_a_uri_page_is_located_again_as_a_get_without_the_body_and_keeps_the_code(config: Config) -> None:
    refused = decide(config, b"/nowhere?a=1")
    assert isinstance(refused, Refuse) and refused.error.status == 404
    page = error_answer(404, refused.vars, redo(config))
    assert isinstance(page, Respond)
    assert (page.status, page.body) == (404, b"page /pages/404 ")
    forwarded = after(config, 500, b"/api/x", method=b"POST")
    assert isinstance(forwarded, Forward) and forwarded.location.path == "/proxied/"
    assert forwarded.request.method == b"GET" and forwarded.request.target == b"/proxied/sorry"
    assert not forwarded.has_body
    sent = dict(forwarded.request.headers)
    assert b"Content-Length" not in sent and b"Expect" not in sent and sent[b"X-Kept"] == b"1"
    head = forwarded.vars.head
    assert isinstance(head, PageRequest) and (head.answer, head.final) == (500, True)
    assert forwarded.vars.redirects == 1


def test_head_stays_head_and_equals_sign_codes_replace_the_status(config: Config) -> None:
    page = after(config, 502, b"/api/x?q=1", method=b"HEAD")
    assert isinstance(page, Respond) and page.status == 200
    assert page.body == b"page /pages/502 from=/api/x"
    assert page.vars.head.method == b"HEAD"


def test_a_named_page_keeps_the_method_and_the_target_and_the_page_answers_with_its_own_code(config: Config) -> None:
    page = after(config, 503, b"/api/x?q=1", method=b"PUT")
    assert isinstance(page, Forward) and page.location.path == "@backup"
    assert (page.request.method, page.request.target) == (b"PUT", b"/api/x?q=1")
    assert page.vars.head.answer == 0
    missing = after(config, 508, b"/api/x")
    assert isinstance(missing, Refuse) and missing.error.status == 500


def test_a_url_page_redirects_with_302_or_the_redirect_code_given(config: Config) -> None:
    moved = after(config, 504, b"/api/x")
    assert isinstance(moved, Respond) and moved.status == 307
    assert dict(moved.headers)[b"Location"] == b"https://status.test//api/x"
    assert moved.body == error_page(307)
    found = after(config, 507, b"/api/x")
    assert isinstance(found, Respond) and found.status == 302
    # A redirect is an answer pages replace, but not the one a page made.
    assert replaceable(found) and error_answer(302, found.vars, redo(config)) is None


def test_no_page_for_the_code_means_the_standard_answer(config: Config) -> None:
    assert after(config, 501, b"/api/x") is None
    assert after(config, 403, b"/text") is None


def test_a_bare_return_is_an_error_and_one_with_text_is_an_answer(config: Config) -> None:
    bare, text = decide(config, b"/bare"), decide(config, b"/text")
    assert replaceable(bare) and not replaceable(text)
    page = error_answer(403, bare.vars, redo(config))
    assert isinstance(page, Respond) and page.status == 404 and replaceable(page)
    # recursive_error_pages off where the page was chosen: the page's own 404 gets no page.
    assert error_answer(404, page.vars, redo(config)) is None


def looped(config: Config, target: bytes, times: int) -> Decision:
    """The 404 of ``target`` sent to its page ``times`` times, each a 404 again."""
    decision = decide(config, target)
    for _ in range(times):
        decision = error_answer(404, decision.vars, redo(config))
        assert isinstance(decision, Respond) and replaceable(decision)
    return decision


def test_ten_internal_redirects_then_a_500_no_page_replaces(config: Config) -> None:
    stuck = error_answer(404, looped(config, b"/loop", 10).vars, redo(config))
    assert isinstance(stuck, Refuse) and stuck.error.status == 500
    assert "internal redirection cycle" in stuck.error.detail
    assert error_answer(500, stuck.vars, redo(config)) is None


def test_a_named_location_may_be_entered_ten_times_then_a_500_no_page_replaces(config: Config) -> None:
    stuck = error_answer(404, looped(config, b"/named-loop", 10).vars, redo(config))
    assert isinstance(stuck, Refuse) and stuck.error.status == 500
    assert error_answer(500, stuck.vars, redo(config)) is None


def test_a_page_uri_refused_before_routing_is_an_error_of_the_page(config: Config) -> None:
    refused = after(config, 403, b"/bad-page")
    assert isinstance(refused, Refuse) and refused.error.status == 400
    assert isinstance(refused.vars.head, PageRequest)
    assert error_answer(400, refused.vars, redo(config)) is None


def test_intercepted_codes_are_those_with_a_page_where_intercepting_is_on(config: Config) -> None:
    api = decide(config, b"/api/x").vars
    assert intercepts(api, 502) and intercepts(api, 503)
    assert not intercepts(api, 200) and not intercepts(api, 404)
    assert not intercepts(decide(config, b"/proxied/x").vars, 404)
    assert not intercepts(None, 502)


def test_an_upstream_answer_to_a_page_takes_the_pages_code_but_a_switch_stays_a_switch(config: Config) -> None:
    upstream = ResponseHead(200, b"OK", b"1.1", ((b"X", b"y"),))
    page = after(config, 500, b"/api/x")
    assert answered_status(page.vars, upstream) == ResponseHead(500, b"", b"1.1", ((b"X", b"y"),))
    switch = ResponseHead(101, b"Switching Protocols", b"1.1", ())
    assert answered_status(page.vars, switch) is switch
    own = after(config, 503, b"/api/x")
    assert answered_status(own.vars, upstream) is upstream
    assert answered_status(decide(config, b"/api/x").vars, upstream) is upstream
