"""Every Lua script of the fleet names each key it touches in KEYS: none builds a key from ARGV or a
prefix inside the script, so that a move to Redis Cluster (hash tags, one slot per script) stays a
matter of key names. This reads the sources, so a new script is checked as soon as it is written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobfleet", "workers", "ops", "jobs")
CALL = re.compile(r"redis\.call\(\s*'(\w+)'\s*,\s*([^,)]+)")


def scripts() -> dict[str, list[tuple[str, str]]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            calls = CALL.findall(path.read_text())
            if calls:
                found[str(path.relative_to(ROOT))] = calls
    return found


def test_every_redis_call_in_a_script_takes_its_key_from_keys():
    found = scripts()
    assert {"jobfleet/producer.py", "workers/claiming.py", "workers/recovery.py", "workers/lease.py"} <= set(
        found
    ), "the scan finds the scripts"
    for path, calls in found.items():
        for command, key in calls:
            assert re.fullmatch(r"KEYS\[[^\]]+\]", key.strip()), (
                f"{path}: {command} on {key!r}, not a KEYS entry"
            )
