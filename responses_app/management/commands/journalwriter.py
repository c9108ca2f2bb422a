from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from responses_app.team.journal import write_from


class Command(BaseCommand):
    help = (
        "Write request-journal batches (JSON lines on standard input) to the database until standard input "
        "closes. Each server process starts one of these for itself; there is no need to run it by hand."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        write_from(sys.stdin.buffer)
