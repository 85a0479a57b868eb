"""
error_log at server and location level: a request's messages go to its
location's list (its own, else the nearest enclosing level's), messages
without a request to the main level's, each file at its own level.

The routing is checked twice: on the observer alone (events with and
without ``log_targets``) and through the real client protocol, exchange
and tunnel driven deterministically, with the service attached to the
global publisher those classes log to.
"""

from __future__ import annotations

from pathlib import Path

from twisted.logger import LogPublisher, Logger, globalLogPublisher

from support import MemoryProxy, load_text, switch_answer, upgrade_request
from wstunnel.obs.logs import ErrorLogService, ScopedLogger, every_error_log
from wstunnel.config.model import ErrorLog, Source

SRC = Source("t.conf", 1)


def messages(path: Path) -> list[str]:
    return [line.split(": ", 1)[1] for line in path.read_text().splitlines()] if path.exists() else []


def started(main: Path, main_level: str, targets: tuple[ErrorLog, ...]) -> tuple[ErrorLogService, Logger]:
    """A running service with a main list and one request list, and a Logger publishing to it."""
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog(str(main), main_level, SRC)], publisher=publisher, scoped=targets)
    service.startService()
    return service, Logger(observer=publisher)


def test_events_go_to_their_targets_at_their_levels_and_the_rest_to_main(tmp_path) -> None:
    main, scoped = tmp_path / "main.log", tmp_path / "scoped.log"
    targets = (ErrorLog(str(scoped), "info", SRC),)
    service, log = started(main, "warn", targets)
    log.info("request info", log_targets=targets)
    log.debug("request debug", log_targets=targets)
    log.info("startup info")
    log.error("startup error")
    service.stopService()
    assert messages(scoped) == ["request info"]
    assert messages(main) == ["startup error"]


def test_targets_naming_a_file_no_longer_open_fall_back_to_main(tmp_path) -> None:
    main, old = tmp_path / "main.log", tmp_path / "old.log"
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog(str(main), "error", SRC)], publisher=publisher,
                              scoped=[ErrorLog(str(old), "error", SRC)])
    service.startService()
    service.reconfigure([ErrorLog(str(main), "error", SRC)])  # a reload dropped old.log
    Logger(observer=publisher).error("from a tunnel of the old config",
                                     log_targets=(ErrorLog(str(old), "error", SRC),))
    service.stopService()
    assert messages(main) == ["from a tunnel of the old config"]
    assert messages(old) == []


def test_a_scoped_logger_adds_the_error_logs_of_the_object_that_logs() -> None:
    targets = (ErrorLog("stderr", "info", SRC),)
    seen: list[dict] = []

    class Thing:
        log = ScopedLogger(observer=seen.append)

        def __init__(self) -> None:
            self.error_logs = targets

    Thing().log.info("x")
    Thing.log.info("from the class")  # no instance: no targets
    assert seen[0]["log_targets"] is targets
    assert "log_targets" not in seen[1]


CONF = """
error_log {main} warn;
http {{
    error_log {http} error;
    upstream gone {{ server 127.0.0.1:9001; }}
    server {{
        listen 127.0.0.1:8080;
        error_log {server} info;
        location /inherits {{ proxy_pass http://gone; }}
        location /own {{ proxy_pass http://gone; error_log {own} info; proxy_read_timeout 5s; }}
    }}
}}
"""


class Proxy(MemoryProxy):
    """The config with an error log at each level, and its ErrorLogService on the global publisher."""

    def __init__(self, tmp_path: Path) -> None:
        self.files = {name: tmp_path / f"{name}.log" for name in ("main", "http", "server", "own")}
        super().__init__(load_text(tmp_path / "t.conf", CONF.format(**self.files)))
        self.service = ErrorLogService(self.config.error_logs, publisher=globalLogPublisher,
                                       scoped=every_error_log(self.config))

    def log(self, name: str) -> list[str]:
        return messages(self.files[name])


def test_requests_log_to_their_location_and_the_rest_to_main(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.service.startService()
    try:
        p.connect_client(b"GET /inherits HTTP/1.1\r\nHost: a\r\n\r\n")
        p.refuse()
        p.connect_client(b"GET /own HTTP/1.1\r\nHost: a\r\n\r\n")
        p.refuse()
        p.connect_client(b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")  # refused at info, no location
        client, _ = p.connect_client(upgrade_request("/own"))
        upstream, ut = p.upstream()
        upstream.dataReceived(switch_answer(ut.value()))
        p.reactor.advance(5)  # the tunnel's idle timeout, logged at info
        Logger().info("no request here, below main's level")
        Logger().warn("no request here")
    finally:
        p.service.stopService()
    assert [m for m in p.log("server") if "connect() to 127.0.0.1:9001 failed" in m], "inherited from the server"
    assert any("no location for '/nowhere'" in m for m in p.log("server")), "no location: the server's list"
    assert [m for m in p.log("own") if "connect()" in m] and [m for m in p.log("own") if "tunnel idle" in m]
    assert not [m for m in p.log("server") if "tunnel idle" in m or "/own" in m]
    assert p.log("http") == [], "the server's list replaces http's"
    assert p.log("main") == ["no request here"]


def test_reopen_covers_the_files_of_every_level(tmp_path) -> None:
    main, scoped = tmp_path / "main.log", tmp_path / "site.log"
    targets = (ErrorLog(str(scoped), "error", SRC),)
    service, log = started(main, "error", targets)
    log.error("before", log_targets=targets)
    scoped.rename(tmp_path / "site.log.1")
    service.reopen()
    log.error("after", log_targets=targets)
    service.stopService()
    assert messages(tmp_path / "site.log.1") == ["before"]
    assert messages(scoped) == ["after"]
