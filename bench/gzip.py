#!/usr/bin/env python3
"""
What gzip on a proxied answer costs the event loop: CPU time per MiB of
body through wstunnel's own compressor (wstunnel/net/compress.py, one
zlib call and a sync flush per chunk, as the answer path runs it), by
level, chunk size and kind of body, and the longest single call, which is
how long one compressing answer holds the event loop at a time; then the
fixed cost of one compressed answer by the size of its window.  No
sockets and no reactor: the figure is the compressor's alone, steady on a
machine shared with other work (doc/performance.md):

    .venv/bin/python bench/gzip.py [--mib N] [--rounds N] [--levels 1,6,9] [--chunks 1024,16384,65536]

The bodies: ``text``, the repository's own documentation repeated (prose
and tables, as HTML or Markdown compresses); ``json``, generated records
(an API's answers); ``random``, bytes that do not compress (the worst
case for output size, not for time).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]  # the checkout, not an installed copy
from wstunnel.core.compression import Deflate, deflate_for  # noqa: E402
from wstunnel.net.compress import GzipBody  # noqa: E402

MIB = 1024 * 1024


def bodies(size: int) -> dict[str, bytes]:
    docs = b"".join(path.read_bytes() for path in sorted((BENCH.parent / "doc").glob("*.md")))
    rng = random.Random(14)
    records = [
        {"id": n, "name": f"user{rng.randrange(10**6)}", "score": rng.random(), "tags": ["a", "bb", "ccc"][: n % 4]}
        for n in range(size // 60)
    ]
    return {
        "text": (docs * (size // len(docs) + 1))[:size],
        "json": json.dumps(records).encode()[:size],
        "random": rng.randbytes(size),
    }


def run(body: bytes, level: int, chunk: int) -> tuple[float, float, int]:
    """CPU seconds for the body, the longest call, and the compressed size."""
    gzip = GzipBody(Deflate(level, 15, 8))
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    out = 0
    longest = 0.0
    clock = time.process_time
    start = clock()
    for piece in pieces:
        before = clock()
        out += len(gzip.chunk(piece))
        longest = max(longest, clock() - before)
    out += len(gzip.finish())
    return clock() - start, longest, out


def check(body: bytes, level: int, chunk: int) -> None:
    """The compressed stream decompresses to the body: the instrument measures real work."""
    gzip = GzipBody(Deflate(level, 15, 8))
    stream = b"".join(gzip.chunk(body[i : i + chunk]) for i in range(0, len(body), chunk)) + gzip.finish()
    assert zlib.decompress(stream, 16 + zlib.MAX_WBITS) == body


def per_answer(rounds: int) -> None:
    """The fixed cost of one compressed answer: a compressor made, 1 KiB compressed and flushed, the end."""
    print(f"\n{'window':<22}{'us per answer':>14}")
    body = bodies(1024)["text"]
    for label, length in (("unknown length", -1), ("16 KiB known", 16384), ("4 KiB known", 4096), ("1 KiB known", 1024)):
        deflate = deflate_for(1, length)
        times = []
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(2000):
                gzip = GzipBody(deflate)
                gzip.chunk(body)
                gzip.finish()
            times.append((time.process_time() - start) / 2000)
        print(f"{label + f' ({deflate.wbits}/{deflate.memlevel})':<22}{min(times) * 1e6:>14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=8, help="body size in MiB (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="best of N (default 5)")
    parser.add_argument("--levels", default="1,6,9")
    parser.add_argument("--chunks", default="1024,16384,65536")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    chunks = [int(x) for x in args.chunks.split(",")]
    print(f"{'body':<7}{'level':>6}{'chunk':>8}{'ms/MiB':>9}{'MiB/s':>8}{'longest call ms':>17}{'ratio':>8}")
    for name, body in bodies(args.mib * MIB).items():
        for level in levels:
            for chunk in chunks:
                check(body[:MIB], level, chunk)
                results = [run(body, level, chunk) for _ in range(args.rounds)]
                cpu = min(r[0] for r in results)
                longest = min(r[1] for r in results)
                ratio = results[0][2] / len(body)
                mib = len(body) / MIB
                print(
                    f"{name:<7}{level:>6}{chunk:>8}{cpu / mib * 1000:>9.1f}{mib / cpu:>8.0f}"
                    f"{longest * 1000:>17.2f}{ratio:>8.3f}"
                )
    per_answer(args.rounds)


if __name__ == "__main__":
    main()
