"""Deliver the quantum_flow event ``llm.result`` (keyed by request_id) whenever a result row is inserted.

The event completes the flow steps waiting for this result in the transaction that stores it. With
no step waiting, the function finds nothing and keeps nothing: the result row is the record.
"""
from django.db import migrations

CREATE = """
CREATE FUNCTION singularity_llm_result_event() RETURNS trigger AS $$
BEGIN
    PERFORM quantum_flow_deliver_event(
        'llm.result', NEW.request_id::text,
        jsonb_build_object('request_id', NEW.request_id::text, 'status', NEW.status), false);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_jobresult_event
AFTER INSERT ON singularity_jobresult
FOR EACH ROW EXECUTE FUNCTION singularity_llm_result_event();
"""

DROP = """
DROP TRIGGER IF EXISTS singularity_jobresult_event ON singularity_jobresult;
DROP FUNCTION IF EXISTS singularity_llm_result_event();
"""


class Migration(migrations.Migration):

    dependencies = [("singularity", "0004_notify_result_stored"), ("quantum_flow", "0002_wait_for_event")]

    operations = [migrations.RunSQL(CREATE, DROP)]
