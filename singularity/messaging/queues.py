"""Names of the queues the project uses, and pgmq's rules for queue names."""
import re

# pgmq prefixes its tables (q_, a_) and indexes; names longer than this overflow PostgreSQL's
# 63-byte identifier limit once prefixed and suffixed.
MAX_QUEUE_NAME_LENGTH = 47
_QUEUE_NAME_PATTERN = re.compile(r"[a-z0-9_]+")

AI_REQUESTS = "ai_requests"
AI_RESULTS = "ai_results"
DEAD_LETTERS = "dead_letters"
GENESIS_RULE_UPDATES = "genesis_rule_updates"
GENESIS_RULE_UPDATES_RESULTS = "genesis_rule_updates_results"
# Human-in-the-loop: agents send requests on the first queue and observer replies to every agent
# on the second, routed by request_id. A queue per request would break the name limit and flood pgmq.meta.
OBSERVER_HITL_REQUESTS = "observer_hitl_requests"
OBSERVER_DECISIONS = "observer_decisions"
# An agent withdraws a request it no longer needs (its run was cancelled or failed) on this queue.
OBSERVER_HITL_WITHDRAWALS = "observer_hitl_withdrawals"
# Step tasks of nexus's nexus_llm flow (quantum_flow names a flow's queue flow_<slug>).
FLOW_NEXUS_LLM = "flow_nexus_llm"
# Events for quantum_flow's waiting steps, sent by ``send_event``.
FLOW_EVENTS = "flow_events"
# Step tasks of the agents' agent_run flow.
FLOW_AGENT_RUN = "flow_agent_run"

# Every queue the project owns; migrations create them and ``queues status`` reports on them.
PROJECT_QUEUES = (
    AI_REQUESTS, AI_RESULTS, DEAD_LETTERS, GENESIS_RULE_UPDATES, GENESIS_RULE_UPDATES_RESULTS,
    OBSERVER_HITL_REQUESTS, OBSERVER_DECISIONS, OBSERVER_HITL_WITHDRAWALS, FLOW_NEXUS_LLM, FLOW_EVENTS, FLOW_AGENT_RUN,
)


class QueueNameError(ValueError):
    """A queue name breaks pgmq's naming rules."""


def validate_queue_name(name: object) -> str:
    """Return ``name`` unchanged if pgmq accepts it as a queue name, else raise ``QueueNameError``."""
    if not isinstance(name, str):
        raise QueueNameError(f"Queue name {name!r} must be a string, not {type(name).__name__}.")
    if not name:
        raise QueueNameError(f"Queue name {name!r} is empty. Use lowercase letters, digits and underscores.")
    if len(name) > MAX_QUEUE_NAME_LENGTH:
        raise QueueNameError(
            f"Queue name {name!r} has {len(name)} characters; pgmq allows at most "
            f"{MAX_QUEUE_NAME_LENGTH}. Use a shorter name."
        )
    if not _QUEUE_NAME_PATTERN.fullmatch(name):
        raise QueueNameError(
            f"Queue name {name!r} is invalid: use only lowercase letters, digits and underscores."
        )
    return name


def insert_channel(queue_name: str) -> str:
    """Return the LISTEN channel on which pgmq announces inserts into ``queue_name``."""
    return f"pgmq.q_{validate_queue_name(queue_name)}.INSERT"
