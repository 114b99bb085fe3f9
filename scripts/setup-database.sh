#!/usr/bin/env bash
# Prepare the database; safe to run again. Creates the database named by DATABASE_URL when it is
# missing (without DATABASE_URL the embedded server is started and creates its own), then applies
# every migration: pgmq, the queues, the Approvers group and the approval expiry schedule.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    scripts/install.sh
fi

if [ -n "${DATABASE_URL:-}" ]; then
    .venv/bin/python - <<'PYTHON'
import os

import psycopg
from psycopg import sql

from singularity.database import database_settings

config = database_settings(os.environ["DATABASE_URL"], data_dir=None, database_name="")
params = {
    "host": config.get("HOST") or None,
    "port": config.get("PORT") or None,
    "user": config.get("USER") or None,
    "password": config.get("PASSWORD") or None,
}
name = config["NAME"]
try:
    psycopg.connect(dbname=name, **params).close()
    print(f"Database {name!r} exists.")
except psycopg.OperationalError as exc:
    if "does not exist" not in str(exc):
        raise SystemExit(f"error: cannot reach the server in DATABASE_URL ({exc}). Check the URL and that the server runs.")
    # CREATE DATABASE cannot run inside a transaction, hence autocommit on the maintenance database.
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"Created database {name!r}.")
PYTHON
fi

echo "Applying migrations (pgmq, queues, Approvers group, expiry schedule)"
.venv/bin/python manage.py migrate --no-input --verbosity 1
.venv/bin/python manage.py queues status
.venv/bin/python manage.py shell --verbosity 0 -c "
from django.contrib.auth.models import Group
group = Group.objects.get(name='Approvers')
print('Approvers group: %d permission(s), %d member(s).' % (group.permissions.count(), group.user_set.count()))
"
echo "Database ready. Add an approver with: .venv/bin/python manage.py createapprover USERNAME"
