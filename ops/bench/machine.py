"""What the figures were measured on: cores, memory, CPU, and the versions of everything involved."""

import os
import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version


def _first_line(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def commit() -> str:
    """The checkout measured; read when a run starts, since commits made during it are not in it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    head = _first_line(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    changed = subprocess.run(
        ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout
    return head + (" with uncommitted changes" if changed.strip() else "")


def describe(servers: dict[str, str] | None = None) -> dict[str, str]:
    facts = {
        "nproc": str(os.cpu_count()),
        "memory": _memory(),
        "CPU": _cpu_model(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "packages": ", ".join(
            f"{p} {_package(p)}"
            for p in (
                "arq",
                "redis",
                "hiredis",
                "uvloop",
                "orjson",
                "structlog",
                "sqlalchemy",
                "asyncpg",
                "asyncmy",
            )
        ),
        "redis-server": _first_line(["redis-server", "--version"]),
        "pt-archiver": _first_line(["pt-archiver", "--version"]),
    }
    facts.update(servers or {})
    return facts
