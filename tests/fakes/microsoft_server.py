"""A fake of the Microsoft identity platform and Graph ``/me/events``, over HTTPS (msal insists).

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the metadata msal reads when an
  application is built; ``GET /common/discovery/instance`` for instance discovery.
- ``POST /{tenant}/oauth2/v2.0/token``: the refresh_token grant; it always rotates the refresh
  token, as Microsoft does; unknown ones get ``invalid_grant`` (AADSTS70000).
- Graph: create (``transactionId`` makes a repeated create return the event made first), get,
  patch, delete; errors as ``{"error": {"code", "message"}}``.
"""

import itertools
import ssl
from typing import Any

from tests.fakes.http import FakeServer, Request, Response

EVENT = r"/v1.0/me/events/(?P<event>[^/]+)"


def graph_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class FakeMicrosoft:
    def __init__(self, tls: ssl.SSLContext) -> None:
        self.server = FakeServer(tls)
        self.events: dict[str, dict[str, Any]] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self._n = itertools.count(1)
        s = self.server
        s.route(
            "GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration", self._openid_configuration
        )
        s.route("GET", r"/common/discovery/instance", self._instance_discovery)
        s.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self._token)
        s.route("POST", r"/v1\.0/me/events", self._create)
        s.route("POST", r"/v1\.0/me/calendars/(?P<calendar>[^/]+)/events", self._create)
        s.route("GET", EVENT, self._get)
        s.route("PATCH", EVENT, self._patch)
        s.route("DELETE", EVENT, self._delete)

    @property
    def authority_host(self) -> str:
        return self.server.url

    @property
    def graph_api_base(self) -> str:
        return f"{self.server.url}/v1.0"

    # -- identity platform ----------------------------------------------------------------------

    def _openid_configuration(self, request: Request) -> Response:
        base = f"{self.server.url}/{request.params['tenant']}"
        return Response(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            },
        )

    def _instance_discovery(self, request: Request) -> Response:
        return Response(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{self.server.url}/common/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [],
            },
        )

    def _token(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "refresh_token" or not form.get("client_secret"):
            return Response(400, {"error": "invalid_request", "error_description": "AADSTS900144"})
        if form.get("refresh_token") not in self.refresh_tokens:
            return Response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "AADSTS70000: The provided grant has expired or been revoked.",
                    "error_codes": [70000],
                },
            )
        self.refresh_tokens.discard(form["refresh_token"])
        access, refresh = f"EwB-fake-{next(self._n)}", f"M.C5-fake-{next(self._n)}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return Response(
            200,
            {
                "token_type": "Bearer",
                "scope": form.get("scope", ""),
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": access,
                "refresh_token": refresh,
            },
        )

    # -- Graph --------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        if request.bearer in self.access_tokens:
            return None
        return Response(
            401, graph_error("InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        )

    def live_events(self) -> list[dict[str, Any]]:
        return list(self.events.values())

    def _create(self, request: Request) -> Response:
        if refused := self._authorized(request):
            return refused
        body = request.json() or {}
        if not body.get("start") or not body.get("end"):
            return Response(400, graph_error("ErrorInvalidRequest", "Start and end are required."))
        transaction = body.get("transactionId")
        for event in self.events.values():
            if transaction and event.get("transactionId") == transaction:
                return Response(201, event)
        event_id = f"AAMkAGfake{next(self._n):06d}="
        event = {"id": event_id, "transactionId": transaction, "calendar": request.params.get("calendar")}
        self._apply(event, body)
        self.events[event_id] = event
        return Response(201, event)

    def _found(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        if refused := self._authorized(request):
            return None, refused
        event = self.events.get(request.params["event"])
        if event is None:
            return None, Response(
                404, graph_error("ErrorItemNotFound", "The specified object was not found.")
            )
        return event, None

    def _get(self, request: Request) -> Response:
        event, refused = self._found(request)
        return refused or Response(200, event)

    def _patch(self, request: Request) -> Response:
        event, refused = self._found(request)
        if refused:
            return refused
        assert event is not None
        self._apply(event, request.json() or {})
        return Response(200, event)

    def _delete(self, request: Request) -> Response:
        _, refused = self._found(request)
        if refused:
            return refused
        del self.events[request.params["event"]]
        return Response(204)

    def _apply(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("subject", "start", "end", "attendees"):
            if key in body:
                event[key] = body[key]
        if body.get("isOnlineMeeting") and not event.get("onlineMeeting"):
            event["isOnlineMeeting"] = True
            event["onlineMeetingProvider"] = "teamsForBusiness"
            event["onlineMeeting"] = {
                "joinUrl": f"https://teams.microsoft.com/l/meetup-join/fake-{event['id']}"
            }
