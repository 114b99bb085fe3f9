"""The Anthropic provider against a fake Messages API on 127.0.0.1, alone and through the nexus_llm flow."""
from decimal import Decimal

import pytest

from nexus.models import UsageRecord
from nexus.providers import LlmCall, ProviderError, ProviderNotConfigured, get_provider, reset_clients
from singularity.llm.service import await_responses_result, dispatch_request
from tests.fakes.anthropic_server import anthropic_error, message_body
from tests.fakes.openai_server import Reply, error_body, response_body

RESULT_TIMEOUT = 20  # seconds; generous so a slow machine does not fail the test


@pytest.fixture
def anthropic_settings(settings, fake_anthropic):
    settings.ANTHROPIC_API_KEY = "test-anthropic-key"
    settings.ANTHROPIC_BASE_URL = fake_anthropic.base_url
    reset_clients()
    yield settings
    reset_clients()


def call(**options) -> LlmCall:
    values = {"model": "claude-3-5-haiku-latest", "task_type": "general", "messages": [{"role": "user", "content": "hi"}]}
    return LlmCall(**{**values, **options})


# --- the provider alone ----------------------------------------------------------------------


def test_success_maps_text_and_usage(anthropic_settings, fake_anthropic):
    fake_anthropic.queue(Reply(200, message_body("pgmq is a queue", input_tokens=20, output_tokens=6)))

    completion = get_provider("anthropic").complete(call())

    assert completion.text == "pgmq is a queue"
    assert completion.model == "claude-3-5-haiku-latest"
    assert (completion.input_tokens, completion.output_tokens, completion.total_tokens) == (20, 6, 26)
    assert completion.extra == {"stop_reason": "end_turn"}


def test_request_shape(anthropic_settings, fake_anthropic):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and now?"},
    ]

    get_provider("anthropic").complete(call(messages=messages, temperature=0.3))

    sent = fake_anthropic.requests[0]
    # SDK 0.x sends the key as x-api-key, SDK 2.x as a bearer token.
    credentials = sent["headers"].get("x-api-key") or sent["headers"].get("authorization")
    assert credentials in ("test-anthropic-key", "Bearer test-anthropic-key")
    assert "anthropic-version" in sent["headers"]
    assert sent["json"]["system"] == "be brief"
    assert [message["role"] for message in sent["json"]["messages"]] == ["user", "assistant", "user"]
    assert sent["json"]["max_tokens"] == 1024, "the default max_tokens, which the API requires"
    assert sent["json"]["temperature"] == 0.3


def test_plain_input_becomes_user_turn(anthropic_settings, fake_anthropic):
    get_provider("anthropic").complete(call(messages=None, input="summarise", max_tokens=50))

    sent = fake_anthropic.requests[0]["json"]
    assert sent["messages"] == [{"role": "user", "content": "summarise"}]
    assert sent["max_tokens"] == 50
    assert "system" not in sent


def test_rate_limit_is_transient_with_retry_after(anthropic_settings, fake_anthropic):
    fake_anthropic.queue(Reply(429, anthropic_error("rate_limit_error", "slow down"), headers={"retry-after": "1.5"}))

    with pytest.raises(ProviderError) as failure:
        get_provider("anthropic").complete(call())

    assert failure.value.transient is True
    assert failure.value.error_type == "rate_limited"
    assert failure.value.retry_after == 1.5
    assert "HTTP 429" in str(failure.value)
    assert "rate_limit_error: slow down" in str(failure.value)
    assert len(fake_anthropic.requests) == 1, "the SDK's own retries must be off"


def test_overloaded_529_is_transient(anthropic_settings, fake_anthropic):
    fake_anthropic.queue(Reply(529, anthropic_error("overloaded_error", "Overloaded")))

    with pytest.raises(ProviderError) as failure:
        get_provider("anthropic").complete(call())

    assert failure.value.transient is True
    assert failure.value.error_type == "provider_unavailable"
    assert failure.value.status == 529
    assert len(fake_anthropic.requests) == 1


def test_bad_request_is_permanent(anthropic_settings, fake_anthropic):
    fake_anthropic.queue(Reply(400, anthropic_error("invalid_request_error", "model not found")))

    with pytest.raises(ProviderError) as failure:
        get_provider("anthropic").complete(call())

    assert failure.value.transient is False
    assert failure.value.error_type == "provider_error"


def test_missing_api_key_is_permanent(anthropic_settings, fake_anthropic):
    anthropic_settings.ANTHROPIC_API_KEY = ""
    reset_clients()

    with pytest.raises(ProviderNotConfigured, match="ANTHROPIC_API_KEY is not set"):
        get_provider("anthropic").complete(call())
    assert fake_anthropic.requests == []


# --- through the nexus_llm flow in a worker process -------------------------------------------


