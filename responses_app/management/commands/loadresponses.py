from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from responses_app.canned.loading import load_responses_file
from responses_app.canned.responses_file import ResponsesFileError


class Command(BaseCommand):
    help = (
        "Load a responses file (the original server's responses.yml format) into the database. "
        "The whole file is checked first and written in one transaction; rows typed in the admin are never changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths", nargs="*",
            help="the YAML file(s) to load (default: MOCKLLM_RESPONSES_FILE, now "
            f"{':'.join(str(p) for p in settings.MOCKLLM_RESPONSES_FILES)})",
        )

    def handle(self, *args: Any, paths: list[str], **options: Any) -> None:
        for path in paths or settings.MOCKLLM_RESPONSES_FILES:
            try:
                summary = load_responses_file(path)
            except ResponsesFileError as exc:
                raise CommandError(f"Nothing was loaded from {exc.path}; the file has problems:\n{exc}") from None
            self.stdout.write(str(summary))
            for warning in summary.warnings:
                self.stderr.write(f"  warning: {warning}")
            for prompt in summary.admin_kept:
                self.stderr.write(
                    f"  kept the admin's answer for {prompt[:60]!r}: it differs from the file "
                    "(`python manage.py dumpresponses` writes the admin's answers back to YAML)"
                )
