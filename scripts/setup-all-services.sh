#!/usr/bin/env bash
# Prepare the database, then start web, workers and the django-q2 scheduler in the background
# (manage.py runstack). Safe to run again: a stack that is already running is left alone.
#   scripts/setup-all-services.sh          set up and start
#   scripts/setup-all-services.sh --stop   stop the stack this script started
# HOST and PORT choose the web server's address (default 127.0.0.1:8000).
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir="${SINGULARITY_DATA_DIR:-.data}/run"
pid_file="$run_dir/stack.pid"
log_file="$run_dir/stack.log"
mkdir -p "$run_dir"

running_pid() {
    [ -f "$pid_file" ] || return 1
    local pid
    pid="$(cat "$pid_file")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

if [ "${1:-}" = "--stop" ]; then
    if pid="$(running_pid)"; then
        kill -TERM "$pid"
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$pid_file"
        echo "Stopped the stack (pid $pid)."
    else
        echo "The stack is not running; nothing to stop."
    fi
    exit 0
fi

if pid="$(running_pid)"; then
    echo "The stack is already running (pid $pid); its log is $log_file. Stop it with $0 --stop."
    exit 0
fi

scripts/setup-database.sh

host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
nohup .venv/bin/python manage.py runstack --host "$host" --port "$port" >"$log_file" 2>&1 &
echo $! >"$pid_file"

for _ in $(seq 1 600); do
    # runstack announces itself as soon as it has started its children. The workers print their own
    # line once they have checked their settings and connected, and only then is the stack usable.
    if grep -qs "Singularity is running" "$log_file" && grep -qs "Workers running" "$log_file"; then
        echo "Web, workers and scheduler are running (pid $(cat "$pid_file")); log: $log_file"
        echo "  approvals: http://$host:$port/observer/"
        echo "  admin:     http://$host:$port/admin/"
        exit 0
    fi
    if ! running_pid >/dev/null; then
        echo "error: the stack exited during start-up; its output:" >&2
        cat "$log_file" >&2
        rm -f "$pid_file"
        exit 1
    fi
    sleep 0.1
done
echo "error: the stack did not report it was running within 60 s; see $log_file" >&2
exit 1
