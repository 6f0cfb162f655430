"""Run the ``jobfleet`` command line as a user runs it: a subprocess with JOBFLEET_* variables."""

import subprocess
import sys


def jobfleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
