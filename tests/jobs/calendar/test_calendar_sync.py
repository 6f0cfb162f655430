"""Calendar sync against fake Google and Microsoft servers on loopback, through the real clients."""

import asyncio
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from db import pinteach as t
from jobfleet import keys
from jobfleet.payloads import SessionRef, Sweep
from jobfleet.producer import Producer
from jobs.calendar import rules, sync_pending, sync_session
from jobs.deps import Deps
from jobs.errors import Transient
from tests.factories import PinTeach
from tests.fakes.calendar_world import World
from tests.fakes.google_server import EVENTS, FakeGoogle, google_error
from tests.fakes.http import Response
from tests.fakes.microsoft_server import FakeMicrosoft, graph_error
from tests.fakes.tls import make_certificate, server_context

OSLO = ZoneInfo("Europe/Oslo")
NOTHING = dict.fromkeys(("synced", "deleted", "retrying", "failed", "skipped"), 0)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def google():
    fake = FakeGoogle()
    fake.server.start()
    yield fake
    fake.server.stop()


@pytest.fixture
def microsoft(certificate):
    fake = FakeMicrosoft(server_context(*certificate))
    fake.server.start()
    yield fake
    fake.server.stop()


@pytest.fixture
def cal(deps, google, microsoft, certificate) -> Deps:
    settings = deps.settings.model_copy(
        update={
            "google_client_id": "google-client",
            "google_client_secret": SecretStr("google-secret"),
            "google_api_endpoint": google.api_root,
            "google_token_uri": google.token_uri,
            "microsoft_client_id": "microsoft-client",
            "microsoft_client_secret": SecretStr("microsoft-secret"),
            "microsoft_authority_host": microsoft.authority_host,
            "graph_api_base": microsoft.graph_api_base,
            "calendar_ca_file": certificate[0],
        }
    )
    return Deps(settings=settings, pinteach=deps.pinteach, pickatale=deps.pickatale)


@pytest.fixture
def world(pg, google, microsoft) -> World:
    return World(PinTeach(pg), google, microsoft)


async def sync(deps, session_id):
    return await sync_session.run(deps, SessionRef(session_id=session_id))


