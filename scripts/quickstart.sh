#!/usr/bin/env bash
# Set up everything on a fresh machine and send one request through the whole queue path:
# install, start the embedded PostgreSQL, install pgmq and migrate, run a worker, ask, stop.
# Then the agent demo: an agent run waits for a person's approval before it changes a file.
# QUICKSTART_DEMO=0 skips the demo; DEMO_TIMEOUT (seconds, default 600) bounds its wait.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh
echo "Migrating the database (pgmq is installed by a migration)"
.venv/bin/python manage.py migrate --verbosity 0
.venv/bin/python manage.py queues status

worker_log="$(mktemp)"
.venv/bin/python manage.py run_workers >"$worker_log" 2>&1 &
worker_pid=$!
stop_worker() {
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
    rm -f "$worker_log"
}
trap stop_worker EXIT

for _ in $(seq 1 300); do
    grep -q "Workers running" "$worker_log" && break
    if ! kill -0 "$worker_pid" 2>/dev/null; then
        echo "error: the worker exited during start-up:" >&2
        cat "$worker_log" >&2
        exit 1
    fi
    sleep 0.1
done

echo
echo "Sending a sample request: dispatch_request -> ai_requests -> nexus -> ai_results -> JobResult"
.venv/bin/python manage.py ask "Hello from the Singularity quickstart" --timeout 60

stop_worker
trap - EXIT

if [ "${QUICKSTART_DEMO:-1}" = "0" ]; then
    echo
    echo "Done. Next: '.venv/bin/python manage.py runstack' runs web, workers and scheduler."
    exit 0
fi

# The agent demo: web, workers and scheduler in the background, an approver account, and one
# documentation-agent run that waits for that approver's decision before it changes a file.
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
echo
echo "Starting web, workers and scheduler in the background for the agent demo"
HOST="$host" PORT="$port" scripts/setup-all-services.sh
password="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
APPROVER_PASSWORD="$password" .venv/bin/python manage.py createapprover demo --password-from-env --verbosity 0
# createapprover keeps an existing account's password, so set this run's password explicitly.
APPROVER_PASSWORD="$password" .venv/bin/python manage.py shell --verbosity 0 -c "
import os
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username='demo')
user.set_password(os.environ['APPROVER_PASSWORD'])
user.save(update_fields=['password'])
"
echo
echo "Approver account (shown only now): username 'demo', password '$password'"
echo "Sign in at http://$host:$port/observer/login/ and approve the request below."
echo
if ! .venv/bin/python manage.py agents demo --base-url "http://$host:$port" --timeout "${DEMO_TIMEOUT:-600}"; then
    echo "The demo ended without an applied change; the request stays open at http://$host:$port/observer/."
fi
echo
echo "The stack keeps running at http://$host:$port/ ; stop it with scripts/setup-all-services.sh --stop"
