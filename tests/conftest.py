"""Fixtures shared by the test modules."""

from __future__ import annotations

import base64
import hashlib
import socket
import sys
import sysconfig
from importlib.metadata import distributions
from pathlib import Path

import pytest
import pytest_twisted
from hypothesis import settings

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Test modules in any folder below this one import the shared helpers
# (support, nginx_support, tls_support) by their bare names.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# Property tests are deterministic and write no example database into the clone.
settings.register_profile("wstunnel", database=None, derandomize=True, deadline=None)
settings.load_profile("wstunnel")

_PACKAGED_SUFFIXES = (".py", ".html")


def _digest(path: Path) -> str:
    """A file's hash in the form a wheel's RECORD uses."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _install_differences() -> list[str]:
    """Packaged files whose installed copy is missing, extra or different."""
    purelib = sysconfig.get_path("purelib")
    dist = next((d for d in distributions(path=[purelib]) if d.metadata["Name"] == "wstunnel"), None)
    if dist is None:
        return ["wstunnel is not installed"]
    installed = {
        str(f): f.hash.value
        for f in dist.files or ()
        if f.hash and str(f).endswith(_PACKAGED_SUFFIXES)
        and (str(f).startswith("wstunnel/") or str(f) == "twisted/plugins/wstunnel_plugin.py")
    }
    sources = [*(ROOT / "wstunnel").rglob("*"), ROOT / "twisted/plugins/wstunnel_plugin.py"]
    checkout = {
        p.relative_to(ROOT).as_posix(): _digest(p)
        for p in sources
        if p.is_file() and p.suffix in _PACKAGED_SUFFIXES
    }
    return sorted(p for p in checkout.keys() | installed.keys() if checkout.get(p) != installed.get(p))


@pytest.fixture(scope="session")
def twistd() -> str:
    """
    This environment's ``twistd``.  Subprocess tests run the installed copy
    of wstunnel, as users do; a missing or stale install would test other
    code than the checkout, so it fails here with the remedy.
    """
    differences = _install_differences()
    if differences:
        pytest.fail(
            "installed wstunnel differs from the checkout "
            f"({', '.join(differences[:5])}); run: .venv/bin/python -m pip install --no-deps ."
        )
    return str(Path(sysconfig.get_path("scripts")) / "twistd")


@pytest.fixture
def free_port() -> int:
    """A free loopback port for configs that cannot say port 0 (support.unused_ports says why not bind(0))."""
    from support import unused_ports

    return unused_ports(1)[0]


@pytest.fixture
def proxy_services(tmp_path):
    """Start in-process proxies from config text: ``start(conf) -> (service, port)``; stopped after the test."""
    from support import start_proxy

    started = []

    def start(conf: str):
        service, port = start_proxy(tmp_path, conf)
        started.append(service)
        return service, port

    yield start
    for service in started:
        service.stopService()


@pytest.fixture
def proxies(proxy_services):
    """Like ``proxy_services``, giving only the port."""
    return lambda conf: proxy_services(conf)[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A test certificate authority (tests/tls_support.py); one per module, so leaf file names never clash."""
    from tls_support import Authority

    return Authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def refused_port():
    """A port bound but never listening: connecting is refused, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]



@pytest_twisted.async_yield_fixture
async def twins(tmp_path):
    """One config under wstunnel and under a real nginx (tests/nginx_support.py)."""
    from nginx_support import Twins

    pair = Twins(tmp_path)
    yield pair
    await pair.stop()
