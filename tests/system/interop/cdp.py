"""
Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol
with ``websockets``: just enough CDP to open a page, wait for its load and
evaluate a promise in it.  No driver binaries, nothing downloaded.

wss cells need Chromium to accept the proxy's certificate, issued by the
run's throwaway CA.  A browser trusts only its own root store, so the test
launches it with ``trust_flag``: ``--ignore-certificate-errors-spki-list``,
which accepts a certificate whose public key has the given SHA-256 pin.
That switch is for tests only; it must never reach a real browser profile.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["Browser", "Page", "launch", "trust_flag"]

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--remote-debugging-port=0",
)
STARTUP = 30.0  # a cold start on a loaded CI machine
LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class CdpError(Exception):
    pass


class Browser:
    """One Chromium process and its browser-level DevTools connection."""

    def __init__(self, process: subprocess.Popen, profile: str, ws: ClientConnection) -> None:
        self.process = process
        self.profile = profile
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.loads: dict[str, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                future = self.pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(CdpError(message["error"].get("message")))
                else:
                    future.set_result(message.get("result", {}))
            elif message.get("method") == "Page.loadEventFired":
                load = self.loads.get(message.get("sessionId"))
                if load and not load.done():
                    load.set_result(None)

    async def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        ident = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        return await future

    async def page(self, url: str) -> "Page":
        """A new tab that has loaded ``url``."""
        target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, target, session)
        self.loads[session] = asyncio.get_running_loop().create_future()
        await self.call("Page.enable", session=session)
        navigated = await self.call("Page.navigate", {"url": url}, session)
        if navigated.get("errorText"):
            raise CdpError(f"loading {url}: {navigated['errorText']}")
        await self.loads[session]
        return page

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise); a JS exception is raised here."""
        result = await self.browser.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def close(self) -> None:
        self.browser.loads.pop(self.session, None)
        await self.browser.call("Target.closeTarget", {"targetId": self.target})


def _devtools_url(process: subprocess.Popen) -> str:
    """Read Chromium's stderr until it names its DevTools socket."""
    for line in process.stderr:
        found = LISTENING.search(line)
        if found:
            return found.group(1).decode()
    raise CdpError(f"chromium exited ({process.wait()}) without a DevTools socket")


def trust_flag(certificate_path: str) -> str:
    """The test-only switch that makes Chromium accept the leaf certificate in ``certificate_path``."""
    certificate = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}"


async def launch(*extra_flags: str, executable: str = "chromium") -> Browser:
    profile = tempfile.mkdtemp(prefix="wstunnel-chromium-")
    process = subprocess.Popen([executable, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = await asyncio.wait_for(asyncio.to_thread(_devtools_url, process), STARTUP)
        # Drain the rest of stderr so a chatty browser never blocks on a full pipe.
        asyncio.get_running_loop().run_in_executor(None, process.stderr.read)
        ws = await connect(url, max_size=None, proxy=None)
    except BaseException:
        process.kill()
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)
        raise
    return Browser(process, profile, ws)
