"""Templates, their filters, and the redirect-with-a-message that ends every action."""

import base64
import binascii
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ops.masking import mask, mask_text

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
FLASH_COOKIE = "jobfleet_flash"
PAGE_SIZE = 50


def _when(epoch: float | int | None, unit: str = "s") -> str:
    if epoch is None:
        return "—"
    seconds = epoch / 1000 if unit == "ms" else epoch
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _masked_json(value: Any) -> str:
    return json.dumps(mask(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)


TEMPLATES.env.filters.update(
    when=_when,
    when_ms=lambda ms: _when(ms, "ms"),
    duration=_duration,
    masked_json=_masked_json,
    mask_text=mask_text,
    pct=lambda x: f"{x * 100:.1f} %",
    urlquote=lambda s: quote(str(s), safe=""),
)


def page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> Response:
    flash = _read_flash(request.cookies.get(FLASH_COOKIE))
    response = TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "csrf": getattr(request.state, "csrf", ""),
            "signed_in": bool(getattr(request.state, "identity", None)),
            "flash": flash,
            "now": datetime.now(UTC),
            **context,
        },
        status_code=status_code,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE)
    return response


def back(url: str, message: str) -> Response:
    """303 to ``url``, which shows ``message`` once."""
    response = RedirectResponse(url, status_code=303)
    encoded = base64.urlsafe_b64encode(message[:300].encode()).decode()
    response.set_cookie(FLASH_COOKIE, encoded, max_age=60, httponly=True, samesite="strict")
    return response


def _read_flash(cookie: str | None) -> str | None:
    if not cookie:
        return None
    try:
        return base64.urlsafe_b64decode(cookie.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def page_args(request: Request) -> tuple[int, int]:
    try:
        number = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        number = 1
    return number, (number - 1) * PAGE_SIZE
