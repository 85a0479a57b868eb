from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from twisted.logger import LogLevel, LogPublisher, Logger, capturedLogs

from wstunnel.obs.logs import (
    NGINX_LEVELS,
    AccessLogs,
    ErrorLogService,
    error_line,
)
from wstunnel.core.logformat import escape, format_time_local
from wstunnel.config.model import AccessLog, ErrorLog, Source

SRC = Source("test.conf", 1)
# 2026-11-21 15:07:56 UTC
WHEN = 1795273676.25


@pytest.fixture
def tz(monkeypatch):
    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    set_tz("UTC")
    yield set_tz
    monkeypatch.undo()
    time.tzset()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def message(line: str) -> str:
    return line.split(": ", 1)[1]


# error_log


def test_nginx_levels_map_onto_twisted_levels() -> None:
    assert dict(NGINX_LEVELS) == {
        "debug": LogLevel.debug,
        "info": LogLevel.info,
        "notice": LogLevel.info,
        "warn": LogLevel.warn,
        "error": LogLevel.error,
        "crit": LogLevel.critical,
        "alert": LogLevel.critical,
        "emerg": LogLevel.critical,
    }


def test_error_line_has_nginx_shape(tz) -> None:
    event = {
        "log_time": WHEN,
        "log_level": LogLevel.warn,
        "log_format": "upstream {name} is down",
        "name": "backend",
    }
    assert error_line(event) == f"2026/11/21 15:07:56 [warn] {os.getpid()}#0: upstream backend is down\n"


def test_error_line_uses_local_time(tz) -> None:
    tz("XYZ-5:30")
    event = {"log_time": WHEN, "log_level": LogLevel.info, "log_format": "x"}
    assert error_line(event).startswith("2026/11/21 20:37:56 [info] ")


@pytest.mark.parametrize(
    "level, name",
    [
        (LogLevel.debug, "debug"),
        (LogLevel.info, "info"),
        (LogLevel.warn, "warn"),
        (LogLevel.error, "error"),
        (LogLevel.critical, "crit"),
    ],
)
def test_error_line_level_names(level: LogLevel, name: str) -> None:
    line = error_line({"log_time": WHEN, "log_level": level, "log_format": "m"})
    assert f" [{name}] " in line


def test_error_line_skips_events_without_text() -> None:
    assert error_line({"log_time": WHEN, "log_level": LogLevel.info}) is None


def test_error_line_includes_traceback() -> None:
    publisher = LogPublisher()
    events: list[dict] = []
    publisher.addObserver(events.append)
    try:
        1 / 0
    except ZeroDivisionError:
        Logger(observer=publisher).failure("while {doing}", doing="dividing")
    line = error_line(events[0])
    assert " [crit] " in line
    assert "while dividing" in line
    assert "ZeroDivisionError" in line


def emit_all_levels(log: Logger) -> None:
    log.debug("a debug")
    log.info("an info")
    log.warn("a warn")
    log.error("an error")
    log.critical("a critical")


def test_error_log_filters_at_its_level(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    log = Logger(observer=publisher)
    service = ErrorLogService([ErrorLog(str(path), "warn", SRC)], publisher=publisher)
    log.error("before start")
    service.startService()
    emit_all_levels(log)
    service.stopService()
    log.error("after stop")
    written = lines(path)
    assert [message(line) for line in written] == ["a warn", "an error", "a critical"]
    assert [re.search(r"\[(\w+)\]", line).group(1) for line in written] == ["warn", "error", "crit"]


def test_notice_level_includes_info(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog(str(path), "notice", SRC)], publisher=publisher)
    service.startService()
    emit_all_levels(Logger(observer=publisher))
    service.stopService()
    assert [message(line) for line in lines(path)] == ["an info", "a warn", "an error", "a critical"]


def test_one_file_named_twice_takes_the_lower_level_once(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    error_logs = [ErrorLog(str(path), "error", SRC), ErrorLog(str(path), "warn", SRC)]
    service = ErrorLogService(error_logs, publisher=publisher)
    service.startService()
    emit_all_levels(Logger(observer=publisher))
    service.stopService()
    assert [message(line) for line in lines(path)] == ["a warn", "an error", "a critical"]


def test_each_error_log_has_its_own_level(tmp_path: Path) -> None:
    debug, crit = tmp_path / "debug.log", tmp_path / "crit.log"
    publisher = LogPublisher()
    error_logs = [ErrorLog(str(debug), "debug", SRC), ErrorLog(str(crit), "emerg", SRC)]
    service = ErrorLogService(error_logs, publisher=publisher)
    service.startService()
    emit_all_levels(Logger(observer=publisher))
    service.stopService()
    assert len(lines(debug)) == 5
    assert [message(line) for line in lines(crit)] == ["a critical"]


def test_error_log_appends(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text("old line\n")
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog(str(path), "error", SRC)], publisher=publisher)
    service.startService()
    Logger(observer=publisher).error("new line")
    service.stopService()
    assert lines(path)[0] == "old line"
    assert message(lines(path)[1]) == "new line"


