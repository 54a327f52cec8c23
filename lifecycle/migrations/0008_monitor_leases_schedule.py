from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0007_merge_design_update_monitoring"),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="action_attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="alert",
            name="action_claim",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name="alert",
            name="action_lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="monitorwindow",
            name="labels_read_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deployment",
            name="monitor_every_minutes",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deployment",
            name="monitor_due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.CheckConstraint(
                condition=models.Q(("monitor_every_minutes__isnull", True), ("monitor_every_minutes__gte", 1), _connector="OR"),
                name="deployment_monitor_every_minutes_positive",
            ),
        ),
    ]
