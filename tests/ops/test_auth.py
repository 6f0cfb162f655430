"""Every page and action requires authentication; every action requires the CSRF token."""

import base64

import pytest

from jobfleet import keys
from ops.dashboard.auth import Credentials
from ops.dashboard.serve import is_loopback
from tests.ops.support import AUTH, TOKEN, csrf_of, dashboard
from workers.failures import FailureRecord

PAGES = [
    "/",
    "/jobs",
    "/jobs/some-id",
    "/failed",
    "/running",
    "/schedules",
    "/workers",
    "/health",
    "/metrics",
]
ACTIONS = [
    "/jobs/j1/abort",
    "/jobs/j1/cancel",
    "/failed/j1/retry",
    "/failed/j1/delete",
    "/failed/retry-all",
    "/failed/delete-all",
    "/schedules/sessions.auto_complete/run",
    "/logout",
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def record_failure(redis, job_id="j1"):
    await FailureRecord(redis).record(
        job_id=job_id, job="fleet.noop", queue=keys.QUEUE_DEFAULT, payload={}, tries=1, error="boom"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        basic("ops", "wrong"),
        basic("", ""),
        {"Authorization": "Basic !!"},
    ],
    ids=["none", "wrong-token", "wrong-password", "empty-basic", "garbage"],
)
async def test_no_page_or_action_without_valid_credentials(settings, redis, headers):
    await record_failure(redis)
    async with dashboard(settings, auth=False) as client:
        for path in PAGES:
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == 'Basic realm="jobfleet"'
            assert "csrf" not in response.text
        for path in ACTIONS:
            assert (await client.post(path, headers=headers)).status_code == 401, path
    assert await FailureRecord(redis).count() == 1, "nothing was done"


async def test_a_browser_without_credentials_is_sent_to_sign_in_when_only_a_token_is_set(settings, redis):
    async with dashboard(settings, credentials=Credentials(token=TOKEN), auth=False) as client:
        response = await client.get("/failed?page=2", headers={"Accept": "text/html"})
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/failed%3Fpage%3D2"
        assert (await client.get("/metrics")).status_code == 401


async def test_token_and_basic_credentials_open_every_page(settings, redis, pg, mysql):
    async with dashboard(settings, auth=False) as client:
        for headers in (AUTH, basic("ops", "correct horse")):
            for path in PAGES:
                if path == "/jobs/some-id":
                    continue
                assert (await client.get(path, headers=headers)).status_code == 200, path


async def test_signing_in_with_the_form_sets_a_session_cookie(settings, redis):
    async with dashboard(settings, auth=False) as client:
        login = await client.get("/login?next=/failed")
        assert login.status_code == 200 and 'name="token"' in login.text and 'name="user"' in login.text

        wrong = await client.post("/login", data={"token": "nope", "next": "/failed"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text
        assert "jobfleet_session" not in client.cookies

        ok = await client.post("/login", data={"user": "ops", "password": "correct horse", "next": "/failed"})
        assert ok.status_code == 303 and ok.headers["location"] == "/failed"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert (await client.get("/failed")).status_code == 200

        # an open redirect is refused: only paths on this site
        evil = await client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert evil.headers["location"] == "/"

        page = await client.get("/workers")
        assert (await client.post("/logout", data={"csrf": csrf_of(page.text)})).status_code == 303
        client.cookies.clear()
        assert (await client.get("/failed")).status_code == 401


async def test_a_forged_or_expired_session_cookie_is_refused(settings, redis):
    credentials = Credentials(token=TOKEN)
    expired = credentials.new_session(now=0)
    other = Credentials(token="another-token").new_session()
    async with dashboard(settings, credentials=credentials, auth=False) as client:
        for cookie in (expired, other, "123.abc.def", "garbage"):
            client.cookies.set("jobfleet_session", cookie)
            assert (await client.get("/workers")).status_code == 401


@pytest.mark.parametrize("action", ACTIONS)
async def test_actions_refuse_a_missing_or_wrong_csrf_token(settings, redis, action):
    await record_failure(redis)
    async with dashboard(settings) as client:
        token = csrf_of((await client.get("/workers")).text)
        assert (await client.post(action)).status_code == 403
        response = await client.post(action, data={"csrf": "0" * 40})
        assert response.status_code == 403 and "CSRF" in response.text
        # the right token, from another site's page
        cross = await client.post(action, data={"csrf": token}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.text
    assert await FailureRecord(redis).count() == 1
    assert await redis.zcard(keys.QUEUE_SWEEPS) == 0


async def test_the_csrf_token_belongs_to_the_identity(settings, redis):
    await record_failure(redis)
    async with dashboard(settings, auth=False) as client:
        token_page = await client.get("/workers", headers=AUTH)
        basic_page = await client.get("/workers", headers=basic("ops", "correct horse"))
        assert csrf_of(token_page.text) != csrf_of(basic_page.text)
        refused = await client.post(
            "/failed/j1/delete",
            data={"csrf": csrf_of(token_page.text)},
            headers=basic("ops", "correct horse"),
        )
        assert refused.status_code == 403


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")
