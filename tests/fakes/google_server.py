"""A fake of Google's OAuth token endpoint and Calendar v3 events, speaking their wire format.

- ``POST /token``: the refresh_token grant; unknown or revoked refresh tokens get ``invalid_grant``.
- ``/calendar/v3/calendars/{calendarId}/events[/{eventId}]``: insert (client ids in base32hex, 409
  ``duplicate`` when taken), get, patch (merge; attendees keep their responses), delete (deleted
  events stay as ``cancelled``: get still finds them, delete again gives 410). Conference data is
  only honoured with ``conferenceDataVersion=1``. Errors carry ``error.errors[].reason``.
"""

import itertools
import re
from datetime import UTC, datetime
from typing import Any

from tests.fakes.http import FakeServer, Request, Response

EVENTS = r"/calendar/v3/calendars/(?P<calendar>[^/]+)/events"
EVENT = EVENTS + r"/(?P<event>[^/]+)"
BASE32HEX_ID = re.compile(r"^[a-v0-9]{5,1024}$")


def google_error(status: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }


class FakeGoogle:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.rotate_refresh_tokens = False
        self._n = itertools.count(1)
        s = self.server
        s.route("POST", "/token", self._token)
        s.route("POST", EVENTS, self._insert)
        s.route("GET", EVENT, self._get)
        s.route("PATCH", EVENT, self._patch)
        s.route("DELETE", EVENT, self._delete)

    @property
    def api_root(self) -> str:
        """What JOBFLEET_GOOGLE_API_ENDPOINT holds: the root all of Google's APIs live under."""
        return f"{self.server.url}/"

    @property
    def token_uri(self) -> str:
        return f"{self.server.url}/token"

    def live_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["status"] != "cancelled"]

    # -- OAuth ---------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "refresh_token" or not form.get("client_id"):
            return Response(400, {"error": "invalid_request", "error_description": "Bad Request"})
        if form.get("refresh_token") not in self.refresh_tokens:
            return Response(
                400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            )
        access = f"ya29.fake-{next(self._n)}"
        self.access_tokens.add(access)
        body = {"access_token": access, "expires_in": 3599, "token_type": "Bearer", "scope": "calendar"}
        if self.rotate_refresh_tokens:
            self.refresh_tokens.discard(form["refresh_token"])
            body["refresh_token"] = f"1//fake-rotated-{next(self._n)}"
            self.refresh_tokens.add(body["refresh_token"])
        return Response(200, body)

    # -- Calendar --------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        if request.bearer in self.access_tokens:
            return None
        return Response(
            401,
            google_error(401, "authError", "Invalid Credentials"),
            {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )

    def _insert(self, request: Request) -> Response:
        if refused := self._authorized(request):
            return refused
        body = request.json() or {}
        calendar = request.params["calendar"]
        event_id = body.get("id") or f"gen{next(self._n):08d}"
        if not BASE32HEX_ID.match(event_id):
            return Response(400, google_error(400, "invalid", "Invalid resource id value."))
        if (calendar, event_id) in self.events:
            return Response(409, google_error(409, "duplicate", "The requested identifier already exists."))
        if not (body.get("start") or {}).get("dateTime") or not (body.get("end") or {}).get("dateTime"):
            return Response(400, google_error(400, "required", "Missing time."))
        now = _now()
        event = {
            "kind": "calendar#event",
            "id": event_id,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": now,
            "updated": now,
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
        }
        self._apply(event, body, request)
        self.events[(calendar, event_id)] = event
        return Response(200, event)

    def _found(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        if refused := self._authorized(request):
            return None, refused
        event = self.events.get((request.params["calendar"], request.params["event"]))
        if event is None:
            return None, Response(404, google_error(404, "notFound", "Not Found"))
        return event, None

    def _get(self, request: Request) -> Response:
        event, refused = self._found(request)
        return refused or Response(200, event)

    def _patch(self, request: Request) -> Response:
        event, refused = self._found(request)
        if refused:
            return refused
        assert event is not None
        self._apply(event, request.json() or {}, request)
        event["sequence"] += 1
        event["updated"] = _now()
        return Response(200, event)

    def _delete(self, request: Request) -> Response:
        event, refused = self._found(request)
        if refused:
            return refused
        assert event is not None
        if event["status"] == "cancelled":
            return Response(410, google_error(410, "deleted", "Resource has been deleted"))
        event["status"] = "cancelled"
        return Response(204)

    def _apply(self, event: dict[str, Any], body: dict[str, Any], request: Request) -> None:
        for key in ("summary", "start", "end", "status", "extendedProperties", "description"):
            if key in body:
                event[key] = body[key]
        if "attendees" in body:
            responses = {a["email"]: a.get("responseStatus") for a in event.get("attendees", [])}
            event["attendees"] = [
                {**a, "responseStatus": responses.get(a["email"]) or "needsAction"} for a in body["attendees"]
            ]
        create = (body.get("conferenceData") or {}).get("createRequest")
        if create and request.query.get("conferenceDataVersion") == "1" and "conferenceData" not in event:
            code = f"abc-{next(self._n):04d}-xyz"
            uri = f"https://meet.google.com/{code}"
            event["conferenceData"] = {
                "createRequest": {**create, "status": {"statusCode": "success"}},
                "entryPoints": [{"entryPointType": "video", "uri": uri, "label": f"meet.google.com/{code}"}],
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
                "conferenceId": code,
            }
            event["hangoutLink"] = uri


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
