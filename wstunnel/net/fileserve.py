"""
A file sent to the client: opened, answered from its descriptor's
``fstat`` (:func:`wstunnel.core.filereply.file_reply`), and read only as
the client's socket drains.

:class:`FileSender` is a pull producer registered with the client's
transport: Twisted asks it for more only when everything written so far
has left the process, so a download holds one chunk however slow its
client, and a client that stops reading is cut off after ``send_timeout``
without a byte read.  The descriptor stays open until the end, so a file
replaced or deleted meanwhile is still sent whole as it was opened; one
that shrinks ends the connection, as nginx does ("file was truncated").

Under ``limit_rate`` the sender waits out a :class:`~wstunnel.net.pace.Pace`
before each chunk; sendfile still serves it, a chunk per turn (it costs a
tenth of the CPU of reading and writing, doc/static.md).
``gzip_static`` is chosen where the file is opened (:func:`open_static`).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from typing import Callable, NamedTuple

from twisted.internet.interfaces import IDelayedCall, IPullProducer, IPushProducer, IReactorTime, ITransport
from zope.interface import implementer

from wstunnel.core.compression import VARY, Encoding, plan_encoding, static_variant
from wstunnel.core.filereply import FileReply, content_type, file_reply
from wstunnel.config.model import FileSettings, Location
from wstunnel.net.pace import Pace
from wstunnel.net.stream import Stream
from wstunnel.net.throttle import cancel_timer
from wstunnel.wire.errors import RequestError
from wstunnel.wire.request import RequestHead

__all__ = ["CHUNK", "FileSender", "Opened", "direct_sendfile", "open_file", "open_static", "reply_for"]

# Read and written per drain of the client's socket: the memory one download holds.
CHUNK = 64 * 1024
# At most this much goes by sendfile per drain, so one fast download cannot hold the loop.
SENDFILE_TURN = 4 * 1024 * 1024
# What open() failing means, as nginx's static handler maps it; anything else is a 500.
_NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})


def open_file(path: str) -> tuple[int, os.stat_result]:
    """The descriptor and its stat; RequestError 403, 404 or 500 when it cannot be served."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise RequestError(403, f'open() "{path}" failed (13: Permission denied)') from None
        status = 404 if exc.errno in _NOT_FOUND else 500
        raise RequestError(status, f'open() "{path}" failed ({exc.errno}: {exc.strerror})') from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RequestError(404, f'"{path}" is not a regular file')
    return fd, info


class Opened(NamedTuple):
    """The descriptor sent for a file: the file's own, or its ``.gz`` sibling (``encoded``) under gzip_static."""

    fd: int
    info: os.stat_result
    encoded: bool = False
    vary: bool = False  # gzip_static found a sibling and gzip_vary is on


def open_static(head: RequestHead, location: Location | None, path: str) -> Opened:
    """
    ``path``, or its ``.gz`` sibling when gzip_static serves it, as nginx's
    gzip_static handler: a sibling that cannot be opened is no sibling; one
    that exists but is not for this client still adds Vary under gzip_vary.
    """
    variant = None if location is None else static_variant(location.gzip, head, path)
    vary = False
    if variant is not None:
        try:
            fd, info = open_file(path + ".gz")
        except RequestError:
            pass
        else:
            if variant.serve:
                return Opened(fd, info, True, variant.vary)
            os.close(fd)
            vary = variant.vary
    fd, info = open_file(path)
    return Opened(fd, info, False, vary)


def reply_for(head: RequestHead, files: FileSettings, path: str, opened: Opened, location: Location | None) -> FileReply:
    """
    The answer for the open file; a multipart boundary, when one is needed,
    nobody can guess from outside.  nginx's gzip filter runs before its
    range filter: a file it compresses is sent whole, and one it could
    compress for another client gets Vary (gzip_vary) even as a 206.  A
    ``.gz`` sibling is always sent whole, without Accept-Ranges, as nginx
    1.22's gzip_static sends it.
    """
    info, kind = opened.info, content_type(path, files)
    encoding = ((b"Content-Encoding", b"gzip"),) if opened.encoded else ()
    planned = _planned(head, location, kind, info.st_size, encoding)
    ranges = not opened.encoded and (planned is None or planned.deflate is None)
    reply = file_reply(head, files, info.st_size, int(info.st_mtime), kind, _boundary, encoding, ranges)
    if opened.encoded:
        reply = reply._replace(headers=tuple(h for h in reply.headers if h[0] != b"Accept-Ranges"))
    vary = opened.vary or (planned is not None and reply.status == 206)
    if vary and reply.status < 400:
        return reply._replace(headers=(*reply.headers, VARY))
    return reply


def _planned(
    head: RequestHead, location: Location | None, kind: bytes, size: int, encoding: tuple[tuple[bytes, bytes], ...]
) -> Encoding | None:
    """What the gzip filter makes of the whole file's 200."""
    if location is None or not location.gzip.enabled:
        return None
    headers = [(b"Content-Type", kind), (b"Content-Length", b"%d" % size), *encoding]
    return plan_encoding(location.gzip, head, 200, headers, 0.0)


def _boundary() -> bytes:
    return b"%010d" % secrets.randbelow(10**10)


