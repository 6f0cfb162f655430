"""Where Redis is: URLs and Sentinel settings parsed, bad ones refused naming the variable, and the
durable enqueue reporting a job no replica confirmed."""

import pytest

from jobfleet.producer import Job, NotReplicated, Producer
from jobfleet.redis_target import RedisTarget, RedisTargetError
from jobfleet.settings import ConfigError, load_settings


def test_a_plain_url_is_one_server():
    target = RedisTarget.parse("redis://:secret@10.0.0.5:6380/2")
    assert not target.uses_sentinel and target.url == "redis://:secret@10.0.0.5:6380/2"
    assert target.describe() == "redis://10.0.0.5:6380/2", "no password in what is logged"


def test_a_sentinel_url_names_sentinels_master_and_database():
    target = RedisTarget.parse("redis+sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/3")
    assert target.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.master, target.db, target.password) == ("mymaster", 3, "pw")
    assert "pw" not in target.describe() and "mymaster" in target.describe()


def test_sentinel_settings_beside_a_plain_url():
    settings = load_settings(
        redis_url="redis://:pw@ignored/4", redis_sentinels="a:1, b:2", redis_sentinel_master="m"
    )
    target = settings.redis_target
    assert target.sentinels == (("a", 1), ("b", 2)) and (target.master, target.db, target.password) == (
        "m",
        4,
        "pw",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"redis_url": "redis+sentinel://s1:26379"},
            "JOBFLEET_REDIS_URL: redis+sentinel:// URL names no master",
        ),
        (
            {"redis_sentinels": "s1:x", "redis_sentinel_master": "m"},
            "JOBFLEET_REDIS_SENTINELS: Sentinel address 's1:x'",
        ),
        ({"redis_sentinels": "s1:1"}, "JOBFLEET_REDIS_SENTINELS: Sentinel needs both"),
        (
            {"redis_url": "redis+sentinel://s1/m/zero"},
            "JOBFLEET_REDIS_URL: Redis database 'zero' is not a number",
        ),
    ],
)
def test_bad_sentinel_settings_stop_start_up_naming_the_variable(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_settings(**overrides)
    assert str(error.value).startswith(message)


def test_parse_refuses_an_empty_address_list():
    with pytest.raises(RedisTargetError, match="no Sentinel address"):
        RedisTarget.parse("redis://x/0", sentinels=" , ", master="m")


async def test_durable_enqueue_reports_a_job_no_replica_confirmed(settings, redis):
    # the test server has no replica: WAIT answers 0 when its timeout ends
    async with Producer.from_url(settings.redis_url, durable_replicas=1, durable_timeout_s=0.05) as producer:
        with pytest.raises(NotReplicated, match=r"job 'fleet.noop:k' reached the Redis master but 0 of 1"):
            await producer.enqueue("fleet.noop", key="k")
        with pytest.raises(NotReplicated, match=r"2 jobs reached the Redis master"):
            await producer.enqueue_many([Job("fleet.noop", key="a"), Job("fleet.noop", key="b")])
        # the job is on the master all the same, and the same key adds nothing
        assert await redis.exists("arq:job:fleet.noop:k")