def anthropic_env(fake_anthropic, **extra) -> dict:
    return {
        "LLM_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "ANTHROPIC_API_KEY": "test-anthropic-key",
        **extra,
    }


def ask(complexity="simple"):
    request_id = dispatch_request("hello", task_type="general", complexity=complexity, agent_id="anthropic-test")
    return request_id, await_responses_result(request_id, timeout=RESULT_TIMEOUT, raise_on_error=False)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_flow_waits_retry_after_then_answers(clean_queues, start_worker, fake_anthropic):
    fake_anthropic.queue(
        Reply(429, anthropic_error("rate_limit_error", "slow down"), headers={"retry-after": "0.5"}),
        Reply(200, message_body("after the wait", input_tokens=10, output_tokens=4)),
    )
    start_worker(**anthropic_env(fake_anthropic))

    request_id, result = ask()

    assert result.status == "ok"
    assert result.response == "after the wait"
    assert (result.provider, result.model) == ("anthropic", "claude-3-5-haiku-latest")
    gap = fake_anthropic.requests[1]["received_at"] - fake_anthropic.requests[0]["received_at"]
    assert gap >= 0.5, "the retry must wait for the retry-after delay"
    # claude-3-5-haiku-latest: $0.80 per million input tokens, $4.00 per million output tokens.
    assert result.cost_usd == Decimal("0.0000240")
    from tests.conftest import wait_for

    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first())
    assert (record.model, record.task_type, record.total_tokens) == ("claude-3-5-haiku-latest", "general", 14)
    assert record.fallback_used is False


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_flow_retries_overloaded(clean_queues, start_worker, fake_anthropic):
    fake_anthropic.queue(
        Reply(529, anthropic_error("overloaded_error", "Overloaded")),
        Reply(529, anthropic_error("overloaded_error", "Overloaded")),
        Reply(200, message_body("finally")),
    )
    start_worker(**anthropic_env(fake_anthropic))

    _, result = ask()

    assert result.status == "ok"
    assert result.response == "finally"
    assert len(fake_anthropic.requests) == 3


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_flow_falls_back_after_permanent_failure(clean_queues, start_worker, fake_anthropic, fake_openai):
    fake_anthropic.queue(Reply(404, anthropic_error("not_found_error", "model: claude-3-5-haiku-latest")))
    fake_openai.queue(Reply(200, response_body("openai stepped in", model="gpt-4.1-mini")))
    start_worker(
        **anthropic_env(
            fake_anthropic,
            LLM_FALLBACK_MODELS="openai:gpt-4.1-mini",
            OPENAI_BASE_URL=fake_openai.base_url,
            OPENAI_API_KEY="test-openai-key",
        )
    )

    request_id, result = ask()

    assert result.status == "ok"
    assert (result.provider, result.model) == ("openai", "gpt-4.1-mini")
    assert result.response == "openai stepped in"
    [failed] = result.raw["fallback_from"]
    assert (failed["provider"], failed["model"]) == ("anthropic", "claude-3-5-haiku-latest")
    assert "HTTP 404" in failed["error"]
    assert len(fake_anthropic.requests) == 1, "a permanent failure is not retried"
    from tests.conftest import wait_for

    assert wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first()).fallback_used is True


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_flow_falls_back_when_attempts_run_out(clean_queues, start_worker, fake_anthropic, fake_openai):
    fake_anthropic.queue(*[Reply(529, anthropic_error("overloaded_error", "Overloaded")) for _ in range(3)])
    fake_openai.queue(Reply(200, response_body("backup answer")))
    start_worker(
        **anthropic_env(
            fake_anthropic,
            WORKER_MAX_ATTEMPTS="3",
            LLM_FALLBACK_MODELS="openai:gpt-4.1-mini",
            OPENAI_BASE_URL=fake_openai.base_url,
            OPENAI_API_KEY="test-openai-key",
        )
    )

    _, result = ask()

    assert result.status == "ok"
    assert result.provider == "openai"
    assert len(fake_anthropic.requests) == 3
    assert len(fake_openai.requests) == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_flow_reports_last_failure_when_every_target_fails(clean_queues, start_worker, fake_anthropic, fake_openai):
    fake_anthropic.queue(Reply(400, anthropic_error("invalid_request_error", "bad model")))
    fake_openai.queue(Reply(400, error_body("also bad")))
    start_worker(
        **anthropic_env(
            fake_anthropic,
            LLM_FALLBACK_MODELS="openai:gpt-4.1-mini",
            OPENAI_BASE_URL=fake_openai.base_url,
            OPENAI_API_KEY="test-openai-key",
        )
    )

    _, result = ask()

    assert result.status == "error"
    assert result.error_type == "provider_error"
    assert "also bad" in result.error_message
    assert result.provider == "openai"
    assert len(result.raw["fallback_from"]) == 1
