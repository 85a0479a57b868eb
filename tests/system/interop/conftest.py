"""
Session fixtures of the interop suite (every server, one wstunnel in front,
one headless Chromium) and the matrix it prints: client x server per
transport, with how many of the cell's scenarios passed.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import defaultdict
from typing import Any, Iterator

import pytest
import pytest_twisted
from twisted.internet import defer

from cdp import Browser, launch, trust_flag
from scripted import start_autobahn, start_deflate, start_websockets
from stack import PROXY_CONF, SOCKETIO_BACKENDS, Stack, free_port, start_node_server, start_socketio_server
from wsclients import NODE_ENV

CELL = "interop-cell"
STARTUP = 30.0
_results: dict[tuple[str, str, str], dict[str, bool]] = defaultdict(dict)


def block(awaitable: Any) -> Any:
    """Run an asyncio awaitable to completion from a (synchronous) fixture."""
    future = asyncio.ensure_future(asyncio.wait_for(awaitable, STARTUP))
    return pytest_twisted.blockon(defer.Deferred.fromFuture(future))


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, tuple[str, str]]:
    """The run's test CA (its PEM path) and the proxy's certificate for 127.0.0.1 (chain and key paths)."""
    from tls_support import Authority  # imports the reactor: only once pytest-twisted installed it

    authority = Authority(tmp_path_factory.mktemp("interop-pki"))
    return authority.path, authority.issue("proxy", ["127.0.0.1"])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[str, tuple[str, str]]) -> Iterator[Stack]:
    from support import start_proxy  # imports the reactor: only once pytest-twisted installed it

    websockets_server = block(start_websockets())
    deflate_server = block(start_deflate())
    autobahn_port = start_autobahn()
    node, node_port = start_node_server(NODE_ENV)
    socketio = {name: start_socketio_server(name) for name in SOCKETIO_BACKENDS}
    ports = {
        "websockets": websockets_server.sockets[0].getsockname()[1],
        "deflate": deflate_server.sockets[0].getsockname()[1],
        "autobahn": autobahn_port.getHost().port,
        "node-ws": node_port,
        **{name: port for name, (_, port) in socketio.items()},
    }
    ca_path, (chain, key) = certificate
    tls_port = free_port()
    conf = PROXY_CONF.format(**ports, tls=tls_port, certificate=chain, key=key)
    proxy, _ = start_proxy(tmp_path_factory.mktemp("interop"), conf)
    (proxy_port,) = {p.getHost().port for p in proxy.ports} - {tls_port}
    try:
        yield Stack(ports, proxy_port, tls_port, ca_path)
    finally:
        pytest_twisted.blockon(defer.maybeDeferred(proxy.stopService))
        for server in (websockets_server, deflate_server):
            server.close()
            block(server.wait_closed())
        pytest_twisted.blockon(defer.maybeDeferred(autobahn_port.stopListening))
        for process in (node, *(process for process, _ in socketio.values())):
            _stop(process)


@pytest.fixture(scope="session")
def browser(certificate: tuple[str, tuple[str, str]]) -> Iterator[Browser]:
    _, (chain, _) = certificate
    chromium = block(launch(trust_flag(chain)))
    try:
        yield chromium
    finally:
        block(chromium.close())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each interop test with its matrix cell (from its parameters)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if {"client", "server", "transport", "scenario"} <= params.keys():
            cell = (params["client"], params["server"], params["transport"].name, params["scenario"])
            item.user_properties.append((CELL, cell))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cell = dict(report.user_properties).get(CELL)
    if cell is None or not (report.when == "call" or report.failed):
        return
    client, server, transport, scenario = cell
    outcomes = _results[(client, server, transport)]
    outcomes[scenario] = outcomes.get(scenario, True) and report.passed


def _cell_text(outcomes: dict[str, bool]) -> str:
    passed = sum(outcomes.values())
    return f"{'ok' if passed == len(outcomes) else 'FAIL'} {passed}/{len(outcomes)}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _results:
        return
    write = terminalreporter.write_line
    terminalreporter.section("interop matrix: client x server, per transport (scenarios passed/run)")
    clients = list(dict.fromkeys(c for c, _, _ in _results))
    servers = list(dict.fromkeys(s for _, s, _ in _results))
    width = max(len(name) for name in clients + servers + ["client \\ server"]) + 2
    for transport in dict.fromkeys(t for _, _, t in _results):
        write(f"transport: {transport}")
        write("client \\ server".ljust(width) + "".join(s.ljust(width) for s in servers))
        for client in clients:
            row = [_cell_text(_results[(client, s, transport)]) if (client, s, transport) in _results else "-"
                   for s in servers]
            write(client.ljust(width) + "".join(text.ljust(width) for text in row))
    failed = [(cell, name) for cell, outcomes in _results.items() for name, ok in outcomes.items() if not ok]
    for (client, server, transport), name in failed:
        write(f"FAILED {client} -> {server} over {transport}: {name}")
