"""Group commit for a worker's transactions: the MULTI/EXEC blocks of the jobs that start or finish
together go to Redis as one transaction, in one round trip.

arq opens a transaction per job to start it (read the job, count the try) and another to finish it
(write the result, clear its keys; the fleet adds the history there). With a hundred short jobs
running at once a worker spends more time on those round trips than on the jobs. The worker's
Redis client here hands out pipelines whose ``execute`` queues the block instead; the blocks queued
in one turn of the event loop go out together as one MULTI/EXEC on the next, and each caller gets
its own slice of the replies. Nothing returns before Redis has executed it; each block stays
all-or-nothing (its transaction holds its neighbours' too); a command that fails inside one block
raises in that block's caller only. Pipelines that WATCH keys, or are not transactions, run alone.
"""

import asyncio
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline

Block = tuple[list, set, asyncio.Future]


class CommitGroup:
    """Sends the blocks queued in one turn of the event loop as one merged transaction."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self.pending: list[Block] = []
        self.sending: set[asyncio.Task] = set()

    async def run(self, stack: list, scripts: set) -> list[Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        if not self.pending:
            # sent on the loop's next turn: the blocks queued in this turn go with it
            loop.call_soon(self._flush)
        self.pending.append((stack, scripts, done))
        return await done

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _send(self, batch: list[Block]) -> None:
        merged = Pipeline(self.redis.connection_pool, self.redis.response_callbacks, True, None)
        for stack, scripts, _ in batch:
            merged.command_stack.extend(stack)
            merged.scripts |= scripts
        try:
            replies = await merged.execute(raise_on_error=False)
        except BaseException as e:  # the transaction as a whole failed (or was cancelled): so did each block
            for *_, done in batch:
                if not done.done():
                    done.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            if not isinstance(e, Exception):
                raise
            return
        start = 0
        for stack, _, done in batch:
            if not done.done():
                done.set_result(replies[start : start + len(stack)])
            start += len(stack)


class GroupedPipeline(Pipeline):
    def __init__(self, group: CommitGroup, *args: Any) -> None:
        super().__init__(*args)
        self.group = group

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.watching or self.explicit_transaction or not self.is_transaction or not self.command_stack:
            return await super().execute(raise_on_error)
        stack, scripts = self.command_stack, self.scripts
        try:
            replies = await self.group.run(stack, scripts)
        finally:
            await self.reset()
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


class GroupingArqRedis(ArqRedis):
    """arq's client, whose transactions are grouped (see above); everything else as arq's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = CommitGroup(self)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        callbacks = self.response_callbacks
        return GroupedPipeline(self.group, self.connection_pool, callbacks, transaction, shard_hint)
