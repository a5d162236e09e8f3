"""Continuations: each time an answer cut off at its length limit was continued, with what
it cost, so the daily budget and the limit of answers a minute count it. Answers the model
cut off before this saved no notice saying so: they are given the one new answers get."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# services.continuation.cut_notice's words, without the limit (the one of then is unknown).
NOTICE = "The answer reached its length limit and stopped here."


def give_notices(apps, schema_editor):
    Message = apps.get_model("streaming", "Message")
    Message.objects.filter(
        role="assistant", status="complete", finish_reason="length", error=""
    ).update(error=NOTICE)


class Migration(migrations.Migration):

    dependencies = [
        ('streaming', '0011_early_stop'),
    ]

    operations = [
        migrations.CreateModel(
            name='Continuation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('base_chars', models.PositiveIntegerField()),
                ('base_prompt_tokens', models.PositiveIntegerField(null=True)),
                ('base_completion_tokens', models.PositiveIntegerField(null=True)),
                ('prompt_estimate', models.PositiveIntegerField()),
                ('chars', models.PositiveIntegerField(null=True)),
                ('prompt_tokens', models.PositiveIntegerField(null=True)),
                ('completion_tokens', models.PositiveIntegerField(null=True)),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='continuations', to='streaming.message')),
            ],
            options={
                'indexes': [models.Index(fields=['started_at'], name='continuation_started')],
            },
        ),
        migrations.RunPython(give_notices, migrations.RunPython.noop),
    ]
