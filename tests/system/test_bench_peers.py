"""
The benchmark's peers (bench/peers.py) and its report (bench/summary.py):
the command lines and build plans bench/run.py would run are built right,
and the report labels and checks what it should.  Nothing is installed and
no network is needed: mitmproxy is never built here, and the ``before``
plan runs only its git steps.  No timings are asserted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

BENCH = ROOT / "bench"
sys.path[:0] = [str(BENCH)]

import peers  # noqa: E402
import run as bench  # noqa: E402
import summary  # noqa: E402


def test_mitmproxy_runs_in_reverse_mode_from_its_own_venv_on_loopback(tmp_path: Path) -> None:
    argv = peers.mitmproxy_argv(tmp_path, 7001, 7002, 7003, 7004, tmp_path / "conf")
    assert argv[0] == str(tmp_path / "venv-mitmproxy" / "bin" / "mitmdump")
    modes = [argv[i + 1] for i, word in enumerate(argv) if word == "--mode"]
    assert modes == ["reverse:http://127.0.0.1:7001@127.0.0.1:7002", "reverse:http://127.0.0.1:7003@127.0.0.1:7004"]
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
    assert options == ["connection_strategy=lazy", "websocket=false", f"confdir={tmp_path / 'conf'}"]
    assert "-q" in argv


def test_the_mitmproxy_venv_pins_one_version(tmp_path: Path) -> None:
    venv = tmp_path / "venv-mitmproxy"
    made, install = peers.mitmproxy_plan(tmp_path)
    assert made == [sys.executable, "-m", "venv", "--clear", str(venv)]
    assert install[:4] == [str(venv / "bin" / "python"), "-m", "pip", "install"]
    assert install[-1] == f"mitmproxy=={peers.MITMPROXY_VERSION}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", peers.MITMPROXY_VERSION)


def test_the_before_plan_exports_the_commit_and_installs_it_in_its_own_venv(tmp_path: Path) -> None:
    commit = peers.resolve(ROOT, "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    home = tmp_path / f"before-{commit[:12]}"
    assert peers.before_home(tmp_path, commit) == home
    plan = peers.before_plan(ROOT, tmp_path, commit)
    assert plan[2:] == [
        [sys.executable, "-m", "venv", "--clear", str(home / "venv")],
        [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(home / "src")],
    ]
    home.mkdir()
    for step in plan[:2]:
        subprocess.run(step, check=True, timeout=30, capture_output=True)
    assert (home / "src" / "pyproject.toml").is_file()
    assert (home / "src" / "wstunnel" / "__init__.py").is_file()
    assert peers.before_bin(tmp_path, commit) == home / "venv" / "bin"


def test_an_unknown_revision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no-such-rev"):
        peers.resolve(ROOT, "no-such-rev")


def test_make_runs_a_plan_once_and_says_why_it_failed(tmp_path: Path) -> None:
    count = tmp_path / "count"
    script = f"import pathlib; p = pathlib.Path({str(count)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')"
    step = [sys.executable, "-c", script]
    home = tmp_path / "home"
    assert peers.make(home, [step], "one") is None
    assert peers.make(home, [step], "one") is None
    assert count.read_text() == "x"
    assert peers.make(home, [step], "two") is None  # made of something else: made again
    assert count.read_text() == "xx"
    failing = [sys.executable, "-c", "import sys; sys.exit('no network')"]
    why = peers.make(tmp_path / "other", [failing], "one")
    assert why is not None and "exited 1" in why and "no network" in why
    assert not (tmp_path / "other" / peers.READY).exists()


def test_the_before_target_runs_the_same_file_as_wstunnel_from_its_own_build(tmp_path: Path) -> None:
    commit = "f" * 40
    found = bench.targets(tmp_path, 7001, 7003, {"wstunnel", "before", "mitmproxy"}, 32,
                          peers.Peers(mitmproxy=True, before=commit))
    by_name = {t.name: t for t in found}
    assert sorted(by_name) == ["before", "mitmproxy", "wstunnel"]
    now, before = by_name["wstunnel"], by_name["before"]
    assert before.argv[0] == str(peers.before_bin(bench.BUILD, commit) / "twistd")
    assert before.argv[1:] == now.argv[1:]
    assert before.port == now.port == by_name["mitmproxy"].port
    assert by_name["mitmproxy"].sink_port != now.port and now.sink_port == now.port
    assert f"127.0.0.1:{by_name['mitmproxy'].sink_port}" in " ".join(by_name["mitmproxy"].argv)


def test_peers_wanted_but_not_to_be_had_are_skipped_with_a_line(tmp_path: Path) -> None:
    assert peers.Peers.make({"before"}, None, tmp_path, ROOT).skipped == ["before: skipped, it needs --before REV"]
    made = peers.Peers.make({"before"}, "no-such-rev", tmp_path, ROOT)
    assert made.before is None and "no-such-rev" in made.skipped[0]
    assert peers.Peers.make({"wstunnel"}, "no-such-rev", tmp_path, ROOT).skipped == []
    assert not list(tmp_path.iterdir())  # nothing was built


def test_keepalive_takes_one_value_or_several() -> None:
    assert bench.keepalive_list("32") == [32]
    assert bench.keepalive_list("0,32") == [0, 32]
    for bad in ("x", "0,0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.keepalive_list(bad)


def test_get_figures_are_labelled_by_keepalive_only_when_several_are_run() -> None:
    assert summary.figures([32]) == summary.FIGURES
    rows = summary.figures([0, 32])
    gets = [(label, workload) for label, workload, _ in rows if workload.startswith("get")]
    assert gets[0] == ("GET req/s (keepalive 0)", "get keepalive 0")
    assert ("GET req/s (keepalive 32)", "get keepalive 32") in gets
    assert len(rows) == len(summary.FIGURES) + len(gets) // 2


def test_the_goal_table_checks_wstunnel_and_before_against_each_bound() -> None:
    def figures(cpu: float, rate: float) -> dict:
        return {"handshake": [{"proxy_cpu_us_per_op": cpu}], "get keepalive 0": [{"req/s": rate}]}

    results = {"wstunnel": figures(360, 4000), "before": figures(540, 3000), "twisted": figures(300, 0),
               "nginx": figures(100, 10000)}
    text = summary.goal_table(results, ["wstunnel", "before", "twisted", "nginx"], [0, 32])
    lines = text.splitlines()
    assert lines[0] == "| target | bound | before | wstunnel |"
    assert "| CPU per handshake | <= 1.3x twisted | 1.80 missed | 1.20 met |" in lines
    assert "| plain GET req/s, keepalive 0 | >= 0.35x nginx | 0.30 missed | 0.40 met |" in lines
    assert not [line for line in lines if "keepalive 32" in line or "bulk" in line]  # not run: no row
    results["wstunnel"]["bulk"] = [{"MB/s": 300}]
    results["nginx"]["bulk"] = [{"MB/s": 100}]
    text = summary.goal_table(results, ["wstunnel", "before", "twisted", "nginx"], [0, 32])
    assert "| bulk MB/s | >= 1.5x nginx | - | 3.00 met |" in text.splitlines()
    assert summary.goal_table(results, ["wstunnel", "mitmproxy"], [32]) == ""  # no reference ran


def test_the_table_leaves_out_figures_no_target_has() -> None:
    results = {"wstunnel": {"handshake": [{"per_s": 300.0}, {"per_s": 500.0}, {"per_s": 400.0}]},
               "nginx": {"handshake": [{"per_s": 1000.0}]}}
    lines = summary.table(results, ["wstunnel", "nginx"], summary.RATIOS).splitlines()
    assert lines[0] == "| figure | wstunnel | nginx | wstunnel/nginx |"
    assert lines[2:] == ["| handshakes/s | 400 | 1000 | 0.40 |"]
