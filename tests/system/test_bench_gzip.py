"""bench/gzip.py runs, checks its own output decompresses, and prints a figure per case; no timing is asserted."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_the_gzip_bench_runs_briefly() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gzip.py"), "--mib", "1", "--rounds", "1", "--levels", "1",
         "--chunks", "65536"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    rows = done.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["text", "json", "random"]
