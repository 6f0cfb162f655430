"""Group commit of the worker's transactions, against the real Redis: blocks queued together go out
as one MULTI/EXEC, each caller gets its own replies, and an error stays in its own block."""

import asyncio

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from workers.grouping import GroupingArqRedis


class CountingConnection(Connection):
    """Counts what goes on the wire: one write of packed commands is one round trip."""

    writes = 0

    async def send_packed_command(self, command, check_health=True):
        CountingConnection.writes += 1
        return await super().send_packed_command(command, check_health)


@pytest.fixture
async def grouped(settings):
    client = GroupingArqRedis.from_url(settings.redis_url, connection_class=CountingConnection)
    await client.ping()
    yield client
    await client.aclose()


async def block(client, n: int) -> list:
    async with client.pipeline(transaction=True) as tr:
        tr.set(f"grouped:{n}", n)
        tr.incr(f"grouped:{n}")
        tr.get(f"grouped:{n}")
        return await tr.execute()


async def test_blocks_queued_together_share_one_transaction_and_keep_their_own_replies(redis, grouped):
    before = CountingConnection.writes

    replies = await asyncio.gather(*(block(grouped, n) for n in range(50)))

    assert replies == [[True, n + 1, str(n + 1).encode()] for n in range(50)]
    assert CountingConnection.writes - before == 1


async def test_an_error_in_one_block_raises_in_that_block_only(redis, grouped):
    await redis.set("grouped:text", "not a number")

    async def bad() -> list:
        async with grouped.pipeline(transaction=True) as tr:
            tr.set("grouped:bad-neighbour-ran", 1)
            tr.incr("grouped:text")
            return await tr.execute()

    results = await asyncio.gather(bad(), block(grouped, 7), return_exceptions=True)

    assert isinstance(results[0], ResponseError)
    assert results[1] == [True, 8, b"8"]
    # Redis runs the rest of a transaction past a failed command: as a lone MULTI/EXEC would
    assert await redis.get("grouped:bad-neighbour-ran") == b"1"


async def test_watching_pipelines_and_plain_commands_are_not_grouped(redis, grouped):
    async with grouped.pipeline(transaction=True) as tr:
        await tr.watch("grouped:w")
        tr.multi()
        tr.set("grouped:w", 1)
        assert await tr.execute() == [True]
    async with grouped.pipeline(transaction=False) as pipe:
        pipe.set("grouped:p", 2)
        pipe.get("grouped:p")
        assert await pipe.execute() == [True, b"2"]
    assert await grouped.get("grouped:w") == b"1"


async def test_a_lost_connection_fails_every_block_of_the_batch(settings):
    client = GroupingArqRedis.from_url("redis://127.0.0.1:1/0")
    try:
        results = await asyncio.gather(block(client, 1), block(client, 2), return_exceptions=True)
    finally:
        await client.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results