def wait_until(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def counts(**kw):
    return {**NOTHING, **kw}


# -- creating --------------------------------------------------------------------------------------


async def test_google_event_without_meet_link(cal, world, google):
    teacher = await world.teacher("google")
    sid = await world.session(teacher)

    assert await sync(cal, sid) == counts(synced=1)

    row = await world.row(sid)
    assert (row.sync_status, row.attempts, row.last_error) == ("synced", 0, None)
    assert row.last_synced_at is not None
    assert row.google_calendar_event_id == sid.hex
    assert row.meeting_url is None and row.google_meet_link is None
    event = google.events[("primary", sid.hex)]
    session = await world.seed.row(t.class_sessions, t.class_sessions.c.id == sid)
    service = await world.seed.row(t.services, t.services.c.id == session.service_id)
    student = await world.seed.row(t.students, t.students.c.id == session.student_id)
    assert event["summary"] == f"{service.name} with {student.name}"
    assert event["start"] == {
        "dateTime": session.starts_at.astimezone(OSLO).replace(tzinfo=None).isoformat(),
        "timeZone": "Europe/Oslo",
    }
    assert event["end"]["dateTime"] == session.ends_at.astimezone(OSLO).replace(tzinfo=None).isoformat()
    assert event["attendees"] == [
        {"email": student.email, "displayName": student.name, "responseStatus": "needsAction"}
    ]
    assert "conferenceData" not in event
    assert "conferenceDataVersion" not in google.server.seen("POST", EVENTS)[0].query


async def test_google_event_with_meet_link_in_a_named_calendar(cal, world, google):
    teacher = await world.teacher("google", meet=True, calendar_id="lessons@group.calendar.google.com")
    sid = await world.session(teacher, group=True)

    assert await sync(cal, sid) == counts(synced=1)

    insert = google.server.seen("POST", EVENTS)[0]
    assert insert.query["conferenceDataVersion"] == "1"
    assert insert.params["calendar"] == "lessons@group.calendar.google.com"
    event = google.events[("lessons@group.calendar.google.com", sid.hex)]
    row = await world.row(sid)
    assert row.google_meet_link == row.meeting_url == event["hangoutLink"]
    assert row.meeting_url.startswith("https://meet.google.com/")
    # a group session: named after the service, nobody invited
    session = await world.seed.row(t.class_sessions, t.class_sessions.c.id == sid)
    service = await world.seed.row(t.services, t.services.c.id == session.service_id)
    assert event["summary"] == service.name and "attendees" not in event


async def test_microsoft_event_with_online_meeting(cal, world, microsoft):
    teacher = await world.teacher("microsoft", meet=True)
    sid = await world.session(teacher)

    assert await sync(cal, sid) == counts(synced=1)

    [event] = microsoft.live_events()
    row = await world.row(sid)
    assert row.microsoft_event_id == event["id"] and row.sync_status == "synced"
    assert row.meeting_url == event["onlineMeeting"]["joinUrl"]
    assert event["transactionId"] == str(sid)
    assert event["start"]["timeZone"] == "Europe/Oslo"
    assert event["attendees"][0]["type"] == "required"


# -- updating and deleting -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_reschedule_patches_the_event_in_place(cal, world, google, microsoft, provider):
    fake = google if provider == "google" else microsoft
    teacher = await world.teacher(provider, meet=True)
    sid = await world.session(teacher)
    await sync(cal, sid)
    [event] = fake.live_events()
    link = (await world.row(sid)).meeting_url
    if provider == "google":
        event["attendees"][0]["responseStatus"] = "accepted"  # the student said yes in their calendar

    session = await world.seed.row(t.class_sessions, t.class_sessions.c.id == sid)
    await world.change(
        sid, starts_at=session.starts_at + timedelta(days=1), ends_at=session.ends_at + timedelta(days=1)
    )
    assert await sync(cal, sid) == counts(synced=1)

    assert len(fake.live_events()) == 1 and len(fake.server.seen("POST", ".*/events")) == 1
    assert len(fake.server.seen("PATCH")) == 1
    [moved] = fake.live_events()
    assert moved["id"] == event["id"]
    new_start = (session.starts_at + timedelta(days=1)).astimezone(OSLO).replace(tzinfo=None).isoformat()
    assert moved["start"]["dateTime"] == new_start
    row = await world.row(sid)
    assert row.meeting_url == link and row.sync_status == "synced"
    if provider == "google":
        assert moved["attendees"][0]["responseStatus"] == "accepted"


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_cancel_deletes_the_event_and_a_gone_event_is_success(cal, world, google, microsoft, provider):
    fake = google if provider == "google" else microsoft
    teacher = await world.teacher(provider, meet=True)
    sid, other = await world.session(teacher), await world.session(teacher)
    await sync(cal, sid)
    await sync(cal, other)

    await world.change(sid, status="cancelled_by_teacher")
    assert await sync(cal, sid) == counts(deleted=1)
    row = await world.row(sid)
    assert (row.google_calendar_event_id, row.microsoft_event_id, row.meeting_url, row.google_meet_link) == (
        None,
        None,
        None,
        None,
    )
    assert row.sync_status == "synced"
    assert len(fake.live_events()) == 1

    # the teacher deleted the other event by hand; the session then expires
    gone = next(e for e in fake.live_events())
    if provider == "google":
        gone["status"] = "cancelled"
    else:
        del fake.events[gone["id"]]
    await world.change(other, status="no_show_teacher")
    assert await sync(cal, other) == counts(deleted=1)
    assert (await world.row(other)).sync_status == "synced"


# -- exactly once ----------------------------------------------------------------------------------


async def test_google_crash_between_create_and_store_makes_no_second_event(cal, world, google):
    teacher = await world.teacher("google", meet=True)
    sid = await world.session(teacher)
    # Google creates the event, but the worker never learns it (killed, or the answer was lost).
    google.server.fail_after(
        "POST", EVENTS, Response(503, google_error(503, "backendError", "Backend Error"))
    )

    with pytest.raises(Transient):
        await sync(cal, sid)
    row = await world.row(sid)
    assert (row.sync_status, row.attempts, row.google_calendar_event_id) == ("failed", 1, None)
    assert len(google.live_events()) == 1

    await world.make_due(sid)
    assert await sync(cal, sid) == counts(synced=1)

    assert len(google.live_events()) == 1
    assert [r.method for r in google.server.requests if "/events" in r.path] == ["POST", "POST", "PATCH"]
    row = await world.row(sid)
    assert (row.sync_status, row.attempts, row.google_calendar_event_id) == ("synced", 0, sid.hex)
    assert row.meeting_url == google.events[("primary", sid.hex)]["hangoutLink"]


async def test_microsoft_crash_between_create_and_store_makes_no_second_event(cal, world, microsoft):
    teacher = await world.teacher("microsoft")
    sid = await world.session(teacher)
    microsoft.server.fail_after(
        "POST", r"/v1\.0/me/events", Response(504, graph_error("GatewayTimeout", "Gateway timeout"))
    )

    with pytest.raises(Transient):
        await sync(cal, sid)
    await world.make_due(sid)
    assert await sync(cal, sid) == counts(synced=1)

    [event] = microsoft.live_events()
    assert (await world.row(sid)).microsoft_event_id == event["id"]


async def test_a_cancel_after_a_lost_create_still_deletes_the_google_event(cal, world, google):
    teacher = await world.teacher("google")
    sid = await world.session(teacher)
    google.server.fail_after(
        "POST", EVENTS, Response(500, google_error(500, "backendError", "Backend Error"))
    )
    with pytest.raises(Transient):
        await sync(cal, sid)

    await world.change(sid, status="cancelled_by_student")
    assert await sync(cal, sid) == counts(deleted=1)
    assert google.live_events() == []


# -- tokens ----------------------------------------------------------------------------------------


async def test_google_expired_token_is_refreshed_rotated_and_stored(cal, world, google):
    google.rotate_refresh_tokens = True
    teacher = await world.teacher("google", token="expired")
    sid = await world.session(teacher)

    with capture_logs() as logs:
        assert await sync(cal, sid) == counts(synced=1)

    [token_request] = google.server.seen("POST", "/token")
    form = token_request.form()
    assert (form["grant_type"], form["refresh_token"], form["client_id"]) == (
        "refresh_token",
        teacher["refresh"],
        "google-client",
    )
    connection = await world.seed.row(t.oauth_connections)
    assert connection.access_token in google.access_tokens and connection.access_token != teacher["access"]
    assert (
        connection.refresh_token in google.refresh_tokens and connection.refresh_token != teacher["refresh"]
    )
    async with world.seed.engine.connect() as conn:
        left = (await conn.execute(select(t.oauth_connections.c.token_expires_at - func.now()))).scalar_one()
    assert timedelta(minutes=50) < left <= timedelta(hours=1)
    assert google.server.seen("POST", EVENTS)[0].bearer == connection.access_token
    text = repr(logs)
    for secret in (connection.access_token, connection.refresh_token, teacher["refresh"], "google-secret"):
        assert secret not in text


async def test_a_401_refreshes_once_and_retries(cal, world, google):
    teacher = await world.teacher("google", token="refused")  # not expired, but Google refuses it
    sid = await world.session(teacher)

    assert await sync(cal, sid) == counts(synced=1)

    assert [r.method for r in google.server.requests] == ["POST", "POST", "POST"]  # 401, token, insert
    assert google.server.requests[0].bearer == teacher["access"]
    connection = await world.seed.row(t.oauth_connections)
    assert connection.access_token == google.server.requests[2].bearer != teacher["access"]
    assert connection.refresh_token == teacher["refresh"]  # Google did not rotate it


async def test_microsoft_refresh_through_msal_rotates_the_refresh_token(cal, world, microsoft):
    teacher = await world.teacher("microsoft", token="expired")
    sid = await world.session(teacher)

    assert await sync(cal, sid) == counts(synced=1)

    assert microsoft.server.seen("GET", r"/common/v2\.0/\.well-known/openid-configuration")
    [token_request] = microsoft.server.seen("POST", r"/common/oauth2/v2\.0/token")
    form = token_request.form()
    assert form["refresh_token"] == teacher["refresh"] and form["client_id"] == "microsoft-client"
    assert "https://graph.microsoft.com/Calendars.ReadWrite" in form["scope"].split()
    connection = await world.seed.row(t.oauth_connections)
    assert (
        connection.refresh_token in microsoft.refresh_tokens
        and connection.refresh_token != teacher["refresh"]
    )
    assert microsoft.server.seen("POST", r"/v1\.0/me/events")[0].bearer == connection.access_token


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_invalid_grant_revokes_notifies_once_and_stops_calling(cal, world, google, microsoft, provider):
    fake = google if provider == "google" else microsoft
    teacher = await world.teacher(provider, token="expired", refresh_known=False)
    sid, other = await world.session(teacher), await world.session(teacher)
    bystander = await world.session(await world.teacher(provider))

    assert await sync(cal, sid) == counts(failed=1)

    connection = await world.seed.row(
        t.oauth_connections, t.oauth_connections.c.id == teacher["connection_id"]
    )
    assert connection.revoked_at is not None
    for session_id in (sid, other):
        row = await world.row(session_id)
        assert (row.sync_status, row.last_error) == ("failed", rules.RECONNECT_REQUIRED)
    assert (await world.row(bystander)).sync_status == "pending"
    note = await world.seed.row(t.notifications)
    assert (note.teacher_id, note.recipient_type, note.type) == (
        teacher["teacher_id"],
        "teacher",
        "calendar.reconnect_required",
    )

    calls = len(fake.server.requests)
    for session_id in (sid, other):
        await world.make_due(session_id)
    await world.change(other, status="cancelled_by_student")
    assert await sync_pending.run(cal, Sweep()) == counts(failed=2, synced=1)  # synced: the bystander

    [bystanders_call] = fake.server.requests[calls:]  # none for the revoked connection
    assert bystanders_call.bearer != teacher["access"]
    assert (await world.row(other)).last_error == rules.RECONNECT_REQUIRED
    assert await world.seed.count(t.notifications) == 1


# -- errors ----------------------------------------------------------------------------------------


async def test_google_429_with_retry_after_is_retried_no_sooner(cal, world, google):
    teacher = await world.teacher("google")
    sid = await world.session(teacher)
    google.server.fail(
        "POST",
        EVENTS,
        Response(429, google_error(429, "rateLimitExceeded", "Rate Limit Exceeded"), {"Retry-After": "600"}),
    )

    with pytest.raises(Transient) as raised:
        await sync(cal, sid)

    assert raised.value.retry_after_s >= 600
    row = await world.row(sid)
    assert (row.sync_status, row.attempts) == ("failed", 1)
    assert "429" in row.last_error and "rateLimitExceeded" in row.last_error
    async with world.seed.engine.connect() as conn:
        wait = (
            await conn.execute(
                select(t.session_calendar_sync.c.updated_at - func.now()).where(
                    t.session_calendar_sync.c.session_id == sid
                )
            )
        ).scalar_one()
    assert wait > timedelta(seconds=590)
    # not due yet: neither the sweep nor a runtime retry calls Google again
    assert await sync_pending.run(cal, Sweep()) == NOTHING
    assert await sync(cal, sid) == counts(skipped=1)
    assert len(google.server.seen("POST", EVENTS)) == 1

    await world.make_due(sid)
    assert (await sync_pending.run(cal, Sweep()))["synced"] == 1


@pytest.mark.parametrize(
    ("provider", "response"),
    [
        ("google", Response(403, google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded"))),
        ("microsoft", Response(429, graph_error("TooManyRequests", "Slow down"), {"Retry-After": "30"})),
        ("microsoft", Response(503, graph_error("ServiceNotAvailable", "Try later"))),
    ],
)
async def test_rate_limits_and_outages_are_retried(cal, world, provider, response, google, microsoft):
    fake = google if provider == "google" else microsoft
    sid = await world.session(await world.teacher(provider))
    fake.server.fail("POST", ".*/events", response)

    with pytest.raises(Transient):
        await sync(cal, sid)
    row = await world.row(sid)
    assert (row.sync_status, row.attempts) == ("failed", 1)


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_a_400_fails_without_retry_until_the_session_changes(cal, world, google, microsoft, provider):
    fake = google if provider == "google" else microsoft
    sid = await world.session(await world.teacher(provider))
    body = (
        google_error(400, "invalid", "Invalid attendee email.")
        if provider == "google"
        else graph_error("ErrorInvalidRecipients", "Invalid attendee email.")
    )
    fake.server.fail("POST", ".*/events", Response(400, body))

    assert await sync(cal, sid) == counts(failed=1)

    row = await world.row(sid)
    assert row.sync_status == "failed" and row.attempts == cal.settings.calendar_max_attempts
    assert "400" in row.last_error and "Invalid attendee email." in row.last_error
    await world.make_due(sid)
    assert await sync_pending.run(cal, Sweep()) == NOTHING
    assert len(fake.server.seen("POST", ".*/events")) == 1

    await world.change(sid)  # the teacher fixed the student's email
    assert await sync(cal, sid) == counts(synced=1)
    assert (await world.row(sid)).attempts == 0


@pytest.mark.parametrize("provider", ["zoom", "apple"])
async def test_zoom_and_apple_are_not_supported(cal, world, provider):
    sid = await world.session(await world.teacher(provider))

    assert await sync(cal, sid) == counts(failed=1)
    row = await world.row(sid)
    assert row.sync_status == "failed"
    assert (
        row.last_error
        == f"{provider.title()} is not supported for calendar sync: connect a Google or Microsoft calendar"
    )


# -- collapsing and concurrency --------------------------------------------------------------------


async def test_repeated_enqueues_collapse_into_one_queued_job(redis, world):
    sid = await world.session(await world.teacher("google"))
    producer = Producer(redis)
    ids = {
        await producer.enqueue("calendar.sync_session", {"session_id": str(sid)}, key=str(sid))
        for _ in range(3)
    }
    assert len(ids) == 1
    assert await redis.zcard(keys.QUEUE_CALENDAR) == 1


async def test_two_runs_for_one_session_never_sync_concurrently(cal, world, google):
    sid = await world.session(await world.teacher("google"))
    gate = google.server.gate("POST", EVENTS)

    first = asyncio.create_task(sync(cal, sid))
    await asyncio.to_thread(gate.entered.wait, 10)
    second = await sync(cal, sid)  # while the first is inside Google
    gate.release.set()

    assert second == counts(skipped=1)
    assert await first == counts(synced=1)
    assert len(google.server.seen("POST", EVENTS)) == 1


async def test_a_run_cancelled_mid_call_releases_the_lock_and_its_retry_makes_no_duplicate(
    cal, world, google
):
    """A worker timeout cancels the job while Google is still creating the event."""
    sid = await world.session(await world.teacher("google"))
    gate = google.server.gate("POST", EVENTS)
    first = asyncio.create_task(sync(cal, sid))
    await asyncio.to_thread(gate.entered.wait, 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.release.set()  # Google goes on to create the event; nobody stores its id
    await asyncio.to_thread(wait_until, lambda: len(google.events) == 1)

    assert await sync(cal, sid) == counts(synced=1)  # not "skipped": the lock was released

    assert len(google.live_events()) == 1
    assert [r.method for r in google.server.requests] == ["POST", "POST", "PATCH"]  # insert, 409, patch
    assert (await world.row(sid)).google_calendar_event_id == sid.hex


async def test_a_change_during_a_sync_is_synced_too(cal, world, google):
    sid = await world.session(await world.teacher("google"))
    session = await world.seed.row(t.class_sessions, t.class_sessions.c.id == sid)
    gate = google.server.gate("POST", EVENTS)

    first = asyncio.create_task(sync(cal, sid))
    await asyncio.to_thread(gate.entered.wait, 10)
    moved_start = session.starts_at + timedelta(hours=3)
    await world.change(sid, starts_at=moved_start, ends_at=session.ends_at + timedelta(hours=3))
    gate.release.set()

    assert await first == counts(synced=1)
    assert [r.method for r in google.server.requests] == ["POST", "PATCH"]
    event = google.events[("primary", sid.hex)]
    assert event["start"]["dateTime"] == moved_start.astimezone(OSLO).replace(tzinfo=None).isoformat()
    assert (await world.row(sid)).sync_status == "synced"


# -- the sweep -------------------------------------------------------------------------------------


async def test_sweep_follows_the_backoff_schedule_and_gives_up_after_max_attempts(cal, world, google):
    settings = cal.settings.model_copy(update={"calendar_max_attempts": 3, "calendar_backoff_base_s": 100})
    deps = Deps(settings=settings, pinteach=cal.pinteach, pickatale=cal.pickatale)
    sid = await world.session(await world.teacher("google"))
    outage = Response(503, google_error(503, "backendError", "Backend Error"))
    google.server.fail("POST", EVENTS, outage, times=3)

    async def retry_in():
        async with world.seed.engine.connect() as conn:
            return (
                await conn.execute(
                    select(t.session_calendar_sync.c.updated_at - func.now()).where(
                        t.session_calendar_sync.c.session_id == sid
                    )
                )
            ).scalar_one()

    assert await sync_pending.run(deps, Sweep()) == counts(retrying=1)
    assert (await world.row(sid)).attempts == 1
    assert timedelta(seconds=45) < await retry_in() <= timedelta(seconds=100)
    assert await sync_pending.run(deps, Sweep()) == NOTHING  # not due yet

    await world.make_due(sid)
    assert await sync_pending.run(deps, Sweep()) == counts(retrying=1)
    assert (await world.row(sid)).attempts == 2
    assert timedelta(seconds=95) < await retry_in() <= timedelta(seconds=200)

    await world.make_due(sid)
    assert await sync_pending.run(deps, Sweep()) == counts(failed=1)
    assert (await world.row(sid)).attempts == 3
    await world.make_due(sid)
    assert await sync_pending.run(deps, Sweep()) == NOTHING  # stays failed...
    assert len(google.server.seen("POST", EVENTS)) == 3

    await world.change(sid)  # ...until the session changes
    assert await sync_pending.run(deps, Sweep()) == counts(synced=1)


async def test_two_concurrent_sweeps_sync_every_session_once(cal, world, google, microsoft):
    settings = cal.settings.model_copy(update={"sweep_batch_size": 3, "calendar_sweep_concurrency": 2})
    deps = Deps(settings=settings, pinteach=cal.pinteach, pickatale=cal.pickatale)
    teachers = [
        await world.teacher("google"),
        await world.teacher("microsoft"),
        await world.teacher("google"),
    ]
    sessions = [await world.session(teachers[i % 3]) for i in range(12)]

    a, b = await asyncio.gather(sync_pending.run(deps, Sweep()), sync_pending.run(deps, Sweep()))

    assert a["synced"] + b["synced"] == 12
    assert len(google.live_events()) == 8 and len(microsoft.live_events()) == 4
    assert len(google.server.seen("POST", EVENTS)) == 8
    assert len(microsoft.server.seen("POST", r"/v1\.0/me/events")) == 4
    for sid in sessions:
        assert (await world.row(sid)).sync_status == "synced"


async def test_sweep_leaves_a_rate_limited_connection_alone_for_the_rest_of_the_run(cal, world, google):
    settings = cal.settings.model_copy(update={"calendar_sweep_concurrency": 1})
    deps = Deps(settings=settings, pinteach=cal.pinteach, pickatale=cal.pickatale)
    teacher = await world.teacher("google")
    sessions = [await world.session(teacher) for _ in range(3)]
    google.server.fail("POST", EVENTS, Response(429, google_error(429, "rateLimitExceeded", "Slow down")))

    assert await sync_pending.run(deps, Sweep()) == counts(retrying=1, skipped=2)

    assert len(google.server.seen("POST", EVENTS)) == 1
    statuses = sorted([(await world.row(s)).sync_status for s in sessions])
    assert statuses == ["failed", "pending", "pending"]


async def test_teacher_without_calendar_sync_gets_a_clear_error(cal, world):
    teacher = await world.teacher("google")
    async with world.seed.engine.begin() as conn:
        await conn.execute(update(t.integration_settings).values(enabled=False))
    sid = await world.session(teacher)

    assert await sync(cal, sid) == counts(failed=1)
    assert (await world.row(sid)).last_error == rules.NOT_ENABLED
