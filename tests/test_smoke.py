import pytest

from singularity.llm.service import await_responses_result, dispatch_request


@pytest.mark.django_db(transaction=True)
def test_local_provider_end_to_end(clean_queues, start_worker):
    start_worker()
    request_id = dispatch_request("hello", task_type="general", complexity="simple", agent_id="t")
    result = await_responses_result(request_id, timeout=20)
    assert result.provider == "local"
