"""Show how pgmq was installed and the state of every queue; list dead-lettered messages."""
from django.core.management.base import BaseCommand, CommandError
import json

from django.db import DatabaseError, OperationalError

from singularity.messaging.queues import DEAD_LETTERS


class Command(BaseCommand):
    help = "Inspect pgmq: 'status' shows the install record and each queue's figures; 'dead-letters' lists given-up messages."

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="command", metavar="{status,dead-letters}", required=True)
        subcommands.add_parser("status", help="pgmq install method and version, and each queue's figures.")
        dead = subcommands.add_parser("dead-letters", help="List messages in the dead-letter queue without consuming them.")
        dead.add_argument("--limit", type=int, default=20, help="How many to show, newest first (default 20).")
        dead.add_argument("--body", action="store_true", help="Also print each original message body as JSON.")

    def handle(self, *args, **options):
        try:
            if options["command"] == "status":
                self._status()
            else:
                self._dead_letters(options["limit"], show_body=options["body"])
        except OperationalError as exc:
            raise CommandError(
                f"Cannot connect to the database: {' '.join(str(exc).split())} "
                "Check DATABASE_URL, or unset it to use the embedded server."
            ) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"Reading pgmq failed: {exc} Run 'manage.py migrate' to install pgmq and create the queues."
            ) from exc

    def _status(self):
        from singularity.models import PgmqInstallation, Queue

        record = PgmqInstallation.objects.first()
        if record is None:
            self.stdout.write("pgmq: no install record; run 'manage.py migrate'.")
        else:
            self.stdout.write(
                f"pgmq {record.version}, installed by {record.get_method_display()} "
                f"({'installed by the migration' if record.installed_now else 'found already installed'}, "
                f"recorded {record.recorded_at:%Y-%m-%d %H:%M:%S %Z})"
            )
        header = f"{'queue':<32} {'length':>8} {'visible':>8} {'oldest_s':>9} {'newest_s':>9} {'total':>9}  notify"
        self.stdout.write(header)
        for metrics in Queue.objects.metrics_all():
            notify = "on" if Queue.objects.notify_enabled(metrics.queue_name) else "off"
            self.stdout.write(
                f"{metrics.queue_name:<32} {metrics.queue_length:>8} {metrics.visible_length:>8} "
                f"{_age(metrics.oldest_msg_age_sec):>9} {_age(metrics.newest_msg_age_sec):>9} "
                f"{metrics.total_messages:>9}  {notify}"
            )

    def _dead_letters(self, limit: int, *, show_body: bool):
        from django.db import connection

        from singularity.models import Queue

        if limit < 1:
            raise CommandError(f"--limit {limit} is invalid: give a number >= 1.")
        if not Queue.objects.exists(DEAD_LETTERS):
            raise CommandError(f"Queue {DEAD_LETTERS!r} does not exist; run 'manage.py migrate'.")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT msg_id, enqueued_at, message->>'queue', message->>'reason', message->>'error', message->'body' "
                "FROM pgmq.q_dead_letters ORDER BY msg_id DESC LIMIT %s",
                [limit],
            )
            rows = cursor.fetchall()
        if not rows:
            self.stdout.write("No dead-lettered messages.")
        for msg_id, enqueued_at, queue, reason, error, body in rows:
            self.stdout.write(f"#{msg_id} {enqueued_at:%Y-%m-%d %H:%M:%S} from {queue}: {reason}: {error}")
            if show_body:
                # Django loads jsonb as text, so the body arrives as its JSON string.
                parsed = json.loads(body) if isinstance(body, str) else body
                self.stdout.write(f"    body: {json.dumps(parsed, ensure_ascii=False)}")


def _age(seconds):
    return "-" if seconds is None else str(seconds)
