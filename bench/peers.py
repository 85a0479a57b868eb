"""
The benchmark's peers that do not come from this checkout's venv: mitmproxy
(the Python reverse proxy a user might pick instead of wstunnel) and
wstunnel at another git revision (the ``before`` of a before/after measured
in one sitting, doc/performance.md).  Each lives in its own virtualenv under
bench/build/, made on first use and reused after, so neither can change what
the ``wstunnel`` target runs.  A peer whose virtualenv cannot be made (no
network, an unknown revision) is skipped by bench/run.py with one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The newest mitmproxy that installs on Python 3.11 (11.1 and later need 3.12).
MITMPROXY_VERSION = "11.0.2"
SETUP_WAIT = 900.0  # seconds one step of making a virtualenv may take (pip over a slow network)
READY = "bench-ready"  # written in a peer's directory once it is made, holding what it was made of


def venv_plan(venv: Path, *requirements: str) -> list[list[str]]:
    """A fresh virtualenv at ``venv`` (of the interpreter running the bench) and pip installing into it."""
    python = str(venv / "bin" / "python")
    return [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
    ]


def mitmproxy_home(build: Path) -> Path:
    return build / "venv-mitmproxy"


def mitmproxy_plan(build: Path) -> list[list[str]]:
    return venv_plan(mitmproxy_home(build), f"mitmproxy=={MITMPROXY_VERSION}")


def mitmproxy_argv(build: Path, backend: int, port: int, sink: int, sink_port: int, confdir: Path) -> list[str]:
    """
    mitmdump in reverse mode, one listener per upstream: it routes by
    listener, not by path, so the tiny-chunks upstream (``location /sink``
    in the shared file) gets a port of its own.  ``-q`` sets flow_detail 0
    and termlog_verbosity error: no line per flow or per message.  Lazy:
    the upstream connection is opened for the first request, as nginx and
    wstunnel do, not when the client connects.  ``websocket=false``: after
    the 101 the connection is relayed as bytes (its TCP layer), as nginx and
    wstunnel relay a tunnel; its WebSocket layer would re-frame every
    message, and the bench's backend echoes each client frame byte for
    byte, masked, which a re-framed tunnel cannot give back.  confdir keeps
    its CA files in the run's directory instead of ~/.mitmproxy.
    """
    return [
        str(mitmproxy_home(build) / "bin" / "mitmdump"), "-q",
        "--mode", f"reverse:http://127.0.0.1:{backend}@127.0.0.1:{port}",
        "--mode", f"reverse:http://127.0.0.1:{sink}@127.0.0.1:{sink_port}",
        "--set", "connection_strategy=lazy",
        "--set", "websocket=false",
        "--set", f"confdir={confdir}",
    ]


def resolve(repo: Path, rev: str) -> str:
    """The full commit id of ``rev`` in ``repo``; ValueError when git does not know it."""
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True, text=True,
    )
    if done.returncode:
        raise ValueError(f"git knows no commit {rev!r} in {repo}")
    return done.stdout.strip()


def before_home(build: Path, commit: str) -> Path:
    """Named for the commit, so a branch that moved is built again, not taken from an old build."""
    return build / f"before-{commit[:12]}"


def before_plan(repo: Path, build: Path, commit: str) -> list[list[str]]:
    """
    The tree of ``commit`` exported with ``git archive`` (no worktree is
    registered in the repository, nothing of the checkout is touched), then
    installed with ``pip install`` into a virtualenv of its own.
    """
    home = before_home(build, commit)
    tar = home / "src.tar"
    return [
        ["git", "-C", str(repo), "archive", "--format=tar", "--prefix=src/", "-o", str(tar), commit],
        ["tar", "-xf", str(tar), "-C", str(home)],
        *venv_plan(home / "venv", str(home / "src")),
    ]


def before_bin(build: Path, commit: str) -> Path:
    """Where the ``before`` build's twistd is."""
    return before_home(build, commit) / "venv" / "bin"


def make(home: Path, plan: list[list[str]], made_of: str) -> str | None:
    """
    Run ``plan`` unless ``home`` is already made of ``made_of``.  Returns
    None when ready, else why not, in one line for the report.
    """
    ready = home / READY
    if ready.exists() and ready.read_text() == made_of:
        return None
    home.mkdir(parents=True, exist_ok=True)
    print(f"making {home} ({made_of}) ...", flush=True)
    for argv in plan:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=SETUP_WAIT)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{Path(argv[0]).name}: {e}"
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"{' '.join(argv[:4])} ... exited {done.returncode}: {lines[-1] if lines else ''}"
    ready.write_text(made_of)
    return None


class Peers:
    """The peers made for one run, and a line for each one wanted but skipped."""

    def __init__(self, mitmproxy: bool = False, before: str | None = None) -> None:
        self.mitmproxy = mitmproxy
        self.before = before  # the commit built, or None
        self.skipped: list[str] = []

    @classmethod
    def make(cls, only: set[str] | None, before: str | None, build: Path, repo: Path) -> Peers:
        """Make each peer ``only`` wants (all when None) in ``build``; ``before`` is a revision of ``repo``."""
        peers = cls()
        if only is None or "mitmproxy" in only:
            why = make(mitmproxy_home(build), mitmproxy_plan(build), f"mitmproxy=={MITMPROXY_VERSION}")
            peers.mitmproxy = peers._ready("mitmproxy", why)
        if before is not None and (only is None or "before" in only):
            peers.before = peers._make_before(before, build, repo)
        elif before is None and only is not None and "before" in only:
            peers._ready("before", "it needs --before REV")
        return peers

    def _make_before(self, rev: str, build: Path, repo: Path) -> str | None:
        try:
            commit = resolve(repo, rev)
        except ValueError as e:
            self._ready("before", str(e))
            return None
        why = make(before_home(build, commit), before_plan(repo, build, commit), commit)
        return commit if self._ready("before", why) else None

    def _ready(self, name: str, why: str | None) -> bool:
        if why:
            self.skipped.append(f"{name}: skipped, {why}")
            print(self.skipped[-1], flush=True)
        return why is None

    def versions(self) -> list[str]:
        """What the report's first line says of the peers."""
        parts = [f"mitmproxy {MITMPROXY_VERSION}"] if self.mitmproxy else []
        return parts + ([f"before = wstunnel at {self.before[:12]}"] if self.before else [])
