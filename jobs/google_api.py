"""What Google Calendar and Google Drive share: where the APIs live and how their clients are built.

``JOBFLEET_GOOGLE_API_ENDPOINT`` is one root URL for all of Google's APIs (``https://www.googleapis.com/``
when unset); each API lives under its discovery document's ``servicePath`` below it
(``calendar/v3/``, ``drive/v3/``), as on Google's own host. The clients are built from the discovery
documents google-api-python-client ships, so building one costs no request.
"""

import functools
import json
from typing import Any

from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc


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
