"""Sets read incrementally: SetVersion.rebuild_from, and the entries of a set indexed by id."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("responses_app", "0003_sets_and_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="setversion",
            name="rebuild_from",
            field=models.BigIntegerField(default=0),
        ),
        migrations.RemoveIndex(
            model_name="cannedresponse",
            name="entries_by_set",
        ),
        migrations.AddIndex(
            model_name="cannedresponse",
            index=models.Index(fields=["test_id", "scenario", "id"], name="entries_by_set_and_id"),
        ),
    ]
