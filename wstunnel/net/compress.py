"""
The gzip body filter: an answer's body compressed as it streams to the
client, with zlib's streaming compressor, one call per chunk.  Each chunk
is flushed (Z_SYNC_FLUSH), as nginx flushes with ``proxy_buffering off``,
so that server-sent events and other slow streams reach the client as they
arrive instead of waiting in the compressor.  A call costs what compressing
one received chunk costs (doc/performance.md), never more: the body already
arrives in chunks of at most one socket read.

Whether to compress, and the head that goes with it, is
:func:`wstunnel.core.compression.plan_encoding`'s decision.
"""

from __future__ import annotations

import zlib

from wstunnel.core.compression import Deflate, plan_encoding
from wstunnel.net.requestlog import RequestRecord

__all__ = ["GzipBody", "encode_answer"]


class GzipBody:
    """One answer's compressor: :meth:`chunk` per piece of body, :meth:`finish` once at its end."""

    __slots__ = ("_compress", "_flush")

    def __init__(self, deflate: Deflate) -> None:
        compressor = zlib.compressobj(deflate.level, zlib.DEFLATED, 16 + deflate.wbits, deflate.memlevel)
        self._compress = compressor.compress
        self._flush = compressor.flush

    def chunk(self, data: bytes) -> bytes:
        return self._compress(data) + self._flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The last deflate block and the gzip trailer (CRC-32 and length)."""
        return self._flush(zlib.Z_FINISH)


def encode_answer(
    record: RequestRecord, status: int, headers: list[tuple[bytes, bytes]], now: float
) -> tuple[list[tuple[bytes, bytes]], GzipBody | None]:
    """The head to write for the request of ``record`` and, when its body is gzipped, the compressor."""
    location, head = record.location, record.head
    if location is None or head is None or not location.gzip.enabled:
        return headers, None
    encoding = plan_encoding(location.gzip, head, status, headers, now)
    if encoding is None:
        return headers, None
    deflate = encoding.deflate
    return encoding.headers, None if deflate is None or head.method == b"HEAD" else GzipBody(deflate)
