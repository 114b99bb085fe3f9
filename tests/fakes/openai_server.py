"""A fake OpenAI Responses API on 127.0.0.1 for tests: scripted replies, recorded requests."""
import time

from tests.fakes.scripted_server import Reply, ScriptedJsonServer

__all__ = ["FakeResponsesServer", "Reply", "error_body", "response_body"]


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


class FakeResponsesServer(ScriptedJsonServer):
    """Serve ``POST /v1/responses`` from a script; when the script is empty, reply with ``default``."""

    path = "/v1/responses"
    base_path = "/v1"

    def __init__(self):
        super().__init__(Reply(200, response_body("fake answer")))

    def not_found_body(self, path: str) -> dict:
        return error_body(f"no route for {path}")
