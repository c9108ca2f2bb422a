"""Keep the digest and version right for rows written by `loaddata`, which bypasses Model.save()."""
from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from responses_app.canned.entries import entry_digest
from responses_app.models import CannedResponse, SetVersion


@receiver(pre_save, sender=CannedResponse)
def set_key_digest(sender: type, instance: CannedResponse, raw: bool, **kwargs: Any) -> None:
    instance.key_digest = entry_digest(instance.prompt, instance.options or {})


@receiver(post_save, sender=CannedResponse)
def note_fixture_change(sender: type, instance: CannedResponse, raw: bool, **kwargs: Any) -> None:
    if raw:  # loaddata: Model.save() did not run, so nothing else bumped the version
        SetVersion.bump({(instance.scenario, instance.test_id)})
