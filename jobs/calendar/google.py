"""Google Calendar v3 through google-api-python-client, tokens through google-auth.

Both libraries are synchronous (httplib2, requests): every call runs in a thread, with an Http
object of its own (httplib2 is not thread-safe). The service is built by ``jobs.google_api``
from the discovery document shipped inside googleapiclient, so building it costs no request.
"""

import asyncio
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
import requests
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError

from jobfleet.settings import Settings
from jobs import google_api
from jobs.calendar.provider import Placed, ProviderError, Revoked, Unauthorized
from jobs.calendar.rules import EventSpec, google_event_id
from jobs.calendar.transport import requests_session
from jobs.oauth_tokens import Tokens

GONE_STATUSES = (404, 410)  # 410: Google keeps deleted events around as "cancelled"


class GoogleCalendar:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def refresh(self, refresh_token: str) -> Tokens:
        return await asyncio.to_thread(self._refresh, refresh_token)

    async def upsert(self, access_token: str, event_id: str | None, event: EventSpec) -> Placed:
        return await asyncio.to_thread(self._upsert, access_token, event_id, event)

    async def delete(self, access_token: str, event_id: str, calendar_id: str) -> None:
        await asyncio.to_thread(self._delete, access_token, event_id, calendar_id)

    # -- in a worker thread ------------------------------------------------------------------

    def _refresh(self, refresh_token: str) -> Tokens:
        s = self._settings
        if not s.google_client_id or not s.google_client_secret:
            raise ProviderError(
                "Google client is not configured (JOBFLEET_GOOGLE_CLIENT_ID/SECRET)", transient=True
            )
        credentials = google_api.credentials(
            s, access_token=None, refresh_token=refresh_token, expires_at=None
        )
        session = requests_session(s.calendar_ca_file)
        try:
            credentials.refresh(Request(session))
        except google.auth.exceptions.RefreshError as e:
            data = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], dict) else {}
            if data.get("error") == "invalid_grant":
                raise Revoked("Google refused the refresh token (invalid_grant)") from None
            # Anything else (invalid_client, an outage) is ours or Google's to fix, not the teacher's.
            raise ProviderError(
                f"Google token endpoint refused the refresh ({data.get('error', 'no error code')})",
                transient=True,
            ) from None
        except (google.auth.exceptions.TransportError, requests.RequestException):
            raise ProviderError("could not reach Google's token endpoint", transient=True) from None
        finally:
            session.close()
        return google_api.tokens(credentials, refresh_token)

    def _events(self, access_token: str) -> Any:
        s = self._settings
        http = httplib2.Http(
            timeout=s.calendar_http_timeout_s,
            ca_certs=str(s.calendar_ca_file) if s.calendar_ca_file else None,
        )
        # No refresh inside the transport: a 401 comes back to us, so that a new token is stored.
        authed = google_auth_httplib2.AuthorizedHttp(
            Credentials(token=access_token), http=http, refresh_status_codes=()
        )
        return google_api.build("calendar", "v3", authed, s.google_api_endpoint).events()

    def _upsert(self, access_token: str, event_id: str | None, event: EventSpec) -> Placed:
        events = self._events(access_token)
        body = _body(event)
        params: dict[str, Any] = {"calendarId": event.calendar_id}
        if event.online_meeting:
            params["conferenceDataVersion"] = 1
        if event_id:
            try:
                return _placed(_call(events.patch(eventId=event_id, body=body, **params)))
            except ProviderError as e:
                if e.status not in GONE_STATUSES:
                    raise
        own_id = google_event_id(event.session_id)
        try:
            created = _call(events.insert(body={**body, "id": own_id}, **params))
        except ProviderError as e:
            if e.status != 409:
                raise
            # The id is the session's own: the event exists (an earlier run created it, or it was
            # deleted and lingers as cancelled). Patching brings it to the session's state.
            created = _call(events.patch(eventId=own_id, body=body, **params))
        return _placed(created)

    def _delete(self, access_token: str, event_id: str, calendar_id: str) -> None:
        try:
            _call(self._events(access_token).delete(calendarId=calendar_id, eventId=event_id))
        except ProviderError as e:
            if e.status not in GONE_STATUSES:
                raise


def _body(event: EventSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": event.title,
        "start": {"dateTime": event.starts_at.isoformat(), "timeZone": event.timezone},
        "end": {"dateTime": event.ends_at.isoformat(), "timeZone": event.timezone},
        "status": "confirmed",  # restores an event deleted earlier under the session's id
        "extendedProperties": {"private": {"pinteachSessionId": str(event.session_id)}},
    }
    if event.attendee:
        body["attendees"] = [{"email": event.attendee.email, "displayName": event.attendee.name}]
    if event.online_meeting:
        # The same requestId on every call: Google creates the conference once.
        body["conferenceData"] = {
            "createRequest": {
                "requestId": f"pinteach-{event.session_id.hex}",
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        }
    return body


def _placed(resource: dict[str, Any]) -> Placed:
    link = resource.get("hangoutLink")
    if not link:
        entry_points = (resource.get("conferenceData") or {}).get("entryPoints") or []
        link = next((p.get("uri") for p in entry_points if p.get("entryPointType") == "video"), None)
    return Placed(resource["id"], link)


def _call(request: Any) -> dict[str, Any]:
    try:
        return request.execute() or {}
    except HttpError as e:
        raise _error(e) from None
    except (httplib2.HttpLib2Error, OSError):
        raise ProviderError("could not reach Google Calendar", transient=True) from None


def _error(e: HttpError) -> ProviderError:
    f = google_api.failure(e)
    if f.status == 401:
        return Unauthorized("Google Calendar refused the access token (401)")
    text = f"Google Calendar answered {f.status} {f.reason}".rstrip()
    if f.message:
        text += f": {f.message[:300]}"
    return ProviderError(text, transient=f.transient, status=f.status, retry_after_s=f.retry_after_s)
