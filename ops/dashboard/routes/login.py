"""Sign in with the token or the user and password; sign out."""

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ops.dashboard import rendering
from ops.dashboard.auth import SESSION_COOKIE, SESSION_TTL_S, Credentials
from ops.dashboard.csrf import check_origin, checked_form


def _safe_next(value: str | None) -> str:
    # only a path on this site: never an open redirect
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login_form(request: Request) -> Response:
    credentials: Credentials = request.app.state.credentials
    return rendering.page(
        request,
        "login.html",
        next=_safe_next(request.query_params.get("next")),
        token_login=bool(credentials.token),
        basic_login=credentials.has_basic,
    )


async def login(request: Request) -> Response:
    check_origin(request)
    credentials: Credentials = request.app.state.credentials
    form = await request.form()
    token, user, password = (str(form.get(k, "")) for k in ("token", "user", "password"))
    ok = (token and credentials.check_token(token)) or (user and credentials.check_basic(user, password))
    if not ok:
        return rendering.page(
            request,
            "login.html",
            status_code=401,
            next=_safe_next(str(form.get("next", ""))),
            token_login=bool(credentials.token),
            basic_login=credentials.has_basic,
            error="Wrong token or credentials.",
        )
    return _signed_in(request, credentials, _safe_next(str(form.get("next", ""))))


async def login_link(request: Request) -> Response:
    """A one-time sign-in link: the first visit signs in, later ones are refused."""
    links: set[str] = request.app.state.login_links
    token = request.query_params.get("token", "")
    used = next((link for link in links if hmac.compare_digest(link.encode(), token.encode())), None)
    if used is None:
        credentials: Credentials = request.app.state.credentials
        return rendering.page(
            request,
            "login.html",
            status_code=401,
            next="/",
            token_login=bool(credentials.token),
            basic_login=credentials.has_basic,
            error="This sign-in link was already used or is not valid: sign in here, or restart the "
            "demo for a new link.",
        )
    links.discard(used)
    return _signed_in(request, request.app.state.credentials, "/")


def _signed_in(request: Request, credentials: Credentials, next_path: str) -> Response:
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        credentials.new_session(),
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/link", login_link, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