def test_error_log_to_stderr(capfd) -> None:
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog("stderr", "error", SRC)], publisher=publisher)
    service.startService()
    Logger(observer=publisher).error("on stderr")
    service.stopService()
    out, err = capfd.readouterr()
    assert out == ""
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: on stderr\n", err)


def test_notices_logged_once_when_started(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    notices = ["a.conf:3: \"sendfile\" is ignored", "a.conf:4: \"pid\" is ignored"]
    service = ErrorLogService([ErrorLog(str(path), "info", SRC)], notices, publisher=publisher)
    assert path.read_text() == ""
    service.startService()
    service.stopService()
    assert [message(line) for line in lines(path)] == notices


def test_notices_are_below_the_default_error_level(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    service = ErrorLogService([ErrorLog(str(path), "error", SRC)], ["a.conf:3: x"], publisher=publisher)
    service.startService()
    service.stopService()
    assert path.read_text() == ""


def test_unwritable_error_log_fails_when_built(tmp_path: Path) -> None:
    error_logs = [
        ErrorLog(str(tmp_path / "fine.log"), "error", SRC),
        ErrorLog(str(tmp_path / "missing-dir" / "error.log"), "error", SRC),
    ]
    with pytest.raises(OSError) as caught:
        ErrorLogService(error_logs, publisher=LogPublisher())
    assert caught.value.filename == str(tmp_path / "missing-dir" / "error.log")


def test_error_log_restarts_after_stop(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    publisher = LogPublisher()
    log = Logger(observer=publisher)
    service = ErrorLogService([ErrorLog(str(path), "error", SRC)], publisher=publisher)
    service.startService()
    log.error("first run")
    service.stopService()
    service.startService()
    log.error("second run")
    service.stopService()
    assert [message(line) for line in lines(path)] == ["first run", "second run"]


# access_log


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain text", "plain text"),
        ('"', "\\x22"),
        ("\\", "\\x5C"),
        ("\x00\x1f\x20", "\\x00\\x1F "),
        ("~\x7f", "~\\x7F"),
        ("caf\xe9", "caf\\xE9"),
        (b"caf\xc3\xa9", "caf\\xC3\\xA9"),
        ("\u20ac", "\\xE2\\x82\\xAC"),
        (None, "-"),
        ("", "-"),
    ],
)
def test_escape(value: str | bytes | None, expected: str) -> None:
    assert escape(value) == expected


def test_every_byte_escapes_as_nginx_does() -> None:
    for byte in range(256):
        expected = f"\\x{byte:02X}" if byte < 0x20 or byte >= 0x7F or byte in b'"\\' else chr(byte)
        assert escape(bytes([byte])) == expected


@pytest.mark.parametrize(
    "zone, expected",
    [
        ("UTC", "21/Nov/2026:15:07:56 +0000"),
        ("XYZ-5:30", "21/Nov/2026:20:37:56 +0530"),
        ("XYZ+3", "21/Nov/2026:12:07:56 -0300"),
        ("XYZ+16", "20/Nov/2026:23:07:56 -1600"),
    ],
)
def test_time_local(tz, zone: str, expected: str) -> None:
    tz(zone)
    assert format_time_local(WHEN) == expected


def access(path: Path | str) -> AccessLog:
    return AccessLog(str(path), "combined", SRC)


def test_access_logs_append_one_line_per_write(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("old\n")
    logs = AccessLogs()
    logs.write((access(path),), "one")
    logs.write((access(path),), "two")
    assert lines(path) == ["old", "one", "two"]
    logs.close()


def test_access_logs_write_each_target(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    logs = AccessLogs()
    logs.write((access(a), access(b)), "line")
    assert lines(a) == ["line"]
    assert lines(b) == ["line"]
    logs.close()


def test_access_logs_open_each_path_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logs = AccessLogs()
    logs.write((access(path),), "first")
    path.unlink()
    logs.write((access(path),), "second")
    assert not path.exists()
    logs.close()
    logs.write((access(path),), "third")
    assert lines(path) == ["third"]
    logs.close()


def test_access_logs_special_streams(capfd) -> None:
    logs = AccessLogs()
    logs.write((access("stdout"),), "to stdout")
    logs.write((access("stderr"),), "to stderr")
    logs.close()
    logs.write((access("stdout"),), "still open")
    assert capfd.readouterr() == ("to stdout\nstill open\n", "to stderr\n")


def test_access_log_that_cannot_open_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "access.log"
    good = tmp_path / "good.log"
    logs = AccessLogs()
    with capturedLogs() as events:
        logs.write((access(path), access(good)), "one")
        logs.write((access(path), access(good)), "two")
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 1
    assert errors[0]["path"] == str(path)
    assert lines(good) == ["one", "two"]
    logs.close()


def test_access_log_write_failure_is_reported_and_close_still_works() -> None:
    logs = AccessLogs()
    with capturedLogs() as events:
        logs.write((access("/dev/full"),), "no space")
    assert [e["log_format"] for e in events] == ["cannot write access log {path}: {error}"]
    assert events[0]["path"] == "/dev/full"
    logs.close()
