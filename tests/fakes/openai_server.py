"""A fake OpenAI Responses API on 127.0.0.1 for tests: scripted replies, recorded requests."""
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


def response_body(text: str, *, model: str = "gpt-4.1-mini", input_tokens: int = 12, output_tokens: int = 7) -> dict:
    """Build a completed Responses API object whose output text is ``text``."""
    return {
        "id": f"resp_{abs(hash(text)) % 10**12}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def error_body(message: str, error_type: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


class FakeResponsesServer:
    """Serve ``POST /v1/responses`` from a script; when the script is empty, answer ``default``."""

    def __init__(self):
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.default = Reply(200, response_body("fake answer"))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeResponsesServer":
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
                if self.path != "/v1/responses":
                    reply = Reply(404, error_body(f"no route for {self.path}"))
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
