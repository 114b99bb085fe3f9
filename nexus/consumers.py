"""The ``ai_requests`` consumer: start the request's ``nexus_llm`` flow run and execute it eagerly.

The consumer owns its transaction, in which the published result, the run's state and the archive
of the request commit together. The run's final statement archives the request, which saves the
runtime's separate archive statement, a round trip per request. A crash before the commit
redelivers the request, which then starts the run afresh. A redelivered request whose run exists
starts nothing and is archived.
"""
import logging

from django.db import transaction

from singularity.llm.contracts import AI_REQUEST_ENVELOPE
from singularity.messaging.queues import AI_REQUESTS, DEAD_LETTERS
from singularity.messaging.registry import consumer
from singularity.messaging.runtime import Delivery, dead_letter_body
from singularity.quantum_flow import start_flow
from singularity.quantum_flow.models import StepState

from .flows import LlmRequestFlow

logger = logging.getLogger(__name__)

CONSUMER_NAME = "ai_requests"


@consumer(AI_REQUESTS, name=CONSUMER_NAME, contract=AI_REQUEST_ENVELOPE, owns_transaction=True)
def handle_request(delivery: Delivery) -> None:
    from singularity.models import Queue

    message = delivery.message
    dead_letter_msg_id = None
    with transaction.atomic():
        run = start_flow(
            LlmRequestFlow,
            delivery.body,
            run_id=delivery.body["request_id"],
            eager=True,
            archive_message=(message.queue, message.msg_id),
        )
        if run.step_outputs is not None:
            validation = run.step_outputs.get("validate")
        else:
            # The run existed already (a redelivered request): read what its validate step found.
            validation = StepState.objects.filter(run=run, name="validate").values_list("output", flat=True).first()
        if validation is not None and not validation["valid"]:
            # The agent got an error result from the flow; the bad message is kept for an operator.
            # It is sent in this transaction, because the request is archived in it.
            body = dead_letter_body(message, reason="invalid_body", error=validation["error"], attempts=message.read_ct)
            dead_letter_msg_id = Queue.objects.send(DEAD_LETTERS, body)
    if dead_letter_msg_id is not None:
        # The same event as the runtime's dead letters, so operators find both with one search.
        logger.error(
            "worker.message_dead_lettered",
            extra={
                "consumer": CONSUMER_NAME,
                **delivery.log_ids,
                "reason": "invalid_body",
                "error": validation["error"],
                "dead_letter_msg_id": dead_letter_msg_id,
            },
        )
