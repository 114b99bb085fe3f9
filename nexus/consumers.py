"""The ``ai_requests`` consumer: start the request's ``nexus_llm`` flow run and execute it eagerly.

The run executes inside the runtime's transaction, so the published result, the run's state and
the acknowledgement of the request commit together. A crash before the commit redelivers the
request, which then starts the run afresh. A redelivered request whose run exists starts nothing.
"""
import logging

from singularity.llm.contracts import AI_REQUEST_ENVELOPE
from singularity.messaging.queues import AI_REQUESTS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import DeadLetter, Delivery
from singularity.quantum_flow import start_flow
from singularity.quantum_flow.models import StepState

from .flows import LlmRequestFlow

logger = logging.getLogger(__name__)


@consumer(AI_REQUESTS, name="ai_requests", contract=AI_REQUEST_ENVELOPE)
def handle_request(delivery: Delivery) -> DeadLetter | None:
    run = start_flow(LlmRequestFlow, delivery.body, run_id=delivery.body["request_id"], eager=True)
    if run.step_outputs is not None:
        validation = run.step_outputs.get("validate")
    else:
        # The run existed already (a redelivered request): read what its validate step found.
        validation = StepState.objects.filter(run=run, name="validate").values_list("output", flat=True).first()
    if validation is not None and not validation["valid"]:
        # The agent got an error result from the flow; the bad message is kept for an operator.
        return DeadLetter("invalid_body", validation["error"])
    return None
