"""The canned set: one row per prompt, plus one row for the set as a whole.

Longer than 350 lines: every model of the one app lives here (Django's migrations and admin expect that).
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F
from django.dispatch import Signal

from responses_app.canned.entries import entry_digest, validate_row
from responses_app.canned.fields import EntryError

# Admin rows come after every file entry of the same priority.
ADMIN_POSITION = 1_000_000_000

SetKey = tuple[str, str]  # (scenario, test_id) names one set of entries; ("", "") is the default set

# Sent once a change to the canned sets (entries, default answer, settings or API keys) has committed;
# each process's index listens (canned/index.py) and tells the other processes (canned/change_bus.py).
sets_changed = Signal()


class CannedResponseQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete these entries and record the change. A test run's or scenario's set left empty goes
        altogether (processes drop sets without a version row), so a finished run leaves nothing behind;
        the other sets touched get a new version, and are read whole again by every process."""
        with transaction.atomic():
            version = SetVersion.next_version()  # first: no change can commit between the lookup and the delete
            touched = set(self.values_list("scenario", "test_id"))
            result = super().delete()
            changed = set()
            for key in touched:
                scenario, test_id = key
                if key == ("", "") or CannedResponse.objects.filter(scenario=scenario, test_id=test_id).exists():
                    changed.add(key)
                else:
                    SetVersion.objects.filter(scenario=scenario, test_id=test_id).delete()
            SetVersion.mark(changed, version)
        return result


class Source(models.TextChoices):
    FILE = "file", "responses file"
    ADMIN = "admin", "admin"
    RECORDED = "recorded", "recorded"


class CannedResponse(models.Model):
    """A prompt, how it is matched, and the reply served for it.

    Rows from a responses file have source=file and are kept in step with that file by every load.
    Rows typed in the admin, or file rows edited there, have source=admin: loads never change or
    delete them; they only note in `file_answer` what the file says, so a disagreement is visible.
    """

    prompt = models.TextField(
        help_text="The text this entry answers: by default, the last user message, exactly "
        "(surrounding white space ignored; a lower-case prompt answers any capitalisation)."
    )
    # sha256 of the prompt and the options that decide what it matches: a fixed-size unique key,
    # since long prompts are too big for a unique index on PostgreSQL.
    key_digest = models.CharField(max_length=64, editable=False)
    answer = models.TextField(blank=True, help_text="The text of the reply.")
    source = models.CharField(
        max_length=8,
        choices=Source.choices,
        default=Source.ADMIN,
        help_text="'responses file' rows follow the file on every load; 'admin' rows are never changed by a load.",
    )
    source_file = models.CharField(
        max_length=1024, blank=True, help_text="The responses file this entry came from, if any."
    )
    file_answer = models.TextField(
        null=True,
        blank=True,
        help_text="For an admin row whose prompt is also in a responses file: the answer that file gives.",
    )
    options = models.JSONField(
        default=dict, blank=True,
        help_text='Matching rules and reply details, as JSON; {} for a plain prompt and answer. For example '
        '{"match": "contains", "model": "gpt-4*", "response": {"tool_calls": [{"name": "get_weather", '
        '"arguments": {"city": "Paris"}}]}}. The README lists every option.',
    )
    position = models.IntegerField(default=ADMIN_POSITION, help_text="Order among entries of equal priority.")
    scenario = models.CharField(
        max_length=100, blank=True, default="",
        help_text="The named set this entry belongs to, for requests whose API key maps to it or that send "
        "`X-Mock-Scenario`; blank for the default set, which every request falls back to.",
    )
    test_id = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Only requests sending this `X-Mock-Test-Id` see this entry (set by the control API for one "
        "test run); blank for everyone.",
    )
    reviewed = models.BooleanField(
        default=True, help_text="False for a recording nobody has approved yet (see Record and replay).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CannedResponseQuerySet.as_manager()

    class Meta:
        ordering = ["prompt"]
        verbose_name = "canned response"
        constraints = [
            models.UniqueConstraint(fields=["scenario", "test_id", "key_digest"], name="one_entry_per_prompt_per_set"),
        ]
        indexes = [models.Index(fields=["test_id", "scenario", "id"], name="entries_by_set_and_id")]

    def __str__(self) -> str:
        return self.prompt if len(self.prompt) <= 80 else self.prompt[:77] + "..."

    def clean(self) -> None:
        self.clean_options()
        clash = CannedResponse.objects.filter(
            key_digest=entry_digest(self.prompt, self.options), scenario=self.scenario, test_id=self.test_id,
        ).exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError({"prompt": ValidationError(
                "Another canned response of this set already has exactly this prompt and matching options; "
                "edit that one instead.", code="duplicate_prompt")})

    @property
    def set_key(self) -> SetKey:
        return (self.scenario, self.test_id)

    def clean_options(self) -> None:
        """Check the prompt, answer and options together (the responses file's rules)."""
        try:
            self.options = validate_row(self.prompt, self.answer, self.options)
        except EntryError as exc:
            raise ValidationError({"options": exc.message}, code="invalid_options") from None

    def save(self, *args, **kwargs) -> None:
        self.key_digest = entry_digest(self.prompt, self.options)
        with transaction.atomic():
            version = SetVersion.next_version()  # first: a new row's id is then in the order of the changes
            sets = {self.set_key}
            adding = self.pk is None
            if not adding:  # an edit may move the entry from one set to another
                sets.update(CannedResponse.objects.filter(pk=self.pk).values_list("scenario", "test_id"))
            super().save(*args, **kwargs)
            SetVersion.mark(sets, version, added_only=adding)

    def delete(self, *args, **kwargs):
        return CannedResponse.objects.filter(pk=self.pk).delete()

    @property
    def recorded(self) -> bool:
        return "recorded" in (self.options or {})

    @property
    def conflicts_with_file(self) -> bool:
        return self.source == Source.ADMIN and self.file_answer is not None and self.file_answer != self.answer


class ResponseSet(models.Model):
    """The canned set as a whole (a single row): default answer, settings, version and load status."""

    SINGLETON_ID = 1

    unknown_response = models.TextField(
        default="I don't know the answer to that. This is a mock response.",
        help_text="Served when no canned prompt matches.",
    )
    unknown_response_source = models.CharField(max_length=8, choices=Source.choices, default=Source.FILE)
    file_unknown_response = models.TextField(null=True, blank=True)
    settings = models.JSONField(default=dict, blank=True, help_text="The responses file's `settings:` block.")
    # Bumped in the same transaction as every change to the set; each server process compares it
    # with the version of its in-memory index.
    version = models.BigIntegerField(default=0)
    last_loaded_at = models.DateTimeField(null=True, blank=True)
    last_loaded_file = models.CharField(max_length=1024, blank=True)
    last_load_summary = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "response set"
        verbose_name_plural = "response set"

    def __str__(self) -> str:
        return "Default answer, settings and load status"

    @classmethod
    def get(cls) -> ResponseSet:
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return obj


class SetVersion(models.Model):
    """The version of one set of entries (a scenario, a test run's entries, or the default set).

    Each change to the sets takes the next ResponseSet.version (one number for all sets, so a set deleted
    and made again never repeats a version) and stamps it on the sets it changed, so a process rebuilds
    the sets that changed and not the whole index: a test run adding an entry does not rebuild a
    100,000-entry default set in every server process.

    `rebuild_from` is the last version at which the set changed other than by adding entries (an edit,
    a delete, a load). A process holding the set at that version or a later one reads only the rows
    added since (their ids are larger: a change takes the version, a row lock held until it commits,
    before it inserts), so adding one entry to a large set costs one entry, not the set.
    """

    scenario = models.CharField(max_length=100, blank=True, default="")
    test_id = models.CharField(max_length=200, blank=True, default="")
    version = models.BigIntegerField(default=0)
    rebuild_from = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scenario", "test_id"], name="one_version_per_set")]

    def __str__(self) -> str:
        return f"{self.scenario or '(default)'} / {self.test_id or '(all tests)'}: {self.version}"

    @classmethod
    def bump(cls, sets: Iterable[SetKey] | None = None, *, added_only: bool = False) -> int:
        """Record that the canned sets changed; call inside the transaction that changed them. Returns
        the new version.

        sets: the (scenario, test_id) sets whose entries changed; () when only the default answer,
        settings or API keys did; None when any set may have changed. added_only: the change only
        added rows, inserted after this call (see the class). `sets_changed` is sent once the
        transaction commits.
        """
        version = cls.next_version()
        cls.mark(sets, version, added_only=added_only)
        return version

    @staticmethod
    def next_version() -> int:
        """Take the next version: the first step of every change. The row lock it takes on ResponseSet
        until the transaction ends puts all changes in one order."""
        ResponseSet.get()
        ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).update(version=F("version") + 1)
        return ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).values_list("version", flat=True).get()

    @classmethod
    def mark(cls, sets: Iterable[SetKey] | None, version: int, *, added_only: bool = False) -> None:
        """Stamp `version` on the sets that changed (None: every set); see bump."""
        changes = {"version": version} if added_only else {"version": version, "rebuild_from": version}
        if sets is None:
            cls.objects.bulk_create([cls(scenario="", test_id="", version=version, rebuild_from=version)],
                                    ignore_conflicts=True)
            cls.objects.update(version=version, rebuild_from=version)
        else:
            for scenario, test_id in set(sets):
                cls.objects.bulk_create([cls(scenario=scenario, test_id=test_id, version=version,
                                             rebuild_from=version)], ignore_conflicts=True)  # a new set: read whole
                cls.objects.filter(scenario=scenario, test_id=test_id).update(**changes)
        transaction.on_commit(lambda: sets_changed.send(sender=cls))


class RecordedExchange(models.Model):
    """What the upstream API answered when a recording was made, kept beside its entry for reference
    (read-only in the admin): the request as forwarded, secrets left out, and the answer as it arrived,
    with its timing. The entry, not this, is what replays."""

    entry = models.OneToOneField(CannedResponse, on_delete=models.CASCADE, related_name="exchange")
    fingerprint = models.CharField(max_length=64, help_text="The request's fingerprint (the entry's `recorded`).")
    upstream = models.CharField(max_length=300, help_text="The upstream base URL the request went to.")
    method = models.CharField(max_length=10, default="POST")
    path = models.CharField(max_length=300)
    request_headers = models.JSONField(default=dict, blank=True, help_text="The headers forwarded, without "
                                       "credentials.")
    request_body = models.TextField(blank=True)
    status = models.PositiveSmallIntegerField(default=200)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True, help_text="The JSON body, or the stream's events as sent.")
    streamed = models.BooleanField(default=False)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="From sending the request to the first event.")
    gaps_ms = models.JSONField(default=list, blank=True, help_text="The time between one event and the next.")
    duration_ms = models.FloatField(default=0)
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "recorded exchange"

    def __str__(self) -> str:
        return f"{self.method} {self.upstream}{self.path} {self.status}"


class ChangesTheIndex(models.Model):
    """A row the in-memory index holds (API keys, test runs' record modes): saving or deleting it bumps
    the set's version, in the same transaction, so every process rebuilds."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic():
            super().save(*args, **kwargs)
            SetVersion.bump(())

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            SetVersion.bump(())
        return result


class RecordingRun(ChangesTheIndex):
    """A test run (X-Mock-Test-Id) put into record mode through the control API: its misses (or all its
    requests) go upstream and are recorded into its own set."""

    test_id = models.CharField(max_length=200, unique=True)
    mode = models.CharField(max_length=8, help_text="miss or all")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.test_id}: record {self.mode}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKey(ChangesTheIndex):
    """A key clients send as `Authorization: Bearer ...` or `x-api-key`. Only its hash is stored."""

    name = models.CharField(max_length=100, unique=True,
                            help_text="Who or what uses this key; the request journal shows this name.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=12, editable=False, help_text="The first characters of the key, "
                                  "to recognise it; the key itself is shown once, when it is created.")
    scenario = models.CharField(
        max_length=100, blank=True, default="",
        help_text="The scenario whose canned responses requests with this key get first (then the default set); "
        "blank for the default set only.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive keys are refused like unknown ones.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def generate() -> str:
        return "mk-" + secrets.token_urlsafe(24)

    def set_key(self, key: str) -> None:
        self.key_hash = hash_api_key(key)
        self.key_prefix = key[:10]


class JournalEntry(models.Model):
    """One request to /v1/, as the server saw and answered it. Written in batches, off the request path.

    Two indexes only (time, and test run then id): every index is paid for on each of a thousand
    inserts a second; other filters scan, which the newest-N bound keeps affordable.
    """

    created_at = models.DateTimeField(db_index=True, help_text="When the request arrived.")
    request_id = models.CharField(max_length=64, help_text="The x-request-id it was answered with.")
    test_id = models.CharField(max_length=200, blank=True)
    scenario = models.CharField(max_length=100, blank=True)
    api_key_name = models.CharField(max_length=100, blank=True, help_text="The name of the API key used, if one "
                                    "was recognised (never the key).")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    provider = models.CharField(max_length=20, blank=True)
    endpoint = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    matched = models.BooleanField(default=False, help_text="A canned entry answered (not the default).")
    entry_id = models.BigIntegerField(null=True, blank=True, help_text="The canned response that answered.")
    match_rule = models.CharField(max_length=20, blank=True)
    near_misses = models.JSONField(default=list, blank=True)
    prompt = models.TextField(blank=True, help_text="The text that was matched (the last user message).")
    stream_end = models.CharField(max_length=40, blank=True, help_text="How a stream ended: complete, "
                                  "client_disconnected or the fault asked for.")
    duration_ms = models.FloatField(default=0)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Request headers; secrets are redacted.")
    body = models.TextField(blank=True, help_text="The request body as sent (cut at 64 KiB).")

    class Meta:
        verbose_name = "journal entry"
        verbose_name_plural = "request journal"
        ordering = ["-id"]
        indexes = [models.Index(fields=["test_id", "id"], name="journal_by_test")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status} ({self.created_at:%Y-%m-%d %H:%M:%S})"
