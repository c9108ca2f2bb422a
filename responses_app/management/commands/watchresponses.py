from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from responses_app.canned.watcher import ResponsesWatcher


class Command(BaseCommand):
    help = (
        "Watch the responses file(s) and load every completed save, for deployments where the server "
        "processes do not watch (see MOCKLLM_HOT_RELOAD). Only one watcher writes at a time; others stand by."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", help="files to watch (default: MOCKLLM_RESPONSES_FILE)")
        parser.add_argument("--debounce", type=float, default=settings.MOCKLLM_RELOAD_DEBOUNCE_SECONDS,
                            help="seconds of quiet after a save before loading (default %(default)s)")

    def handle(self, *args: Any, paths: list[str], debounce: float, **options: Any) -> None:
        files = [Path(p) for p in paths] or settings.MOCKLLM_RESPONSES_FILES
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        watcher = ResponsesWatcher(files, debounce=debounce).start()
        self.stdout.write("Watching " + ", ".join(str(p) for p in watcher.paths) + " (Ctrl-C to stop)")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
