"""The canned set: one row per prompt, plus one row for the set as a whole."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models, transaction

from .entries import EntryError, entry_digest, validate_row

# Admin rows come after every file entry of the same priority.
ADMIN_POSITION = 1_000_000_000


class Source(models.TextChoices):
    FILE = "file", "responses file"
    ADMIN = "admin", "admin"


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
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt"]
        verbose_name = "canned response"

    def __str__(self) -> str:
        return self.prompt if len(self.prompt) <= 80 else self.prompt[:77] + "..."

    def clean(self) -> None:
        try:
            self.options = validate_row(self.prompt, self.answer, self.options)
        except EntryError as exc:
            raise ValidationError({"options": exc.message}, code="invalid_options") from None
        clash = CannedResponse.objects.filter(key_digest=entry_digest(self.prompt, self.options)).exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError(
                {"prompt": "Another canned response already has exactly this prompt and matching options; "
                 "edit that one instead."},
                code="duplicate_prompt",
            )

    def save(self, *args, **kwargs) -> None:
        from .index import bump_version

        self.key_digest = entry_digest(self.prompt, self.options)
        with transaction.atomic():
            super().save(*args, **kwargs)
            bump_version()

    def delete(self, *args, **kwargs):
        from .index import bump_version

        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            bump_version()
        return result

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
    def get(cls) -> "ResponseSet":
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return obj
