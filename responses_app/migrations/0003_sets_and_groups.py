"""Versions for the sets that exist already, and the "editor" and "viewer" groups with their permissions."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    # Edits canned prompts and the default answer; reads and clears the request journal.
    "editor": {
        "cannedresponse": ("add", "change", "delete", "view"),
        "responseset": ("change", "view"),
        "journalentry": ("delete", "view"),
    },
    # Reads everything an editor can change. API keys are for superusers only.
    "viewer": {
        "cannedresponse": ("view",),
        "responseset": ("view",),
        "journalentry": ("view",),
    },
}


def set_versions(apps, schema_editor):
    CannedResponse = apps.get_model("responses_app", "CannedResponse")
    SetVersion = apps.get_model("responses_app", "SetVersion")
    layers = set(CannedResponse.objects.values_list("scenario", "test_id").distinct()) | {("", "")}
    SetVersion.objects.bulk_create([SetVersion(scenario=s, test_id=t, version=1) for s, t in layers],
                                   ignore_conflicts=True)


def make_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions are otherwise only created after all migrations
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, models in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.set(Permission.objects.filter(content_type__app_label="responses_app",
                                                        codename__in=codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("responses_app", "0002_shared_environment"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(set_versions, migrations.RunPython.noop),
        migrations.RunPython(make_groups, remove_groups),
    ]
