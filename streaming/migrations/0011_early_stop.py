"""Stops that come before what they name is saved (models.EarlyStop): a `stop` naming a
message's or a retry's client_id that another socket or process has not saved yet."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('streaming', '0010_search_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='EarlyStop',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('client_id', models.UUIDField()),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='streaming.conversation')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('conversation', 'client_id'), name='unique_early_stop_per_conversation')],
            },
        ),
    ]
