"""
Where the ``limit_conn_zone`` and ``limit_req_zone`` tables live.

nginx keeps a zone in shared memory so that every worker counts against
the same states.  wstunnel does the same: with ``worker_processes N`` each
zone is a file in the run's shared directory (the one the metrics
snapshots use), mapped into every worker with ``mmap``; a check holds an
``flock`` on it for the few word reads and writes it makes, so the check
is atomic across workers and nothing else ever waits on it.  A single
process keeps its zones in memory, with no lock at all.

A zone outlives a reload when its name, kind and size are unchanged, as in
nginx, so the counts of open tunnels carry over.  A worker that dies with
requests open leaves their ``limit_conn`` counts in the zone (nginx's
zones do the same after a worker crash) until the run ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os

from wstunnel.config.model import LimitZone
from wstunnel.core.ratelimit import ConnTable, Lock, ReqTable

__all__ = ["Zones"]

_WORD = 8


class _FileLock:
    """``flock`` on a zone's file: one check at a time across every worker."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


class Zones:
    """
    The zones of one process, by name, kind and size.  ``directory``: the
    directory every worker of a multi-process run shares; None for a
    single process.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self._memory: dict[tuple[str, str, int], tuple[memoryview, Lock]] = {}
        self._conns: dict[LimitZone, ConnTable] = {}
        self._reqs: dict[LimitZone, ReqTable] = {}

    def conn(self, zone: LimitZone) -> ConnTable:
        """The counters of a ``limit_conn_zone``."""
        table = self._conns.get(zone)
        if table is None:
            table = self._conns[zone] = ConnTable(*self._words("conn", zone.name, zone.slots * 2))
        return table

    def req(self, zone: LimitZone) -> ReqTable:
        """The buckets of a ``limit_req_zone``; a reload that changes only its rate keeps its states."""
        table = self._reqs.get(zone)
        if table is None:
            words, lock = self._words("req", zone.name, zone.slots * 3)
            table = self._reqs[zone] = ReqTable(words, zone.rate, lock)
        return table

    def _words(self, kind: str, name: str, count: int) -> tuple[memoryview, Lock]:
        found = self._memory.get((kind, name, count))
        if found is None:
            found = self._memory[kind, name, count] = self._shared(kind, name, count) if self.directory else (
                memoryview(bytearray(count * _WORD)).cast("q"),
                contextlib.nullcontext(),
            )
        return found

    def _shared(self, kind: str, name: str, count: int) -> tuple[memoryview, Lock]:
        """The zone's file in the shared directory, made (zeroed) by the first worker that needs it."""
        assert self.directory is not None
        path = os.path.join(self.directory, f"zone-{kind}-{name.encode().hex()}-{count}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        lock = _FileLock(fd)
        with lock:
            if os.fstat(fd).st_size < count * _WORD:
                os.ftruncate(fd, count * _WORD)
        mapped = mmap.mmap(fd, count * _WORD)
        return memoryview(mapped).cast("q"), lock
