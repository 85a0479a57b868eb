"""
Running the installed ``twistd`` in a subprocess, as users run wstunnel:
the environment without the checkout on PYTHONPATH, and a bound on how
long one run may take.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Generous: a loaded CI machine may take seconds to import Twisted.
STARTUP_SECONDS = 30


def subprocess_env() -> dict[str, str]:
    """The environment minus PYTHONPATH, so the installed wstunnel is what runs."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_twistd(twistd: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [twistd, *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
