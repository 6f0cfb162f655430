"""Log lines as a worker writes them: JSON, and every line a job writes says which run wrote it."""

import json

from jobfleet.producer import Producer
from tests.cli.run import jobfleet
from tests.factories import PinTeach, ago


async def test_lines_written_inside_a_job_carry_its_name_id_and_try(env, pg, redis):
    seed = PinTeach(pg)
    teacher = await seed.teacher()
    service = await seed.service(teacher)
    student = await seed.student(teacher)
    await seed.enrollment(service, student, teacher, sessions_scheduled=0, valid_until=ago(days=1))
    job_id = await Producer(redis).enqueue("credits.expire", {})

    result = jobfleet(
        {**env, "JOBFLEET_LOG_LEVEL": "INFO"}, "worker", "--burst", "--queue", "sweeps", "--no-scheduler"
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_event = {line["event"]: line for line in lines}
    run = {"job": "credits.expire", "job_id": job_id, "job_try": 1}
    # written by the business logic, which knows nothing of the queue
    assert by_event["credits_expired"].items() >= {**run, "credits": 10}.items()
    assert by_event["job_succeeded"].items() >= run.items()
    # and nothing outside the run is tagged with it
    assert "job_id" not in by_event["fleet_stopped"]


def test_a_field_named_like_a_secret_is_masked_in_logs_as_on_the_dashboard():
    from jobfleet.secret_names import MASK
    from ops.masking import mask
    from workers.logging import drop_secrets

    event = {
        "event": "calendar_token_saved",
        "api_key": "sk_live_1",
        "client_secret": "s3",
        "stripe_signature": "t=1,v1=abc",
        "request": {"headers": {"Authorization": "Bearer x"}, "ids": [{"refresh_token": "r"}]},
        "job_id": "calendar.sync_session:1",
    }
    logged = drop_secrets(None, "info", dict(event))
    assert logged == mask(event)  # one definition of a secret, for both
    assert logged["api_key"] == logged["client_secret"] == logged["stripe_signature"] == MASK
    assert logged["request"] == {"headers": {"Authorization": MASK}, "ids": [{"refresh_token": MASK}]}
    assert logged["job_id"] == "calendar.sync_session:1" and logged["event"] == "calendar_token_saved"
