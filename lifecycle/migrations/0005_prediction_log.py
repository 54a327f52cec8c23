from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0004_deployments"),
    ]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="log_sample_rate",
            field=models.FloatField(default=1.0),
        ),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.CheckConstraint(
                condition=models.Q(("log_sample_rate__gte", 0.0), ("log_sample_rate__lte", 1.0)),
                name="deployment_log_sample_rate_share",
            ),
        ),
    ]
