"""Authentication for every page and action: a token (Bearer header or the login form), or basic
credentials (the browser's prompt or the login form). A login sets a signed session cookie.

The signing key is derived from the credentials themselves, so several dashboard processes agree
on it without sharing a secret, and changing the credentials logs everyone out.
"""

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "jobfleet_session"
SESSION_TTL_S = 12 * 3600
PUBLIC_PATHS, PUBLIC_PREFIX = ("/login", "/login/link"), "/static/"


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.token or (self.user and self.password))

    @property
    def has_basic(self) -> bool:
        return bool(self.user and self.password)

    @property
    def key(self) -> bytes:
        material = "\0".join(["jobfleet-dashboard", self.token or "", self.user or "", self.password or ""])
        return hashlib.sha256(material.encode()).digest()

    def sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def check_token(self, token: str) -> bool:
        return bool(self.token) and hmac.compare_digest(token.encode(), self.token.encode())

    def check_basic(self, user: str, password: str) -> bool:
        if not self.has_basic:
            return False
        # both compared, always, so timing says nothing about which one was wrong
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        return ok_user and ok_password

    def new_session(self, now: float | None = None) -> str:
        value = f"{int((time.time() if now is None else now) + SESSION_TTL_S)}.{secrets.token_hex(8)}"
        return f"{value}.{self.sign('session|' + value)}"

    def session_identity(self, cookie: str, now: float | None = None) -> str | None:
        value, _, signature = cookie.rpartition(".")
        if not value or not hmac.compare_digest(signature, self.sign("session|" + value)):
            return None
        expires, _, nonce = value.partition(".")
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return f"session:{nonce}"

    def identify(self, request: Request) -> str | None:
        """Who made the request, or None when it carries no valid credentials."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.check_token(value.strip()):
            return "token"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return f"basic:{user}" if self.check_basic(user, password) else None
        if cookie := request.cookies.get(SESSION_COOKIE):
            return self.session_identity(cookie)
        return None

    def csrf_token(self, identity: str) -> str:
        return self.sign("csrf|" + identity)[:40]


def _refusal(request: Request, credentials: Credentials) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "")
    login = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if wants_html and request.method == "GET" and not credentials.has_basic:
        return RedirectResponse(login, status_code=303)
    headers = {
        "WWW-Authenticate": 'Basic realm="jobfleet"' if credentials.has_basic else 'Bearer realm="jobfleet"'
    }
    if wants_html:
        body = (
            f'<!doctype html><title>Sign in</title><p>Authentication required. <a href="{login}">Sign in</a>.'
        )
        return HTMLResponse(body, status_code=401, headers=headers)
    return PlainTextResponse("authentication required\n", status_code=401, headers=headers)


class AuthMiddleware:
    """Refuses any request without valid credentials, except the login page and static files."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        if not credentials.configured:
            raise ValueError("the dashboard needs a token or a user and password")
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        identity = self.credentials.identify(request)
        public = scope["path"] in PUBLIC_PATHS or scope["path"].startswith(PUBLIC_PREFIX)
        if identity is None and not public:
            await _refusal(request, self.credentials)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["identity"] = identity
        state["csrf"] = self.credentials.csrf_token(identity) if identity else ""
        await self.app(scope, receive, send)
