"""What counts as a secret, for everything that shows or logs values: a field named like one.

The logs (workers/logging.py) and the dashboard and ``jobfleet status`` (ops/masking.py) hide the
values of the same fields.
"""

import functools
import re
from typing import Any

MASK = "••••••"
SECRET_NAME = re.compile(
    r"secret|token|passw|api[-_]?key|authori[sz]ation|credential|private[-_]?key|cookie|signature"
    r"|session[-_]?key|client[-_]?key",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)  # a log line asks for each of its keys: the same few names
def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def mask(value: Any) -> Any:
    """A copy of ``value`` in which every field named like a secret, at any depth, holds ``MASK``."""
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k)) else mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value
