"""self_improving: learn a rule from recent failures and publish it to genesis once approved."""
import json
from datetime import datetime, timezone

from django.db import connection

from singularity.llm.contracts import TaskType
from singularity.messaging.contracts import InvalidMessage
from singularity.messaging.queues import DEAD_LETTERS
from singularity.rules.contracts import RULE_UPDATE, RuleType

from ..base import ActFailed, ActResult, Agent, AgentOutputError, InvalidAgentInput, Proposal, Question, register
from ..output import Field, parse_json_object

DEFAULT_FAILURE_LIMIT = 10  # failures of each kind shown to the model
RULE_FIELDS = (
    Field("namespace", (str,), non_empty=True),
    Field("rule_type", (str,)),
    Field("pattern", (dict,), non_empty=True),
    Field("action", (dict,), non_empty=True),
    Field("confidence", (int, float)),
    Field("rationale", (str,), required=False),
)


def recent_failures(limit: int) -> list[dict]:
    """Return the latest error results, dead-lettered messages and rejected rules, newest first per kind."""
    from singularity.models import JobResult
    from singularity.rules.models import PublishedRule, PublishStatus

    failures = [
        {"kind": "error_result", "task_type": row.request.task_type, "error_type": row.error_type,
         "error": row.error_message[:500], "model": row.model}
        for row in JobResult.objects.select_related("request").filter(status="error").order_by("-created_at")[:limit]
    ]
    failures += [
        {"kind": "dead_letter", "queue": body.get("queue"), "reason": body.get("reason"), "error": str(body.get("error"))[:500]}
        for body in _dead_letters(limit)
    ]
    failures += [
        {"kind": "rejected_rule", "namespace": row.namespace, "rule_type": row.rule_type, "error": row.last_error[:500]}
        for row in PublishedRule.objects.filter(status=PublishStatus.REJECTED).order_by("-updated_at")[:limit]
    ]
    return failures


def _dead_letters(limit: int) -> list[dict]:
    # Reads pgmq's queue table directly: a pgmq read would hide the messages from operators.
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT message FROM pgmq."q_{DEAD_LETTERS}" ORDER BY msg_id DESC LIMIT %s', [limit])
        rows = cursor.fetchall()
    return [json.loads(row[0]) if isinstance(row[0], str) else row[0] for row in rows]


@register
class SelfImprovingAgent(Agent):
    name = "self_improving"
    description = "Learns a rule from recent failures and publishes it to genesis once approved."
    task_type = TaskType.RULE_GENERATION
    instructions = (
        "Study the failures in the user message and write one rule that would prevent or flag them. "
        'Answer with one JSON object: {"namespace": string, "rule_type": one of '
        f"{', '.join(RuleType.values)}, "
        '"pattern": non-empty object, "action": object with a string "type", "confidence": 0 to 1, '
        '"rationale": string}.'
    )

    def validate_input(self, data: dict) -> dict:
        limit = data.get("limit", DEFAULT_FAILURE_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidAgentInput(f"limit={limit!r} is invalid: give a whole number from 1 to 100.")
        return {**data, "limit": limit}

    def question(self, run) -> Question | None:
        failures = recent_failures(run.input["limit"])
        run.state = {**run.state, "failures": failures}
        if failures:
            return None
        return Question("No recent failures were found. Describe a failure that a new rule should prevent.")

    def prompt(self, run) -> list[dict]:
        task = {"failures": run.state.get("failures", []), "described_by_person": run.state.get("answer", "")}
        return [self.system_message(self.instructions), {"role": "user", "content": json.dumps(task)}]

    def propose(self, run, text: str) -> Proposal:
        rule = parse_json_object(text, RULE_FIELDS)
        fields = {key: rule[key] for key in ("namespace", "rule_type", "pattern", "action", "confidence")}
        body = {
            "rule_id": "proposed", "version": 1, **fields,
            "source_instance": self.agent_id, "published_at": datetime.now(timezone.utc).isoformat(),
        }
        try:
            RULE_UPDATE.validate(body)
        except InvalidMessage as exc:
            raise AgentOutputError(f"The proposed rule is invalid: {exc}.") from exc
        payload = {"rule": fields, "rationale": rule.get("rationale", ""), "failures_seen": len(run.state.get("failures", []))}
        return Proposal(f"Publish a {fields['rule_type']} rule in {fields['namespace']}", payload)

    def act(self, run, approved) -> ActResult:
        from singularity.rules.publisher import RulePublishError, publish_rule

        try:
            published = publish_rule(**run.proposal["rule"], source_instance=f"{self.agent_id}:{run.run_id}")
        except RulePublishError as exc:
            raise ActFailed(f"Publishing the approved rule failed: {exc}") from exc
        changes = {"rule_id": published.rule_id, "version": published.version, "namespace": published.namespace}
        return ActResult(f"Published rule {published.rule_id} version {published.version}.", changes)
