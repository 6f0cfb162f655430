"""taskiq and dramatiq, measured when a Python that has them is given (they need redis-py 8, which
the fleet's arq pins below, so they cannot live in the project's environment)."""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "peer_worker.py"


def measure_peers(python: str, redis_url: str, jobs: int) -> dict[str, float]:
    rates = {}
    for peer in ("taskiq", "dramatiq (100 threads)"):
        out = subprocess.run(
            [python, str(SCRIPT), peer.split()[0], redis_url, str(jobs)],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if out.returncode == 0:
            rates[peer] = float(out.stdout.strip().splitlines()[-1])
    return rates
