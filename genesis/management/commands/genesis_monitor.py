"""Run the genesis monitor once: sample the queues, evaluate the alerts, print what changed."""
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from genesis.models import AlertIncident, IncidentStatus, MonitorSample


class Command(BaseCommand):
    help = (
        "Run the monitor once, as the django-q2 schedule does: store a sample of every queue and the rule "
        "pipeline, open or resolve alert incidents, and delete samples past their retention."
    )

    def handle(self, *args, **options):
        from genesis.monitor import run_monitor

        try:
            run = run_monitor()
        except DatabaseError as exc:
            raise CommandError(f"The monitor failed: {exc}. Check that the database is migrated ('manage.py migrate').") from exc
        sample = MonitorSample.objects.get(pk=run["sample_id"])
        lag = "-" if sample.backlog_age_seconds is None else f"{sample.backlog_age_seconds:.0f} s"
        self.stdout.write(
            f"Sampled {sample.queues.count()} queue(s): rule update backlog {lag}, "
            f"{sample.unacknowledged} unacknowledged ({sample.unacknowledged_overdue} overdue), "
            f"{sample.apply_failures} apply failure(s)."
        )
        self.stdout.write(f"Opened {len(run['opened'])} incident(s), resolved {len(run['resolved'])}, pruned {run['pruned']} old sample(s).")
        for incident in AlertIncident.objects.filter(status=IncidentStatus.OPEN).order_by("opened_at"):
            self.stdout.write(f"  open since {incident.opened_at:%Y-%m-%d %H:%M:%S}: {incident.message}")
