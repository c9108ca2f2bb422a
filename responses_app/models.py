"""The canned set: one row per prompt, plus one row for the set as a whole."""
from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import models, transaction


def digest_prompt(prompt: str) -> str:
    """A fixed-size key for a prompt: long prompts are too big for a unique index on PostgreSQL."""
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


class Source(models.TextChoices):
    FILE = "file", "responses file"
    ADMIN = "admin", "admin"


class CannedResponse(models.Model):
    """A prompt and the answer served for it.

    Rows from a responses file have source=file and are kept in step with that file by every load.
    Rows typed in the admin, or file rows edited there, have source=admin: loads never change or
    delete them; they only note in `file_answer` what the file says, so a disagreement is visible.
    """

    prompt = models.TextField(help_text="The text of the last user message that this entry answers.")
    prompt_digest = models.CharField(max_length=64, unique=True, editable=False)
    answer = models.TextField(blank=True)
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
    # Room for matching rules and richer answers (tool calls, per-model entries) without a new table.
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt"]
        verbose_name = "canned response"

    def __str__(self) -> str:
        return self.prompt if len(self.prompt) <= 80 else self.prompt[:77] + "..."

    def clean(self) -> None:
        clash = CannedResponse.objects.filter(prompt_digest=digest_prompt(self.prompt)).exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError(
                {"prompt": "Another canned response already has exactly this prompt; edit that one instead."},
                code="duplicate_prompt",
            )

    def save(self, *args, **kwargs) -> None:
        from .index import bump_version

        self.prompt_digest = digest_prompt(self.prompt)
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
