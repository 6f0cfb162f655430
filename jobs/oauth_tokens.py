"""The access tokens a provider issued for a teacher's OAuth connection, and their one UPDATE."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.pinteach import oauth_connections


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_at: datetime
    refresh_token: str | None  # set only when the provider rotated it

    def __repr__(self) -> str:  # tokens must not reach a log or a traceback
        return f"Tokens(expires_at={self.expires_at.isoformat()})"


async def save(conn: AsyncConnection, connection_id: UUID, tokens: Tokens) -> None:
    """Keep a refreshed token, so that the next job does not refresh again (in the caller's
    transaction)."""
    values: dict[str, Any] = {
        "access_token": tokens.access_token,
        "token_expires_at": tokens.expires_at,
        "updated_at": func.now(),
    }
    if tokens.refresh_token:
        values["refresh_token"] = tokens.refresh_token
    await conn.execute(
        update(oauth_connections).where(oauth_connections.c.id == connection_id).values(values)
    )
