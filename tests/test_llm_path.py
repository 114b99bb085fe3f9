"""End to end: dispatch_request -> ai_requests -> nexus -> ai_results -> JobResult -> await_responses_result.

Every test here runs a real ``run_workers`` process against the test database.
"""
import uuid
from decimal import Decimal

import pytest

from singularity.llm.service import ProviderFailure, await_responses_result, dispatch_request
from singularity.messaging.queues import AI_REQUESTS, DEAD_LETTERS
from singularity.models import JobResult, LlmRequest
from tests.fakes.openai_server import Reply, error_body, response_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

RESULT_TIMEOUT = 20  # seconds; generous so a slow machine does not fail the test


def openai_env(fake, **extra):
    return {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test-key", **extra}


def ask(text="hello", **options):
    request_id = dispatch_request(
        [{"role": "user", "content": text}], task_type="general", complexity="medium", agent_id="test-agent", **options
    )
    return request_id, await_responses_result(request_id, timeout=RESULT_TIMEOUT, raise_on_error=False)


def test_local_provider_round_trip(clean_queues, start_worker):
    start_worker()

    request_id, result = ask("what is pgmq?")

    assert result.status == "ok"
    assert result.provider == "local"
    assert result.model == "local-medium"
    assert "offline local provider" in result.response
    assert result.total_tokens == result.input_tokens + result.output_tokens
    assert result.cost_usd == Decimal(0)
    assert result.latency_ms >= 0
    assert LlmRequest.objects.get(request_id=request_id).status == LlmRequest.Status.COMPLETED


def test_openai_round_trip(clean_queues, start_worker, fake_openai):
    fake_openai.queue(Reply(200, response_body("pgmq is a queue", model="gpt-4.1-mini", input_tokens=12, output_tokens=7)))
    start_worker(**openai_env(fake_openai))

    _, result = ask("what is pgmq?", max_tokens=50, temperature=0.2)

    assert result.status == "ok"
    assert result.response == "pgmq is a queue"
    assert (result.provider, result.model) == ("openai", "gpt-4.1-mini")
    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (12, 7, 19)
    # gpt-4.1-mini: $0.40 per million input tokens, $1.60 per million output tokens.
    assert result.cost_usd == Decimal("0.0000160")
    sent = fake_openai.requests[0]
    assert sent["headers"]["authorization"] == "Bearer test-key"
    assert sent["json"]["model"] == "gpt-4.1-mini"
    assert sent["json"]["input"] == [{"role": "user", "content": "what is pgmq?"}]
    assert sent["json"]["max_output_tokens"] == 50
    assert sent["json"]["temperature"] == 0.2


def test_openai_rate_limit_then_success(clean_queues, start_worker, fake_openai):
    fake_openai.queue(
        Reply(429, error_body("slow down", "rate_limit_exceeded"), headers={"retry-after": "0.5"}),
        Reply(200, response_body("after the wait")),
    )
    start_worker(**openai_env(fake_openai))

    _, result = ask()

    assert result.status == "ok"
    assert result.response == "after the wait"
    assert len(fake_openai.requests) == 2
    gap = fake_openai.requests[1]["received_at"] - fake_openai.requests[0]["received_at"]
    assert gap >= 0.5, "the retry must wait for the Retry-After delay"


def test_openai_permanent_failure(clean_queues, start_worker, fake_openai):
    fake_openai.queue(Reply(400, error_body("model not supported")))
    start_worker(**openai_env(fake_openai))

    request_id = dispatch_request("hi", task_type="general", complexity="simple", agent_id="test-agent")
    with pytest.raises(ProviderFailure) as failure:
        await_responses_result(request_id, timeout=RESULT_TIMEOUT)

    result = failure.value.result
    assert result.error_type == "provider_error"
    assert "HTTP 400" in result.error_message
    assert "model not supported" in result.error_message
    assert len(fake_openai.requests) == 1, "a permanent error is not retried"
    assert LlmRequest.objects.get(request_id=request_id).status == LlmRequest.Status.FAILED


def test_openai_retries_exhausted(clean_queues, start_worker, fake_openai):
    fake_openai.queue(*[Reply(503, error_body("overloaded", "server_error")) for _ in range(3)])
    start_worker(**openai_env(fake_openai, WORKER_MAX_ATTEMPTS="3"))

    _, result = ask()

    assert result.status == "error"
    assert result.error_type == "provider_unavailable"
    assert "attempt 3 of 3" in result.error_message
    assert len(fake_openai.requests) == 3


def test_openai_without_api_key(clean_queues, start_worker, fake_openai):
    start_worker(**openai_env(fake_openai, OPENAI_API_KEY=""))

    _, result = ask()

    assert result.status == "error"
    assert "OPENAI_API_KEY is not set" in result.error_message
    assert fake_openai.requests == []


def test_unknown_task_type_is_answered_and_dead_lettered(clean_queues, start_worker):
    request_id = str(uuid.uuid4())
    LlmRequest.objects.create(
        request_id=request_id, agent_id="raw", task_type="poetry", complexity="simple", messages="a poem"
    )
    body = {"request_id": request_id, "agent_id": "raw", "task_type": "poetry", "complexity": "simple", "input": "a poem"}
    clean_queues.send(AI_REQUESTS, body)
    start_worker()

    result = await_responses_result(request_id, timeout=RESULT_TIMEOUT, raise_on_error=False)

    assert result.error_type == "invalid_request"
    assert "'poetry'" in result.error_message
    dead = clean_queues.read(DEAD_LETTERS, vt=0, qty=10)
    assert [message.body["body"] for message in dead] == [body]
    assert dead[0].body["reason"] == "invalid_body"


def test_redelivered_request_stores_one_result(clean_queues, start_worker):
    request_id = dispatch_request("twice", task_type="general", complexity="simple", agent_id="test-agent")
    body = clean_queues.read(AI_REQUESTS, vt=0, qty=1)[0].body
    clean_queues.send(AI_REQUESTS, body)  # The same request delivered a second time.
    start_worker()

    await_responses_result(request_id, timeout=RESULT_TIMEOUT)

    # Both copies are processed; the second result message must change nothing.
    from tests.conftest import wait_for

    wait_for(lambda: clean_queues.metrics("ai_results").queue_length == 0 and clean_queues.metrics(AI_REQUESTS).queue_length == 0)
    assert JobResult.objects.filter(request_id=request_id).count() == 1
