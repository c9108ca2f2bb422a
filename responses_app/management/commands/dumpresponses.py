from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from responses_app.canned.dumping import DumpError, dump_default_set


def write_atomically(target: Path, text: str) -> None:
    """Write beside the target and rename over it: a reader (the watcher) sees the old file or the new
    one, never half of one. The new file keeps the old one's permissions."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class Command(BaseCommand):
    help = (
        "Write the default canned set, as the server answers it now, as a responses file: the entries of the "
        "responses file(s) and those typed or edited in the admin, each with all its options and in the order "
        "they are tried, the default answer and the settings (not the scenarios' entries, nor those a test run "
        "added). Loading the result answers every request as the server does now. What is written is read back "
        "first; a set that would not load back the same is refused and nothing is written. To standard output "
        "unless given --output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", help="the file to write (replaced atomically, keeping its permissions)")
        parser.add_argument("--recordings", action="store_true",
                            help="only the recordings (record and replay), without the default answer and "
                                 "settings: a file to load beside the others")
        parser.add_argument("--test-id", default="", help="a test run's own entries (X-Mock-Test-Id) instead of "
                                                          "the default set's, without the default answer and settings")

    def handle(self, *args: Any, output: str | None, recordings: bool = False, test_id: str = "",
               **options: Any) -> None:
        what = "recordings" if recordings else "set"
        header = (
            f"# Written by `python manage.py dumpresponses` at {timezone.now():%Y-%m-%d %H:%M:%S %Z}: the default\n"
            f"# {what} as the server answered it, admin edits included.\n"
        )
        if test_id:
            header = header.replace("the default\n# ", f"test run {test_id!r}'s\n# ")
        try:
            dump = dump_default_set(header, recordings_only=recordings, test_id=test_id)
        except DumpError as exc:
            raise CommandError(f"Nothing was written: {exc}") from None
        if not output:
            self.stdout.write(dump.text, ending="")
            return
        target = Path(output).expanduser().resolve()
        try:
            write_atomically(target, dump.text)
        except OSError as exc:
            raise CommandError(f"Nothing was written: cannot write {target}: {exc.strerror or exc}") from None
        admin = f" ({dump.from_admin} from the admin)" if dump.from_admin else ""
        settings = f" and {dump.settings} setting{'s' if dump.settings != 1 else ''}" if dump.settings else ""
        default = "" if recordings or test_id else ", the default answer"
        self.stderr.write(f"Wrote {dump.entries} response{'s' if dump.entries != 1 else ''}{admin}{default}"
                          f"{settings} to {target}")
