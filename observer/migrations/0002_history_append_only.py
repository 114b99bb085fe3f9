"""Reject UPDATE and DELETE on approval history rows in the database, whichever client tries.

TRUNCATE is not a row operation and still works, so test teardown and a deliberate reset can
empty the table.
"""
from django.db import migrations

CREATE = """
CREATE FUNCTION observer_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'observer_approvalhistory is append-only: % is not allowed', TG_OP
        USING HINT = 'Insert a new history row instead.';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER observer_approvalhistory_append_only
BEFORE UPDATE OR DELETE ON observer_approvalhistory
FOR EACH ROW EXECUTE FUNCTION observer_history_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS observer_approvalhistory_append_only ON observer_approvalhistory;
DROP FUNCTION IF EXISTS observer_history_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("observer", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
