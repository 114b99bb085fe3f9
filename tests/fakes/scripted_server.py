"""A JSON HTTP server on 127.0.0.1 that replays scripted replies and records each request."""
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted reply: an HTTP status, extra headers, a JSON body and an optional delay."""

    status: int = 200
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class ScriptedJsonServer:
    """Serve ``POST path`` from a script; when the script is empty, reply with ``default``.

    Subclasses set ``path`` and ``base_path`` and build the default reply and the body of a 404
    in their provider's wire format.
    """

    path = ""  # The one route served, without a query string.
    base_path = ""  # What a client's base URL adds after host and port.

    def __init__(self, default: Reply):
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.default = default
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def not_found_body(self, path: str) -> dict:
        return {"error": f"no route for {path}"}

    def _next_reply(self, request: dict) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else self.default

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                request = {
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "json": json.loads(raw) if raw else None,
                    "received_at": time.monotonic(),
                }
                if self.path.split("?")[0] != fake.path:
                    reply = Reply(404, fake.not_found_body(self.path))
                else:
                    reply = fake._next_reply(request)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body or {}).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass  # Keep pytest's output clean.

        return Handler
