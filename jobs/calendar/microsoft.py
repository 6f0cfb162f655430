"""Outlook calendars: tokens through msal, events through Microsoft Graph ``/me/events`` over httpx.

msal is synchronous (requests) and fetches the authority's metadata when the application is built:
both run in a thread. A fresh application per refresh keeps msal's throttling cache from one
teacher's failures away from another's; refreshes are rare (about hourly per teacher).
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import msal
import requests

from jobfleet.settings import Settings
from jobs.calendar.provider import Placed, ProviderError, Revoked, Unauthorized, is_transient_status
from jobs.calendar.rules import EventSpec
from jobs.calendar.transport import requests_session, ssl_context
from jobs.errors import retry_after_s
from jobs.oauth_tokens import Tokens

SCOPES = ["https://graph.microsoft.com/Calendars.ReadWrite"]
# The refresh token itself is dead: only the teacher can fix it by signing in again.
REVOKED_ERRORS = frozenset({"invalid_grant", "interaction_required"})


class MicrosoftCalendar:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._verify = ssl_context(settings.calendar_ca_file)

    async def refresh(self, refresh_token: str) -> Tokens:
        return await asyncio.to_thread(self._refresh, refresh_token)

    async def upsert(self, access_token: str, event_id: str | None, event: EventSpec) -> Placed:
        body = _body(event)
        async with self._graph(access_token) as graph:
            if event_id:
                try:
                    return _placed(await _send(graph, "PATCH", f"/me/events/{quote(event_id)}", body))
                except ProviderError as e:
                    if e.status != 404:
                        raise
            # transactionId: Graph answers a repeated create with the event it already made.
            created = await _send(
                graph,
                "POST",
                _events_path(event.calendar_id),
                {**body, "transactionId": str(event.session_id)},
            )
            return _placed(created)

    async def delete(self, access_token: str, event_id: str, calendar_id: str) -> None:
        async with self._graph(access_token) as graph:
            try:
                await _send(graph, "DELETE", f"/me/events/{quote(event_id)}", None)
            except ProviderError as e:
                if e.status not in (404, 410):
                    raise

    def _graph(self, access_token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._settings.graph_api_base.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=self._settings.calendar_http_timeout_s,
            verify=self._verify,
        )

    # -- in a worker thread ------------------------------------------------------------------

    def _refresh(self, refresh_token: str) -> Tokens:
        s = self._settings
        if not s.microsoft_client_id or not s.microsoft_client_secret:
            raise ProviderError(
                "Microsoft client is not configured (JOBFLEET_MICROSOFT_CLIENT_ID/SECRET)", transient=True
            )
        session = requests_session(s.calendar_ca_file)
        try:
            app = msal.ConfidentialClientApplication(
                s.microsoft_client_id,
                client_credential=s.microsoft_client_secret.get_secret_value(),
                authority=f"{s.microsoft_authority_host.rstrip('/')}/{s.microsoft_tenant}",
                # The authority host is configured on purpose; there is nothing to discover.
                instance_discovery=False,
                http_client=session,
                timeout=s.calendar_http_timeout_s,
            )
            result = app.acquire_token_by_refresh_token(refresh_token, scopes=SCOPES)
        except (requests.RequestException, ValueError):
            # msal raises ValueError when the authority's metadata cannot be read.
            raise ProviderError("could not reach the Microsoft identity platform", transient=True) from None
        finally:
            session.close()
        error = result.get("error")
        if error in REVOKED_ERRORS:
            raise Revoked(f"Microsoft refused the refresh token ({error})")
        if error or "access_token" not in result:
            raise ProviderError(
                f"Microsoft token endpoint refused the refresh ({error or 'no access token'})",
                transient=True,  # invalid_client, an outage: ours or Microsoft's to fix
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in", 3600)))
        rotated = result.get("refresh_token")
        return Tokens(result["access_token"], expires_at, rotated if rotated != refresh_token else None)


def _events_path(calendar_id: str) -> str:
    return "/me/events" if calendar_id == "primary" else f"/me/calendars/{quote(calendar_id)}/events"


def _body(event: EventSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": event.title,
        "start": {"dateTime": event.starts_at.isoformat(), "timeZone": event.timezone},
        "end": {"dateTime": event.ends_at.isoformat(), "timeZone": event.timezone},
    }
    if event.attendee:
        body["attendees"] = [
            {
                "emailAddress": {"address": event.attendee.email, "name": event.attendee.name},
                "type": "required",
            }
        ]
    if event.online_meeting:
        body["isOnlineMeeting"] = True
    return body


def _placed(resource: dict[str, Any]) -> Placed:
    meeting = resource.get("onlineMeeting") or {}
    return Placed(resource["id"], meeting.get("joinUrl") or resource.get("onlineMeetingUrl"))


async def _send(
    graph: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> dict[str, Any]:
    try:
        response = await graph.request(method, path, json=body)
    except httpx.TransportError:
        raise ProviderError("could not reach Microsoft Graph", transient=True) from None
    if response.is_success:
        return response.json() if response.content else {}
    status = response.status_code
    if status == 401:
        raise Unauthorized("Microsoft Graph refused the access token (401)")
    code, message = _error(response)
    text = f"Microsoft Graph answered {status} {code}".rstrip()
    if message:
        text += f": {message[:300]}"
    raise ProviderError(
        text,
        transient=is_transient_status(status),
        status=status,
        retry_after_s=retry_after_s(response.headers.get("retry-after")),
    )


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", ""
