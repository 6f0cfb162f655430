"""Google Drive v3 for the erasure: delete a student's folder with the teacher's Google connection.

The client is google-api-python-client built from the Drive v3 discovery document it ships (no
discovery round trip), authorised by google-auth, which refreshes an expired access token against
``settings.google_token_uri``. Both are synchronous, so every call runs in a worker thread.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError
from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import integration_settings, oauth_connections
from jobfleet.settings import Settings
from jobs import google_api, oauth_tokens
from jobs.errors import JobError, Permanent, Transient


@dataclass(frozen=True, slots=True)
class GoogleConnection:
    id: UUID
    access_token: str | None
    refresh_token: str | None
    token_expires_at: datetime | None


async def drive_connection(conn: AsyncConnection, teacher_id: UUID) -> GoogleConnection | None:
    """The Google connection behind the teacher's enabled drive integration, if there is one."""
    config = (
        await conn.execute(
            select(integration_settings.c.config).where(
                integration_settings.c.teacher_id == teacher_id,
                integration_settings.c.integration_type == "drive",
                integration_settings.c.enabled.is_(True),
            )
        )
    ).scalar_one_or_none()
    if config is None:
        return None
    query = select(
        oauth_connections.c.id,
        oauth_connections.c.access_token,
        oauth_connections.c.refresh_token,
        oauth_connections.c.token_expires_at,
    ).where(
        oauth_connections.c.teacher_id == teacher_id,
        oauth_connections.c.provider == "google",
        oauth_connections.c.revoked_at.is_(None),
    )
    if config.get("connectionId"):
        # compared as text: a malformed id in the config finds nothing instead of failing the cast
        query = query.where(cast(oauth_connections.c.id, String) == str(config["connectionId"]))
    row = (await conn.execute(query.order_by(oauth_connections.c.updated_at.desc()).limit(1))).first()
    return GoogleConnection(*row) if row else None


async def delete_folder(
    conn: AsyncConnection, settings: Settings, connection: GoogleConnection, folder_id: str
) -> bool:
    """Delete the folder (and what the teacher owns in it): True if deleted now, False if already gone.

    Raises Transient for what may pass (5xx, rate limits, network), Permanent for what will not.
    """
    credentials = google_api.credentials(
        settings,
        access_token=connection.access_token,
        refresh_token=connection.refresh_token,
        expires_at=connection.token_expires_at,
    )
    try:
        deleted = await asyncio.to_thread(_delete, settings, credentials, folder_id)
    except HttpError as e:
        raise _refused(e) from None
    except RefreshError as e:
        kind = Transient if e.retryable else Permanent
        raise kind(f"Google refused to refresh the teacher's access token: {e.args[0]}") from None
    except (TransportError, httplib2.HttpLib2Error, OSError) as e:
        raise Transient(f"Google Drive unreachable: {type(e).__name__}: {e}") from None
    if credentials.token != connection.access_token:
        await oauth_tokens.save(conn, connection.id, google_api.tokens(credentials, connection.refresh_token))
    return deleted


def _delete(settings: Settings, credentials: Credentials, folder_id: str) -> bool:
    http = google_auth_httplib2.AuthorizedHttp(
        credentials, http=httplib2.Http(timeout=settings.drive_timeout_s)
    )
    try:
        service = google_api.build("drive", "v3", http, settings.google_api_endpoint)
    except google_api.MissingDiscoveryDocument as e:
        raise Permanent(str(e)) from None
    try:
        service.files().delete(fileId=folder_id, supportsAllDrives=True).execute()
    except HttpError as e:
        if e.resp.status == 404:
            return False
        raise
    return True


def _refused(e: HttpError) -> JobError:
    f = google_api.failure(e)
    message = f"Google Drive answered {f.status} ({f.reason or 'no reason given'}) to deleting the folder"
    return Transient(message, retry_after_s=f.retry_after_s) if f.transient else Permanent(message)
