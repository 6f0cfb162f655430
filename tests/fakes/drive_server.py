"""Google's OAuth token endpoint and Drive v3's files.delete, served on 127.0.0.1 for the tests.

Speaks the wire format the real client libraries expect: ``POST /token`` (refresh_token grant,
form-encoded, JSON answer or ``invalid_grant``), ``DELETE /drive/v3/files/{fileId}`` (204 with no
body; Google's JSON error body with ``error.errors[].reason`` otherwise; 401 for a bad token, which
makes google-auth refresh and retry).
"""

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FILES_PREFIX = "/drive/v3/files/"


@dataclass
class DriveState:
    folders: set[str] = field(default_factory=set)
    # folder id -> (HTTP status, Google error reason) answered instead of deleting it
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    issued: itertools.count = field(default_factory=lambda: itertools.count(1))


def google_error(status: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


class DriveHandler(BaseHTTPRequestHandler):
    state: DriveState  # set on the subclass a server is built with

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(
        self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self.state.requests.append(("POST", path))
        if path != "/token":
            return self._send(404, google_error(404, "notFound", "Not Found"))
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") not in self.state.refresh_tokens
        ):
            return self._send(
                400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            )
        token = f"ya29.fresh-{next(self.state.issued)}"
        self.state.access_tokens.add(token)
        self._send(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/drive.file",
                "token_type": "Bearer",
            },
        )

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        self.state.requests.append(("DELETE", path))
        if not path.startswith(FILES_PREFIX):
            return self._send(404, google_error(404, "notFound", "Not Found"))
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.state.access_tokens:
            return self._send(
                401,
                google_error(401, "authError", "Invalid Credentials"),
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        file_id = unquote(path.removeprefix(FILES_PREFIX))
        if file_id in self.state.failures:
            status, reason = self.state.failures[file_id]
            return self._send(status, google_error(status, reason, f"Refused for {reason}"))
        if file_id not in self.state.folders:
            return self._send(404, google_error(404, "notFound", f"File not found: {file_id}."))
        self.state.folders.discard(file_id)
        self._send(204)


class DriveServer:
    def __init__(self) -> None:
        self.state = DriveState()
        handler = type("BoundDriveHandler", (DriveHandler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    def start(self) -> "DriveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