def direct_sendfile(transport: ITransport) -> Callable[[int, int, int], int] | None:
    """
    ``os.sendfile`` straight to a plain TCP socket (a
    :class:`~wstunnel.net.stream.Stream`) while it has nothing queued (the
    bytes never enter the process); None for TLS and anything else.  The
    function returns the bytes the kernel took, 0 when it took none.
    """
    if not isinstance(transport, Stream) or not hasattr(os, "sendfile"):
        return None
    out = transport.fileno()

    def send(fd: int, offset: int, count: int) -> int:
        if not transport.idle():
            return 0
        try:
            return os.sendfile(out, fd, offset, count)
        except OSError:
            return 0

    return send


@implementer(IPullProducer)
class FileSender:
    """
    Sends ``reply``'s parts from ``fd`` through ``write`` (the answer's
    body writer), one chunk per drain.  ``done(True)`` when all was sent,
    ``done(False)`` when the file shrank, could not be read or the client
    went away; ``stalled`` after ``timeout`` without a drain.  The
    descriptor is closed before either is called.  With ``direct`` (see
    :func:`direct_sendfile`) a drain first sends what the kernel takes by
    sendfile, counted by ``sent``, then queues one chunk as usual, whose
    drain asks again.
    """

    __slots__ = ("_fd", "_parts", "_trailer", "_write", "_transport", "_clock", "_timeout",
                 "_done", "_stalled", "_index", "_offset", "_left", "_last", "_timer", "_open", "_direct", "_sent",
                 "_gate", "_pace", "_chunk")

    def __init__(
        self,
        fd: int,
        reply: FileReply,
        write: Callable[[bytes], None],
        transport: ITransport,
        clock: IReactorTime,
        timeout: float,
        done: Callable[[bool], None],
        stalled: Callable[[], None],
        direct: Callable[[int, int, int], int] | None = None,
        sent: Callable[[int], None] | None = None,
        rate: tuple[int, int] = (0, 0),
    ) -> None:
        self._fd = fd
        self._direct = direct
        self._sent = sent
        self._parts = reply.parts
        self._trailer = reply.trailer
        self._write = write
        self._transport = transport
        self._clock = clock
        self._timeout = timeout
        self._done = done
        self._stalled = stalled
        self._index = -1
        self._offset = self._left = 0
        self._last = 0.0
        self._timer: IDelayedCall | None = None
        self._open = True
        self._gate = _Gate(self.resumeProducing) if rate[0] else None
        self._pace = Pace(self._gate, clock, *rate) if self._gate is not None else None
        # Under a rate a chunk is at most a second's worth, so no wait for the bucket outlasts send_timeout.
        self._chunk = min(CHUNK, rate[0]) if rate[0] else CHUNK

    def start(self) -> None:
        self._last = self._clock.seconds()
        self._timer = self._clock.callLater(self._timeout, self._check)
        self._transport.registerProducer(self, False)  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        if not self._open:
            return
        self._last = self._clock.seconds()
        gate = self._gate
        if gate is not None and gate.paused:
            gate.waiting = True
            return
        while self._left == 0:
            self._index += 1
            if self._index == len(self._parts):
                self._finish()
                return
            prefix, self._offset, self._left = self._parts[self._index]
            if prefix:
                self._write(prefix)
        if self._direct is not None and self._by_sendfile():
            return
        try:
            data = os.pread(self._fd, min(self._chunk, self._left), self._offset)
        except OSError:
            data = b""
        if not data:
            self._end(False)
            return
        self._offset += len(data)
        self._left -= len(data)
        self._write(data)
        if self._pace is not None:
            self._pace.sent(len(data))

    def _by_sendfile(self) -> bool:
        """
        Send what the kernel takes now; True when the part is done and the
        next drain already asked for, or when the rate holds the rest back
        (the bucket's refill asks).  Under a rate a turn is one chunk.
        """
        budget = SENDFILE_TURN if self._pace is None else self._chunk
        turn = budget
        while self._left and budget > 0:
            count = self._direct(self._fd, self._offset, min(self._left, budget))  # type: ignore[misc]
            if count <= 0:
                break
            self._offset += count
            self._left -= count
            budget -= count
            self._sent(count)  # type: ignore[misc]
        if self._pace is not None and budget < turn:
            self._pace.sent(turn - budget)
        if self._left:
            gate = self._gate
            if gate is None or not gate.paused:
                return False
            gate.waiting = True
            return True
        self.resumeProducing()
        return True

    def stopProducing(self) -> None:
        """The client's connection is gone."""
        if self._open:
            self._end(False)

    def _finish(self) -> None:
        if self._trailer:
            self._write(self._trailer)
        self._end(True)

    def _end(self, whole: bool) -> None:
        self._close()
        self._transport.unregisterProducer()  # type: ignore[attr-defined]
        self._done(whole)

    def _close(self) -> None:
        self._open = False
        os.close(self._fd)
        if self._pace is not None:
            self._pace.stop()
        cancel_timer(self._timer)
        self._timer = None

    def _check(self) -> None:
        """send_timeout: one timer for the whole send, re-armed for what is left since the last drain."""
        self._timer = None
        if not self._open:
            return
        left = self._last + self._timeout - self._clock.seconds()
        if left > 0:
            self._timer = self._clock.callLater(left, self._check)
            return
        self._close()
        self._transport.unregisterProducer()  # type: ignore[attr-defined]
        self._stalled()


@implementer(IPushProducer)
class _Gate:
    """What limit_rate's :class:`Pace` pauses: a drain while paused waits for the bucket, then sends."""

    __slots__ = ("paused", "waiting", "_go")

    def __init__(self, go: Callable[[], None]) -> None:
        self.paused = self.waiting = False
        self._go = go

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.waiting:
            self.waiting = False
            self._go()

    def stopProducing(self) -> None:
        self.paused = True
