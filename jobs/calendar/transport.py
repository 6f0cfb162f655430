"""HTTP sessions for the provider libraries that trust the configured CA bundle, if any."""

import ssl
from pathlib import Path
from typing import Any

import requests


class _Session(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE override a session's ``verify``; an explicit CA file must win."""

    def __init__(self, ca_file: Path) -> None:
        super().__init__()
        self._ca_file = str(ca_file)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self._ca_file)
        return super().request(method, url, *args, **kwargs)


def requests_session(ca_file: Path | None) -> requests.Session:
    return _Session(ca_file) if ca_file else requests.Session()


def ssl_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
