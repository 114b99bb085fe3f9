"""Deliver the quantum_flow event ``hitl.decision`` (keyed by request_id) whenever a decision row is inserted.

The event completes the flow steps waiting for this decision in the transaction that stores it, so
a waiting agent run goes on as soon as the decision message is consumed. The payload carries the
decision's fields; the stored row stays the record.
"""
from django.db import migrations

CREATE = """
CREATE FUNCTION singularity_hitl_decision_event() RETURNS trigger AS $$
BEGIN
    PERFORM quantum_flow_deliver_event(
        'hitl.decision', NEW.request_id::text,
        jsonb_build_object(
            'request_id', NEW.request_id::text, 'decision', NEW.decision, 'decided_by', NEW.decided_by,
            'reason', NEW.reason, 'answer', NEW.answer, 'decided_at', NEW.decided_at),
        false);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_hitl_decision_event
AFTER INSERT ON singularity_hitl_hitldecision
FOR EACH ROW EXECUTE FUNCTION singularity_hitl_decision_event();
"""

DROP = """
DROP TRIGGER IF EXISTS singularity_hitl_decision_event ON singularity_hitl_hitldecision;
DROP FUNCTION IF EXISTS singularity_hitl_decision_event();
"""


class Migration(migrations.Migration):

    dependencies = [("singularity_hitl", "0001_initial"), ("quantum_flow", "0002_wait_for_event")]

    operations = [migrations.RunSQL(CREATE, DROP)]
