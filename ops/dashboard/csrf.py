"""Every action is a POST carrying the CSRF token of the signed-in identity, from our own origin."""

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request


def check_origin(request: Request) -> None:
    # Browsers send Origin on every POST; a page of another site posting here is refused outright.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin request refused")


async def checked_form(request: Request) -> FormData:
    check_origin(request)
    form = await request.form()
    sent = str(form.get("csrf", ""))
    expected = request.state.csrf
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form
