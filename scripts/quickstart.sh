#!/usr/bin/env bash
# Set up everything on a fresh machine and send one request through the whole queue path:
# install, start the embedded PostgreSQL, install pgmq and migrate, run a worker, ask, stop.
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
echo
echo "Done. Next: '.venv/bin/python manage.py runstack' runs web, workers and scheduler;"
echo "'.venv/bin/python manage.py ask \"your question\"' sends a request to it."
