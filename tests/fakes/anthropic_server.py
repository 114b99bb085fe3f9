"""A fake Anthropic Messages API on 127.0.0.1 for tests: scripted replies, recorded requests."""
from tests.fakes.scripted_server import Reply, ScriptedJsonServer

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


class FakeMessagesServer(ScriptedJsonServer):
    """Serve ``POST /v1/messages`` from a script; when the script is empty, reply with ``default``."""

    path = MESSAGES_PATH

    def __init__(self):
        super().__init__(Reply(200, message_body("fake claude answer")))

    def not_found_body(self, path: str) -> dict:
        return anthropic_error("not_found_error", f"no route for {path}")
