"""Notify ``singularity_job_results`` with the request_id whenever a result row is inserted.

The notification is delivered at commit, so a woken ``await_responses_result`` always finds the
row, and every insert notifies whichever code path wrote it.
"""
from django.db import migrations

CREATE = """
CREATE FUNCTION singularity_notify_result_stored() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('singularity_job_results', NEW.request_id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER singularity_jobresult_notify
AFTER INSERT ON singularity_jobresult
FOR EACH ROW EXECUTE FUNCTION singularity_notify_result_stored();
"""

DROP = """
DROP TRIGGER IF EXISTS singularity_jobresult_notify ON singularity_jobresult;
DROP FUNCTION IF EXISTS singularity_notify_result_stored();
"""


class Migration(migrations.Migration):
    dependencies = [("singularity", "0003_create_queues")]

    operations = [migrations.RunSQL(CREATE, DROP)]
