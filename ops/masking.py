"""Hide the values of payload fields named like secrets before anything shows them."""

import re
from typing import Any

MASK = "••••••"
SECRET_NAME = re.compile(
    r"secret|token|passw|api[-_]?key|authori[sz]ation|credential|private[-_]?key|cookie|signature"
    r"|session[-_]?key|client[-_]?key",
    re.IGNORECASE,
)
# "name": "value" pairs inside raw text that is not valid JSON (an undecodable job, say)
_RAW_PAIR = re.compile(r'("[^"]*"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)')


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def mask(value: Any) -> Any:
    """A copy of ``value`` in which every field named like a secret holds ``MASK``."""
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k)) else mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def mask_text(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + f'"{MASK}"' if is_secret(match.group(1)) else match.group(0)

    return _RAW_PAIR.sub(replace, text)
