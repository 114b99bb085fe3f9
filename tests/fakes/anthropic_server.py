"""A fake Anthropic Messages API on 127.0.0.1 for tests: scripted replies, recorded requests."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.openai_server import Reply

MESSAGES_PATH = "/v1/messages"


def message_body(text: str, *, model: str = "claude-3-5-haiku-latest", input_tokens: int = 11, output_tokens: int = 5) -> dict:
    """Build a Messages API response whose only content block is ``text``."""
    return {
        "id": f"msg_{abs(hash(text)) % 10**12}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(error_type: str, message: str) -> dict:
    """Build an error body in the Messages API's shape, for example ``overloaded_error``."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


class FakeMessagesServer:
    """Serve ``POST /v1/messages`` from a script; when the script is empty, reply with ``default``."""

    def __init__(self):
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.default = Reply(200, message_body("fake claude answer"))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeMessagesServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

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
                if self.path.split("?")[0] != MESSAGES_PATH:
                    reply = Reply(404, anthropic_error("not_found_error", f"no route for {self.path}"))
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
