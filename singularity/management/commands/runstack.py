"""Start the web server, the workers and the django-q2 scheduler in the foreground; Ctrl-C stops all."""
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from singularity.database import database_url

STOP_GRACE_SECONDS = 15


class Command(BaseCommand):
    help = (
        "Apply migrations, then run the web server, the queue workers and the django-q2 scheduler "
        "as child processes until Ctrl-C or SIGTERM, which stops all of them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address for the web server (default: 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port for the web server (default: 8000).")
        parser.add_argument("--no-scheduler", action="store_true", help="Do not start the django-q2 cluster.")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        env = {**os.environ, "DATABASE_URL": database_url(settings.DATABASES["default"]), "PYTHONUNBUFFERED": "1"}
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        address = f"{options['host']}:{options['port']}"
        commands = {
            # --insecure serves the admin's static files even with DEBUG off; runstack is for development.
            "web": [*manage, "runserver", "--noreload", "--insecure", address],
            "workers": [*manage, "run_workers"],
        }
        if not options["no_scheduler"]:
            commands["scheduler"] = [*manage, "qcluster"]

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

        children = {}
        try:
            for name, command in commands.items():
                # A new session keeps Ctrl-C away from the children, so they stop in order below.
                children[name] = subprocess.Popen(command, env=env, start_new_session=True)
            self.stdout.write(
                f"Singularity is running:\n"
                f"  approvals: http://{address}/observer/\n"
                f"  admin:    http://{address}/admin/\n"
                f"  ask:      {sys.executable} manage.py ask \"hello\"\n"
                f"  database: {settings.DATABASES['default']['NAME']} on {settings.DATABASES['default']['HOST']}\n"
                f"Processes: {', '.join(f'{name} (pid {child.pid})' for name, child in children.items())}. Ctrl-C stops them."
            )
            self.stdout.flush()
            exited = None
            while not stop.wait(0.5):
                exited = next((name for name, child in children.items() if child.poll() is not None), None)
                if exited:
                    break
        finally:
            self._stop(children)
        if exited:
            raise CommandError(
                f"The {exited} process exited on its own (status {children[exited].returncode}), so runstack "
                "stopped the others. See its output above."
            )
        self.stdout.write("Stopped web, workers and scheduler.")

    def _stop(self, children: dict) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {STOP_GRACE_SECONDS} s; killing it.")
                child.kill()
                child.wait()
