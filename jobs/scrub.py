"""Scrub a person's identifying values out of free text and JSON documents, keeping everything else.

Both erasures use it: PinTeach for earlier audit metadata and the request's reason, Pickatale for
the request's reason. A value matches whole, case-insensitively, and not inside a longer word; a
name also matches word by word (a parent writes "Emma's data", not "Emma Hansen's data").
"""

import re
from collections.abc import Iterable
from typing import Any

ERASED = "[erased]"
MIN_NAME_PART = 3  # shorter parts ("Li", "Jo") would scrub ordinary words too


def identifying_pattern(
    values: Iterable[str | None], *, names: Iterable[str | None] = ()
) -> re.Pattern[str] | None:
    """One pattern for the values and for each word of the names; None when there is nothing to find."""
    terms = {v.strip() for v in values if v and v.strip()}
    for name in names:
        if name and name.strip():
            terms.add(name.strip())
            terms.update(part for part in re.split(r"\W+", name) if len(part) >= MIN_NAME_PART)
    if not terms:
        return None
    # longest first, so a full name is replaced whole rather than word by word
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def scrub_text(text: str | None, pattern: re.Pattern[str] | None) -> str | None:
    if text is None or pattern is None:
        return text
    return pattern.sub(ERASED, text)


def scrub_json(document: Any, pattern: re.Pattern[str] | None) -> Any:
    """The document with every string (keys too) scrubbed; numbers, booleans and nulls kept."""
    if pattern is None:
        return document
    if isinstance(document, str):
        return pattern.sub(ERASED, document)
    if isinstance(document, list):
        return [scrub_json(item, pattern) for item in document]
    if isinstance(document, dict):
        return {pattern.sub(ERASED, key): scrub_json(value, pattern) for key, value in document.items()}
    return document
