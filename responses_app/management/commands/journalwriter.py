from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from responses_app.team.journal_store import write_from


class Command(BaseCommand):
    help = (
        "Write request-journal batches (JSON lines on standard input) to the database until standard input "
        "closes, writing to standard output how many lines are done after each one. Each server process "
        "starts one of these for itself; there is no need to run it by hand."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        out = sys.stdout.buffer

        def acknowledge(done: int) -> None:
            try:
                out.write(b"%d\n" % done)
                out.flush()
            except (BrokenPipeError, ValueError):  # the server is gone: store what is left all the same
                pass

        write_from(sys.stdin.buffer, acknowledge)
