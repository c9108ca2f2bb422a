from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from responses_app.models import CannedResponse, ResponseSet


class _Dumper(yaml.SafeDumper):
    """Multi-line answers as literal blocks, so the file stays pleasant to edit by hand."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_responses() -> str:
    """The default canned set as it is now, admin edits included, as a responses file (scenarios and test
    runs' entries are not part of it)."""
    response_set = ResponseSet.get()
    document: dict[str, Any] = {
        "responses": dict(CannedResponse.objects.filter(scenario="", test_id="").order_by("id")
                          .values_list("prompt", "answer")),
        "defaults": {"unknown_response": response_set.unknown_response},
    }
    if response_set.settings:
        document["settings"] = response_set.settings
    header = (
        f"# Written by `python manage.py dumpresponses` at {timezone.now():%Y-%m-%d %H:%M:%S %Z}:\n"
        "# every canned response as the server answers it now, admin edits included.\n"
    )
    return header + yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000)


class Command(BaseCommand):
    help = (
        "Write the canned set as the server answers it now (admin edits included) in the responses.yml "
        "format, to keep admin edits in the file. Writes to standard output unless given --output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", help="the file to write (replaced atomically)")

    def handle(self, *args: Any, output: str | None, **options: Any) -> None:
        text = dump_responses()
        if not output:
            sys.stdout.write(text)
            return
        target = Path(output).expanduser().resolve()
        # Write beside the target and rename over it: a watcher never sees a half-written file.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
        count = text.count("\n")
        self.stderr.write(f"Wrote {CannedResponse.objects.filter(scenario='', test_id='').count()} responses to {target} ({count} lines)")
