"""A tiny HTTP(S) server on 127.0.0.1 for fakes of third-party APIs, run in a thread.

Routes are (method, path regex) -> handler. Tests can script failures ahead of the real handler
(``fail``), after it (``fail_after``: the change happens but the answer is lost, as when a worker
dies mid-call), hold a request at a gate until the test releases it, and read every request seen.
"""

import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list: JSON; str: as is; None: empty
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


@dataclass
class _Script:
    method: str
    pattern: re.Pattern[str]
    response: Response
    after: bool
    times: int


@dataclass
class Gate:
    """Holds the first matching request until ``release`` is set."""

    method: str
    pattern: re.Pattern[str]
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class FakeServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self._scripts: list[_Script] = []
        self._gates: list[Gate] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def fail(self, method: str, pattern: str, response: Response, *, times: int = 1) -> None:
        self._scripts.append(_Script(method, re.compile(pattern + "$"), response, False, times))

    def fail_after(self, method: str, pattern: str, response: Response, *, times: int = 1) -> None:
        self._scripts.append(_Script(method, re.compile(pattern + "$"), response, True, times))

    def gate(self, method: str, pattern: str) -> Gate:
        gate = Gate(method, re.compile(pattern + "$"))
        self._gates.append(gate)
        return gate

    def seen(self, method: str, pattern: str = ".*") -> list[Request]:
        regex = re.compile(pattern + "$")
        return [r for r in self.requests if r.method == method and regex.match(r.path)]

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        for gate in self._gates:
            gate.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _take_script(self, request: Request, after: bool) -> Response | None:
        with self._lock:
            for script in self._scripts:
                if (
                    script.after == after
                    and script.times > 0
                    and script.method == request.method
                    and script.pattern.match(request.path)
                ):
                    script.times -= 1
                    return script.response
        return None

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            gate = next(
                (
                    g
                    for g in self._gates
                    if not g.entered.is_set() and g.method == request.method and g.pattern.match(request.path)
                ),
                None,
            )
            if gate:
                gate.entered.set()
        if gate:
            gate.release.wait(10)
        scripted = self._take_script(request, after=False)
        if scripted:
            return scripted
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                request.params = {k: unquote(v) for k, v in match.groupdict().items()}
                with self._lock:
                    response = handler(request)
                return self._take_script(request, after=True) or response
        return Response(404, {"error": {"code": 404, "message": f"no fake route for {request.path}"}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                response = server._dispatch(request)
                if isinstance(response.body, dict | list):
                    payload = json.dumps(response.body).encode()
                    content_type = "application/json; charset=UTF-8"
                else:
                    payload = (response.body or "").encode()
                    content_type = "text/plain"
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler
