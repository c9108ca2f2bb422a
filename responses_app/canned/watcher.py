"""Watchdog glue: notice saves of the responses files, wait until a save is complete, then load it.

One save is several file-system events (an editor writes a temporary file and renames it; `open('w')`
gives modified, modified, closed), and a file caught mid-write, cut between two lines, is valid YAML
that lacks its last entries. So the watcher
- watches each file's directory, not the file, and debounces: a load starts only after a quiet spell;
- waits while a writer still has the file open (a `modified` not yet followed by `closed`);
- reads a file written in place until two reads agree;
- loads at once a file renamed into place (it was complete before it was there), and any load that is
  not shaped like a cut (loading.signs_of_a_cut): renames and removals in the middle of the file, or of
  its last entry, and additions anywhere;
- holds back a load of a file written in place that drops more of its last entries than it adds (or
  loses a setting) until the file has stayed unchanged for `confirm_cut` seconds since its last change,
  or `patience` seconds once the file has been seen unfinished (unparseable, written in several opens
  between two reads, or changed while a load was held): a script appending to the file in pieces, each
  in an open of its own.
Loads go through loading.py, the same code `loadresponses` runs. Only one watcher writes at a time,
across processes (and hosts, on PostgreSQL): see WriterLock.
"""
from __future__ import annotations

import fcntl
import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from responses_app.canned.loading import read_responses_file, record_load_error, signs_of_a_cut, write_responses
from responses_app.canned.responses_file import ParsedResponses, ResponsesFileError

logger = logging.getLogger("mockllm.watcher")

# A fixed key for PostgreSQL's advisory lock: the bytes of "mockllm" as a number.
ADVISORY_LOCK_KEY = int.from_bytes(b"mockllm", "big")


class WriterLock:
    """Held by the one watcher allowed to write: a PostgreSQL session advisory lock, or a lock file
    beside the SQLite database. Either is released by the operating system or the database server
    when the holding process dies, so a crashed watcher never blocks the next one."""

    def __init__(self) -> None:
        self._handle: Any = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        database = connections["default"]
        if database.vendor == "postgresql":
            import psycopg

            params = database.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            conn = psycopg.connect(**params, autocommit=True)
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]
            if not got:
                conn.close()
                return False
            self._handle = conn
            return True
        name = str(database.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            self._handle = True
            return True
        handle = open(f"{name}.watcher.lock", "a")  # noqa: SIM115 (held open while this process writes)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle not in (None, True):
            handle.close()


class ResponsesWatcher:
    """Watches responses files and loads each completed save, in one worker thread."""

    def __init__(
        self, paths: list[Path], *, debounce: float = 0.3, settle: float = 0.1, write_wait: float = 10.0,
        confirm_cut: float = 0.6, patience: float = 2.0, lock_retry: float = 2.0,
    ) -> None:
        self.paths = [Path(p).expanduser().resolve() for p in paths]
        self.debounce = debounce
        self.settle = settle
        self.write_wait = write_wait
        self.confirm_cut = confirm_cut
        self.patience = patience
        self.lock_retry = lock_retry
        self.lock = WriterLock()
        self._due: dict[Path, float] = {}
        self._writing: dict[Path, bool] = {}
        self._renamed_in: dict[Path, bool] = {}  # the file's last change was a rename into place
        self._last_event: dict[Path, float] = {}
        self._held: dict[Path, tuple[str, ParsedResponses, float]] = {}  # a load held back: text, parsed, since
        self._unfinished: set[Path] = set()  # seen unfinished since its last load: be patient with it
        self._writes: dict[Path, int] = {}  # opens that wrote to the file since the watcher last read it
        self._wake = threading.Condition()
        self._stopped = threading.Event()
        self._observer: Any = None
        self._worker: threading.Thread | None = None
        self.loads = 0  # completed loads, for tests and status

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> ResponsesWatcher:
        self._observer = Observer()
        handler = _Handler(self)
        for directory in sorted({path.parent for path in self.paths}):
            directory.mkdir(parents=True, exist_ok=True)
            self._observer.schedule(handler, str(directory), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        self._worker = threading.Thread(target=self._run, name="mockllm-watcher", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._wake:
            self._wake.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.lock.release()

    # -- events (observer thread) -----------------------------------------------------------------
    def notice(self, path: Path, event_type: str) -> None:
        """Record one file-system event for a watched file and (re)start its quiet-spell timer."""
        if event_type in ("opened", "closed_no_write", "attrib"):
            return  # readers, including our own reads
        now = time.monotonic()
        with self._wake:
            if event_type == "modified":
                self._writing[path] = True
                self._renamed_in[path] = False
            elif event_type in ("closed", "moved_in", "moved_away", "deleted", "created"):
                self._writing[path] = False
                if event_type == "closed":
                    self._writes[path] = self._writes.get(path, 0) + 1
                else:
                    # renamed (or moved from elsewhere) into place: complete before it got here
                    self._renamed_in[path] = event_type in ("moved_in", "created")
            self._last_event[path] = now
            self._due[path] = now + self.debounce
            self._wake.notify()

    # -- loading (worker thread) -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self.lock.try_acquire():
                logger.info("another watcher is writing the responses; standing by", extra={"event": "watcher_standby"})
                if self._stopped.wait(self.lock_retry):
                    return
            logger.info("watching responses files", extra={"event": "watcher_started", "files": [str(p) for p in self.paths]})
            for path in self.paths:  # changes made while no watcher ran
                self._load(path)
            while not self._stopped.is_set():
                for path in self._next_due():
                    self._load(path)
        finally:
            close_old_connections()
            connections.close_all()

    def _next_due(self) -> list[Path]:
        with self._wake:
            while not self._stopped.is_set():
                now = time.monotonic()
                ready = [p for p, when in self._due.items() if when <= now]
                if ready:
                    for path in ready:
                        del self._due[path]
                        still_writing = self._writing.get(path) and now - self._last_event[path] < self.write_wait
                        if still_writing:  # a writer has the file open: wait for it to close it
                            self._due[path] = now + self.debounce
                    ready = [p for p in ready if p not in self._due]
                    if ready:
                        return ready
                timeout = min(self._due.values()) - now if self._due else None
                self._wake.wait(timeout)
        return []

    def _load(self, path: Path) -> None:
        with self._wake:
            if self._writes.pop(path, 0) > 1:
                self._unfinished.add(path)  # written in several opens since last read: perhaps in pieces
        try:
            held = self._held.get(path)
            if held is not None and _read(path) == held[0]:
                text, parsed = held[0], held[1]  # the file held back, still as it was
            else:  # a file renamed into place was complete before it got here: one read is enough
                text, parsed = read_responses_file(path, settle_seconds=0 if self._renamed_in.get(path) else self.settle)
            if self._hold(path, text, parsed):
                return
            write_responses(parsed, str(path))
            self.loads += 1
            self._held.pop(path, None)
            self._unfinished.discard(path)
        except ResponsesFileError as exc:
            self._held.pop(path, None)
            if not self._renamed_in.get(path):
                self._unfinished.add(path)  # perhaps a file being written: empty, or cut mid-line
            record_load_error(exc)
        except Exception:
            logger.exception("could not load the responses file", extra={"file": str(path)})
            close_old_connections()

    def _hold(self, path: Path, text: str, parsed: ParsedResponses) -> bool:
        """Whether to hold this load back a while: the file, written in place, looks cut short (see the
        module's docstring). Then it is loaded once it has stayed unchanged long enough."""
        if self._renamed_in.get(path) or not (sign := signs_of_a_cut(parsed, str(path))):
            return False
        now = time.monotonic()
        held = self._held.get(path)
        if held is not None and held[0] != text:
            self._unfinished.add(path)  # it changed while its load was held: a writer at work
        quiet = self.patience if path in self._unfinished else self.confirm_cut
        with self._wake:
            since = self._last_event.get(path, held[2] if held is not None and held[0] == text else now)
            ready = since + quiet
            if now >= ready and held is not None and held[0] == text:
                return False
            self._due[path] = max(ready, now + 0.01)
        if held is None or held[0] != text:
            self._held[path] = (text, parsed, now)
            logger.info(
                f"the responses file looks cut short ({sign}): loading it once it stays unchanged for {quiet:g} s",
                extra={"event": "load_held", "file": str(path), "reason": sign, "seconds": quiet},
            )
        return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ResponsesWatcher) -> None:
        self.watcher = watcher
        self.watched = set(watcher.paths)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw, moved in ((event.src_path, "moved_away"), (getattr(event, "dest_path", ""), "moved_in")):
            if raw:
                path = Path(raw if isinstance(raw, str) else raw.decode()).resolve()
                if path in self.watched:
                    self.watcher.notice(path, moved if event.event_type == "moved" else event.event_type)


_running: ResponsesWatcher | None = None
_running_lock = threading.Lock()


def start_watcher(paths: list[Path] | None = None) -> ResponsesWatcher:
    """Start this process's watcher once (the runserver process, or a server with MOCKLLM_HOT_RELOAD=1)."""
    global _running
    with _running_lock:
        if _running is None:
            _running = ResponsesWatcher(
                paths or settings.MOCKLLM_RESPONSES_FILES, debounce=settings.MOCKLLM_RELOAD_DEBOUNCE_SECONDS
            ).start()
        return _running
