"""The nexus_llm flow's definition, route fallbacks, and the flow run behind one request."""
import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from nexus.flows import LlmRequestFlow
from nexus.models import Route, UsageRecord
from nexus.routing import Target, parse_fallbacks, resolve_route
from singularity.messaging.notifications import get_hub
from singularity.messaging.queues import AI_REQUESTS, AI_RESULTS, FLOW_NEXUS_LLM, PROJECT_QUEUES
from singularity.messaging.registry import registered_consumers
from singularity.messaging.runtime import ConsumerWorker
from singularity.quantum_flow import start_flow
from singularity.quantum_flow.models import FlowRun, RunStatus, StepState


def test_flow_steps_and_queue_pinned():
    assert [step.name for step in LlmRequestFlow.steps] == ["validate", "route_llm", "publish_result", "track_metrics"]
    assert LlmRequestFlow.queue_name() == FLOW_NEXUS_LLM
    assert FLOW_NEXUS_LLM in PROJECT_QUEUES
    assert LlmRequestFlow.enabled_variable() == "PGFLOW_NEXUS_LLM_ENABLED"


def test_parse_fallbacks_accepts_lines_and_commas():
    parsed = parse_fallbacks("anthropic:claude-3-5-haiku-latest\n openai:gpt-4.1-mini , local:local-small\n")

    assert parsed == (
        Target("anthropic", "claude-3-5-haiku-latest"),
        Target("openai", "gpt-4.1-mini"),
        Target("local", "local-small"),
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("gpt-4.1-mini", "write provider:model"), ("azure:gpt-4o", "unknown provider 'azure'"), ("openai:", "write provider:model")],
)
def test_parse_fallbacks_rejects_bad_entry(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_fallbacks(value)


@pytest.mark.django_db
def test_route_form_validates_fallbacks():
    route = Route(task_type="*", complexity="simple", provider="openai", model="gpt-4.1-nano", fallbacks="nope")

    with pytest.raises(ValidationError) as error:
        route.full_clean()

    assert "fallbacks" in error.value.message_dict


@pytest.mark.django_db
def test_database_route_carries_fallbacks():
    Route.objects.create(
        task_type="code", complexity="complex", provider="openai", model="gpt-4.1",
        fallbacks="anthropic:claude-opus-4-1\nopenai:gpt-4.1",
    )

    route = resolve_route("code", "complex")

    assert route.targets == (Target("openai", "gpt-4.1"), Target("anthropic", "claude-opus-4-1"))


@pytest.mark.django_db
def test_settings_route_carries_fallbacks(settings):
    settings.NEXUS_ROUTES = {
        "*:simple": {"provider": "anthropic", "model": "claude-3-5-haiku-latest", "fallbacks": ["openai:gpt-4.1-nano"]}
    }

    route = resolve_route("general", "simple", model_override="claude-sonnet-4-0")

    assert route.targets == (Target("anthropic", "claude-sonnet-4-0"), Target("openai", "gpt-4.1-nano"))


@pytest.mark.django_db(transaction=True)
def test_eager_run_publishes_and_records(clean_queues):
    request_id = str(uuid.uuid4())
    body = {"request_id": request_id, "agent_id": "flow-test", "task_type": "code", "complexity": "simple", "input": "hi"}
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run = start_flow(LlmRequestFlow, body, run_id=request_id, eager=True)

    assert run.status == RunStatus.COMPLETED
    assert run.step_outputs["validate"] == {"valid": True}
    assert run.step_outputs["publish_result"] == {"queue": "ai_results", "status": "ok"}
    # The result, the usage record and the step rows cost one round trip together.
    [final] = [sql for sql in statements if "pgmq.send" in sql]
    assert "nexus_usagerecord" in final
    assert "quantum_flow_stepstate" in final
    [result] = clean_queues.read("ai_results", vt=0, qty=10)
    assert result.body["request_id"] == request_id
    assert result.body["status"] == "ok"
    assert result.body["fallback_from"] == []
    record = UsageRecord.objects.get(request_id=request_id)
    assert (record.task_type, record.model, record.status) == ("code", "local-small", "ok")
    assert record.total_tokens == record.input_tokens + record.output_tokens
    assert record.cost_usd == Decimal(0)
    assert record.fallback_used is False
    assert StepState.objects.filter(run_id=request_id, status="completed").count() == 4


@pytest.mark.django_db(transaction=True)
def test_invalid_request_gets_error_result(clean_queues):
    request_id = str(uuid.uuid4())
    body = {"request_id": request_id, "agent_id": "flow-test", "task_type": "poetry", "complexity": "simple", "input": "x"}

    run = start_flow(LlmRequestFlow, body, run_id=request_id, eager=True)

    assert FlowRun.objects.get(pk=request_id).status == RunStatus.COMPLETED
    assert run.step_outputs["validate"]["valid"] is False
    [result] = clean_queues.read("ai_results", vt=0, qty=10)
    assert result.body["error"]["type"] == "invalid_request"
    assert "'poetry'" in result.body["error"]["message"]
    assert UsageRecord.objects.get(request_id=request_id).error_type == "invalid_request"


@pytest.mark.django_db(transaction=True)
def test_usage_admin_shows_totals(client, django_user_model, clean_queues):
    from django.urls import reverse

    request_id = str(uuid.uuid4())
    body = {"request_id": request_id, "agent_id": "flow-test", "task_type": "analysis", "complexity": "medium", "input": "hi"}
    start_flow(LlmRequestFlow, body, run_id=request_id, eager=True)
    client.force_login(django_user_model.objects.create_superuser("usage-admin", password="usage-admin-pass-1"))

    response = client.get(reverse("admin:nexus_usagerecord_changelist"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Totals per model and task type" in page
    assert "<td>local-medium</td><td>analysis</td><td>1</td>" in page


@pytest.mark.django_db(transaction=True)
def test_consumer_writes_in_two_statements(clean_queues):
    request_id = str(uuid.uuid4())
    body = {"request_id": request_id, "agent_id": "flow-test", "task_type": "code", "complexity": "simple", "input": "hi"}
    clean_queues.send(AI_REQUESTS, body)
    worker = ConsumerWorker(registered_consumers()["ai_requests"], get_hub())
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql.strip())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert worker.run_once() == 1

    # Reads (the queue, the routing tables) and their savepoints aside, a request costs the run's
    # insert and one final statement, which also sends the result and archives the request.
    writes = [sql for sql in statements if not sql.startswith(("SELECT", "SAVEPOINT")) or "pgmq.archive" in sql]
    assert len(writes) == 2, writes
    assert writes[0].startswith("INSERT INTO quantum_flow_flowrun")
    assert "pgmq.archive" in writes[1]
    assert "pgmq.send" in writes[1]
    assert clean_queues.metrics(AI_REQUESTS).queue_length == 0
    [result] = clean_queues.read(AI_RESULTS, vt=0, qty=10)
    assert result.body["request_id"] == request_id
