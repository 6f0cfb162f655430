"""A sweep batch that asks Stripe: lock due rows, ask Stripe about each, write what it answered and
commit, in one transaction.

The rows stay locked while Stripe answers (``stripe_batch_size`` rows, ``stripe_concurrency`` calls
at once, each bounded by ``stripe_timeout_s``), so a concurrent run or a webhook handler waits for
the batch instead of racing it. A refused API key (``Permanent``) or a bug rolls the whole batch
back and fails loudly; a row Stripe did not answer (``Transient``: a rate limit, an outage) is left
as it was: what Stripe did answer is committed, then the first such failure is raised, so that the
runtime retries the job with backoff.
"""

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.errors import Permanent, Transient
from jobs.stripe_api.client import StripeApi

log = structlog.get_logger()

Row = TypeVar("Row")
Answer = TypeVar("Answer")
Step = Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, int], list[Transient]]]]


@dataclass(slots=True)
class Answers(Generic[Row, Answer]):
    answered: list[tuple[Row, Answer]] = field(default_factory=list)
    unanswered: list[Row] = field(default_factory=list)  # Stripe did not answer: left as they were
    failures: list[Transient] = field(default_factory=list)


async def ask_each(
    stripe: StripeApi, rows: Sequence[Row], ask: Callable[[Row], Awaitable[Answer]]
) -> Answers[Row, Answer]:
    """``ask`` about every locked row, ``stripe_concurrency`` at once; raises what must roll back."""
    answers: Answers[Row, Answer] = Answers()
    for row, answer in zip(rows, await stripe.each(rows, ask), strict=True):
        if isinstance(answer, Permanent):
            raise answer  # a refused API key: change nothing, fail loudly
        if isinstance(answer, Transient):
            answers.failures.append(answer)
            answers.unanswered.append(row)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            answers.answered.append((row, answer))
    return answers


def batch(
    begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]], step: Step
) -> Callable[[], Awaitable[tuple[int, dict[str, int]]]]:
    """A sweep batch running ``step(conn) -> (rows taken, counts, Stripe's transient failures)``
    in one transaction; after the commit, the first failure is raised for the runtime's retry."""

    async def run() -> tuple[int, dict[str, int]]:
        async with begin() as conn:
            taken, counts, failures = await step(conn)
        if failures:
            log.warning("stripe_batch_incomplete", taken=taken, unanswered=len(failures), **counts)
            raise failures[0]
        return taken, counts

    return run


def not_configured(job: str, left_alone: str) -> None:
    log.warning("stripe_not_configured", job=job, left_alone=left_alone, setting="JOBFLEET_STRIPE_API_KEY")
