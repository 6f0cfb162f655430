"""What Google Calendar and Google Drive share: where the APIs live, how their clients are built,
the teacher's credentials and tokens, and what an error from any of them means.

``JOBFLEET_GOOGLE_API_ENDPOINT`` is one root URL for all of Google's APIs (``https://www.googleapis.com/``
when unset); each API lives under its discovery document's ``servicePath`` below it
(``calendar/v3/``, ``drive/v3/``), as on Google's own host. The clients are built from the discovery
documents google-api-python-client ships, so building one costs no request.
"""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from jobfleet.settings import Settings
from jobs.errors import retry_after_s
from jobs.oauth_tokens import Tokens


class MissingDiscoveryDocument(LookupError):
    pass


@functools.cache
def discovery_document(api: str, version: str) -> dict[str, Any]:
    document = get_static_doc(api, version)
    if document is None:
        raise MissingDiscoveryDocument(
            f"google-api-python-client ships no {api} {version} discovery document"
        )
    return json.loads(document)


def api_endpoint(root: str, document: dict[str, Any]) -> str:
    """The API's base URL under ``root``: ``http://host:port/`` and Calendar give
    ``http://host:port/calendar/v3/``; a path in ``root`` (a proxy's prefix) is kept."""
    return f"{root.rstrip('/')}/{document['servicePath'].lstrip('/')}"


def build(api: str, version: str, http: Any, root: str | None) -> Any:
    """A client of one API, its requests sent through ``http`` (an authorised httplib2 object)."""
    document = discovery_document(api, version)
    options = {"api_endpoint": api_endpoint(root, document)} if root else None
    return build_from_document(document, http=http, client_options=options)


# Google answers 403 for per-user rate limits too: those are worth retrying, other 403s are not.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"})


@dataclass(frozen=True, slots=True)
class Failure:
    """What an HttpError from any Google API says, safe to log: no token, no response body."""

    status: int
    reason: str  # Google's reason code, "" when it gave none
    message: str
    transient: bool
    retry_after_s: float | None


def failure(e: HttpError) -> Failure:
    status = int(e.resp.status)
    reason, message = "", ""
    try:
        error = json.loads(e.content)["error"]
        reason = str((error.get("errors") or [{}])[0].get("reason", ""))
        message = str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return Failure(
        status=status,
        reason=reason,
        message=message,
        transient=status == 429 or status >= 500 or reason in RATE_LIMIT_REASONS,
        retry_after_s=retry_after_s(e.resp.get("retry-after")),
    )


def credentials(
    settings: Settings, *, access_token: str | None, refresh_token: str | None, expires_at: datetime | None
) -> Credentials:
    """google-auth credentials of a teacher's connection, refreshable against the token URI."""
    secret = settings.google_client_secret
    return Credentials(
        token=access_token,
        refresh_token=refresh_token,
        token_uri=settings.google_token_uri,
        client_id=settings.google_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        # google-auth compares expiry with a naive UTC clock
        expiry=expires_at.astimezone(UTC).replace(tzinfo=None) if expires_at else None,
    )


def tokens(credentials: Credentials, refresh_token: str | None) -> Tokens:
    """The tokens google-auth holds after a refresh; the refresh token only if Google rotated it."""
    expiry = credentials.expiry  # naive UTC, as google-auth keeps it
    # Google always sends expires_in; without it, assume the usual hour, minus a margin
    expires_at = expiry.replace(tzinfo=UTC) if expiry else datetime.now(UTC) + timedelta(minutes=50)
    rotated = credentials.refresh_token if credentials.refresh_token != refresh_token else None
    return Tokens(credentials.token, expires_at, rotated)
