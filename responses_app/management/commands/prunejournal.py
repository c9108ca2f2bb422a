from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from responses_app.models import CannedResponse, JournalEntry
from responses_app.team.retention import expire_test_runs, prune


class Command(BaseCommand):
    help = (
        "Delete request-journal entries beyond the newest --keep rows or older than --days days "
        "(defaults: MOCKLLM_JOURNAL_MAX_ROWS and MOCKLLM_JOURNAL_MAX_DAYS; 0 means no limit), and the canned "
        "responses of test runs untouched for --test-run-hours (MOCKLLM_TEST_RUN_MAX_HOURS). "
        "Server processes also do this once a minute while they write the journal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--keep", type=int, default=settings.MOCKLLM_JOURNAL_MAX_ROWS,
                            help="keep at most this many newest entries (default %(default)s)")
        parser.add_argument("--days", type=float, default=settings.MOCKLLM_JOURNAL_MAX_DAYS,
                            help="delete entries older than this many days (default %(default)s)")
        parser.add_argument("--test-run-hours", type=float, default=settings.MOCKLLM_TEST_RUN_MAX_HOURS,
                            help="delete test runs' canned responses untouched this long (default %(default)s)")

    def handle(self, *args: Any, keep: int, days: float, test_run_hours: float, **options: Any) -> None:
        if keep < 0 or days < 0 or test_run_hours < 0:
            self.stderr.write("--keep, --days and --test-run-hours cannot be negative")
            raise SystemExit(2)
        before = JournalEntry.objects.count()
        deleted = prune(keep, days)
        self.stdout.write(f"Deleted {deleted} of {before} journal entries; {before - deleted} are kept "
                          f"(newest {keep or 'any number'}, last {days or 'any number of'} days).")
        runs = CannedResponse.objects.exclude(test_id="").values("test_id").distinct().count()
        expired = expire_test_runs(test_run_hours)
        self.stdout.write(f"Deleted {expired} canned responses of test runs untouched for {test_run_hours:g} hours "
                          f"({CannedResponse.objects.exclude(test_id='').values('test_id').distinct().count()} "
                          f"of {runs} test runs left).")
