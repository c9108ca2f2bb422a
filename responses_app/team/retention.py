"""What the server keeps, and for how long: the request journal's bounds, and test runs' canned responses.

Both run once a minute in every journal writer (journal.py) and on demand with `manage.py prunejournal`.
"""
from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from responses_app.models import CannedResponse, JournalEntry

logger = logging.getLogger("mockllm.retention")


def prune(max_rows: int, max_days: float) -> int:
    """Delete journal rows beyond the newest `max_rows` or older than `max_days` (0: no limit)."""
    deleted = 0
    if max_days:
        cutoff = timezone.now() - datetime.timedelta(days=max_days)
        deleted += JournalEntry.objects.filter(created_at__lt=cutoff).delete()[0]
    if max_rows:
        boundary = JournalEntry.objects.order_by("-id").values_list("id", flat=True)[max_rows:max_rows + 1].first()
        if boundary is not None:
            deleted += JournalEntry.objects.filter(id__lte=boundary).delete()[0]
    return deleted


def expire_test_runs(max_hours: float) -> int:
    """Delete the canned responses of test runs (X-Mock-Test-Id) untouched for `max_hours` (0: keep them):
    a suite that crashed before cleaning up leaves no set behind in every server's memory."""
    if not max_hours:
        return 0
    cutoff = timezone.now() - datetime.timedelta(hours=max_hours)
    with transaction.atomic():
        old = CannedResponse.objects.exclude(test_id="").filter(updated_at__lt=cutoff)
        runs = len(set(old.values_list("test_id", flat=True)))
        if not runs:
            return 0
        deleted = old.delete()[0]
    logger.info("expired %d canned responses of %d old test runs", deleted, runs,
                extra={"event": "test_runs_expired", "entries": deleted, "runs": runs})
    return deleted
