from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from responses_app.journal import prune
from responses_app.models import JournalEntry


class Command(BaseCommand):
    help = (
        "Delete request-journal entries beyond the newest --keep rows or older than --days days "
        "(defaults: MOCKLLM_JOURNAL_MAX_ROWS and MOCKLLM_JOURNAL_MAX_DAYS; 0 means no limit). "
        "Server processes also prune once a minute while they write the journal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--keep", type=int, default=settings.MOCKLLM_JOURNAL_MAX_ROWS,
                            help="keep at most this many newest entries (default %(default)s)")
        parser.add_argument("--days", type=float, default=settings.MOCKLLM_JOURNAL_MAX_DAYS,
                            help="delete entries older than this many days (default %(default)s)")

    def handle(self, *args: Any, keep: int, days: float, **options: Any) -> None:
        if keep < 0 or days < 0:
            self.stderr.write("--keep and --days cannot be negative")
            raise SystemExit(2)
        before = JournalEntry.objects.count()
        deleted = prune(keep, days)
        self.stdout.write(f"Deleted {deleted} of {before} journal entries; {before - deleted} are kept "
                          f"(newest {keep or 'any number'}, last {days or 'any number of'} days).")
