"""bench/gzip.py runs, checks that its output decompresses, and prints a figure per case; no timing is asserted."""

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
    per_mib, per_answer = done.stdout.split("\n\n")
    assert [row.split()[0] for row in per_mib.splitlines()[1:]] == ["text", "json", "random"]
    assert [row.split()[0] for row in per_answer.splitlines()[1:]] == ["unknown", "16", "4", "1"]
