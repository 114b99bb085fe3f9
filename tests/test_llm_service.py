"""dispatch_request and await_responses_result without a worker, and the ai_results consumer in process."""
import uuid

import pytest
from django.db import transaction

from singularity.llm.consumers import store_result
from singularity.llm.service import (
    InvalidRequest,
    ProviderFailure,
    ResultTimeout,
    UnknownRequest,
    await_responses_result,
    dispatch_request,
)
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import AI_REQUESTS, AI_RESULTS, DEAD_LETTERS
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker, Outcome
from singularity.models import JobResult, LlmRequest

pytestmark = pytest.mark.django_db


def dispatch(**overrides):
    arguments = {"task_type": "general", "complexity": "simple", "agent_id": "agent-1", **overrides}
    return dispatch_request([{"role": "user", "content": "hi"}], **arguments)


def result_body(request_id, **overrides):
    return {
        "request_id": request_id,
        "status": "ok",
        "response": "answer",
        "model": "local-small",
        "provider": "local",
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        "cost_usd": 0.0,
        "latency_ms": 1.5,
        **overrides,
    }


@pytest.fixture
def results_worker():
    return ConsumerWorker(registered_consumers()["ai_results"], get_hub())


def test_dispatch_writes_row_and_message(clean_queues):
    request_id = dispatch(max_tokens=20)

    row = LlmRequest.objects.get(request_id=request_id)
    assert row.status == LlmRequest.Status.PENDING
    assert row.options == {"max_tokens": 20}
    [message] = clean_queues.read(AI_REQUESTS, vt=0, qty=10)
    assert message.body["request_id"] == request_id
    assert message.body["messages"] == [{"role": "user", "content": "hi"}]
    assert message.body["max_tokens"] == 20


def test_dispatch_plain_text_becomes_input(clean_queues):
    dispatch_request("just text", task_type="code", complexity="complex", agent_id="a")

    [message] = clean_queues.read(AI_REQUESTS, vt=0, qty=10)
    assert message.body["input"] == "just text"
    assert "messages" not in message.body


def test_dispatch_rolls_back_with_caller(clean_queues):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            dispatch()
            raise RuntimeError("the agent's own step failed")

    assert LlmRequest.objects.count() == 0
    assert clean_queues.metrics(AI_REQUESTS).queue_length == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"task_type": "poetry"}, "task_type"),
        ({"complexity": "extreme"}, "complexity"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_dispatch_rejects_bad_arguments(clean_queues, overrides, expected):
    with pytest.raises(InvalidRequest, match=expected):
        dispatch(**overrides)

    assert LlmRequest.objects.count() == 0


def test_dispatch_rejects_empty_messages(clean_queues):
    with pytest.raises(InvalidRequest, match="at least one message"):
        dispatch_request([], task_type="general", complexity="simple", agent_id="a")


def test_await_times_out_without_worker(clean_queues):
    request_id = dispatch()

    with pytest.raises(ResultTimeout, match="stays queued"):
        await_responses_result(request_id, timeout=0.3)

    # Nothing is lost: the request is still queued for a worker.
    assert clean_queues.metrics(AI_REQUESTS).queue_length == 1


def test_await_unknown_request():
    with pytest.raises(UnknownRequest, match="dispatch_request"):
        await_responses_result(str(uuid.uuid4()), timeout=0.1)


def test_results_consumer_stores_result(clean_queues, results_worker):
    request_id = dispatch()
    clean_queues.send(AI_RESULTS, result_body(request_id))

    assert results_worker.run_once() == 1

    result = await_responses_result(request_id, timeout=1)
    assert (result.response, result.total_tokens, result.latency_ms) == ("answer", 3, 1.5)
    assert LlmRequest.objects.get(request_id=request_id).status == LlmRequest.Status.COMPLETED


def test_results_consumer_ignores_redelivery(clean_queues, results_worker):
    request_id = dispatch()
    clean_queues.send(AI_RESULTS, result_body(request_id))
    clean_queues.send(AI_RESULTS, result_body(request_id, response="second copy", status="error"))

    results_worker.run_once()

    assert JobResult.objects.filter(request_id=request_id).count() == 1
    assert JobResult.objects.get(request_id=request_id).response == "answer"
    assert LlmRequest.objects.get(request_id=request_id).status == LlmRequest.Status.COMPLETED
    assert clean_queues.metrics(AI_RESULTS).queue_length == 0


def test_results_consumer_dead_letters_unknown_request(clean_queues, results_worker):
    clean_queues.send(AI_RESULTS, result_body(str(uuid.uuid4())))

    [message] = clean_queues.read(AI_RESULTS, vt=0, qty=1)
    assert results_worker.handle(message) == Outcome.DEAD_LETTERED

    [dead] = clean_queues.read(DEAD_LETTERS, vt=0, qty=10)
    assert dead.body["reason"] == "unknown_request"


def test_error_result_raises_provider_failure(clean_queues, results_worker):
    request_id = dispatch()
    error = {"type": "provider_error", "message": "HTTP 400"}
    clean_queues.send(AI_RESULTS, result_body(request_id, status="error", response=None, error=error))
    results_worker.run_once()

    with pytest.raises(ProviderFailure, match="provider_error: HTTP 400"):
        await_responses_result(request_id, timeout=1)
    result = await_responses_result(request_id, timeout=1, raise_on_error=False)
    assert result.error_message == "HTTP 400"
    assert LlmRequest.objects.get(request_id=request_id).status == LlmRequest.Status.FAILED


def test_store_result_is_registered():
    assert registered_consumers()["ai_results"].handler is store_result
