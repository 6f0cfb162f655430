"""The catalog is the one place that maps a job's name to its module; the README's table says the same."""

import re
from pathlib import Path

from jobfleet.catalog import JOBS
from workers.runner import load_handler

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_handler_resolves():
    for spec in JOBS:
        assert callable(load_handler(spec)), spec.name


def test_the_readme_catalog_table_names_each_jobs_module():
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| (`[a-z_.]+`(?:, `[a-z_.]+`)*) \| ([^|]+) \|", line)
        if match:
            for name in re.findall(r"`([a-z_.]+)`", match.group(1)):
                rows[name] = re.findall(r"`([^`]+\.py)`", match.group(2))
    for spec in JOBS:
        module = spec.handler.partition(":")[0].replace(".", "/") + ".py"
        assert spec.name in rows, f"{spec.name} is missing from the README's job catalog table"
        assert module in rows[spec.name], f"README: {spec.name} lives in {module}, not {rows[spec.name]}"
