"""How long to wait before trying again: the one backoff of the fleet, for job retries
(workers/retrying.py) and for rows a sweep retries itself (calendar syncs)."""

import random


def backoff_s(
    attempt: int,
    *,
    first_s: float,
    cap_s: float,
    retry_after_s: float | None = None,
    jitter: float | None = None,
) -> float:
    """Delay before retry number ``attempt`` (1 after the first failure): exponential from
    ``first_s``, capped at ``cap_s``, spread over the upper half of that by ``jitter`` in [0, 1]
    (random when not given), so that what failed together (a provider outage) does not all come
    back in the same second; never shorter than a provider's ``Retry-After``."""
    ceiling_s = min(cap_s, first_s * 2 ** max(attempt - 1, 0))
    spread = random.random() if jitter is None else jitter
    return max(ceiling_s * (0.5 + spread / 2), retry_after_s or 0.0)
