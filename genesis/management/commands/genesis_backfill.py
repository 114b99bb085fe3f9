"""Republish rule versions that genesis never acknowledged, for example after a queue was purged."""
import argparse
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from singularity.rules.backfill import BackfillScope, candidate_ids, republish_batch

PROGRESS_BAR_WIDTH = 30  # characters


def parse_since(value: str):
    """Parse ``--since``: an ISO 8601 date and time; without an offset it is read as UTC."""
    # argparse turns ArgumentTypeError into a one-line usage error; parse_datetime raises ValueError
    # for well-formed but impossible dates, which gets the same message.
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is invalid: give an ISO 8601 date and time, for example 2025-01-31T14:00:00+00:00."
        )
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt_timezone.utc)


class Command(BaseCommand):
    help = (
        "Send rule versions that were published but never acknowledged to genesis_rule_updates again, "
        "in batches that each commit on their own. Versions whose message is still queued are skipped. "
        "Safe while workers run, and safe to interrupt and run again: genesis applies each version once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=parse_since, help="Only versions published at or after this ISO 8601 time (UTC without an offset).")
        parser.add_argument("--namespace", help="Only versions in this namespace.")
        parser.add_argument(
            "--all", action="store_true", dest="include_acknowledged",
            help="Also resend versions that were already applied or rejected (genesis answers them again without change).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count and list what would be sent; send nothing.")
        parser.add_argument(
            "--batch-size", type=int, default=None,
            help=f"Versions per transaction (default GENESIS_BACKFILL_BATCH_SIZE, now {settings.GENESIS_BACKFILL_BATCH_SIZE}).",
        )

    def handle(self, *args, **options):
        batch_size = settings.GENESIS_BACKFILL_BATCH_SIZE if options["batch_size"] is None else options["batch_size"]
        if batch_size < 1:
            raise CommandError(f"--batch-size {batch_size} is invalid: give a whole number >= 1.")
        scope = BackfillScope(
            since=options["since"], namespace=options["namespace"], include_acknowledged=options["include_acknowledged"]
        )
        dry_run = options["dry_run"]
        try:
            total = scope.queryset().count()
            summary = self._run(scope, total, batch_size, dry_run)
        except KeyboardInterrupt as exc:
            raise CommandError(
                "Interrupted. Every batch that finished is committed; run the same command again to continue."
            ) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"Backfill failed: {exc}. Check that the database is reachable and migrated ('manage.py migrate'); "
                "batches that finished are committed, so running the command again continues."
            ) from exc
        self.stdout.write(summary)

    def _run(self, scope: BackfillScope, total: int, batch_size: int, dry_run: bool) -> str:
        verb = "Would send" if dry_run else "Sent"
        sent = still_queued = left_scope = batches = done = 0
        after_id = 0
        # A dry run lists the rules on stdout instead, and a bar on stderr would break up that list.
        show_progress = not dry_run
        if show_progress:
            self._progress(done, total)
        while True:
            ids = candidate_ids(scope, after_id=after_id, limit=batch_size)
            if not ids:
                break
            result = republish_batch(scope, ids, dry_run=dry_run)
            after_id = ids[-1]
            batches += 1
            done += len(ids)
            sent += len(result.sent)
            still_queued += result.still_queued
            left_scope += result.no_longer_in_scope
            if dry_run:
                for rule in result.sent:
                    self.stdout.write(f"  {rule.rule_id} v{rule.version} ({rule.namespace}, published {rule.published_at:%Y-%m-%d %H:%M:%S})")
            if show_progress:
                self._progress(done, max(total, done))
        if show_progress:
            self.stderr.write("")
        return (
            f"{verb} {sent} rule version(s) in {batches} batch(es); {total} in scope, "
            f"{still_queued} skipped because their message is still queued, "
            f"{left_scope} skipped because they were acknowledged or taken by another backfill meanwhile."
        )

    def _progress(self, done: int, total: int) -> None:
        """Draw the progress bar on stderr, redrawn in place on a terminal and one line per batch elsewhere."""
        filled = PROGRESS_BAR_WIDTH if total == 0 else PROGRESS_BAR_WIDTH * done // total
        bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
        line = f"[{bar}] {done}/{total}"
        if self.stderr.isatty():
            self.stderr.write(f"\r{line}", ending="")
            self.stderr.flush()
        else:
            self.stderr.write(line)
