"""Providers and their models, staff-managed; a conversation chooses one, and each answer
records which produced it.

Answers written before this came from the environment's provider (OPENAI_*): they are
given its name as configured now, so every answer says who produced it; unless migrate runs
with no provider configured (a build step without the site's environment, say), which would
name them all "Simulator": they are left unnamed then.
"""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import streaming.models


def name_earlier_answers(apps: Any, schema_editor: Any) -> None:
    if settings.OPENAI_SIMULATED:
        return
    Message = apps.get_model("streaming", "Message")
    Message.objects.filter(role="assistant", provider_name="").update(
        provider_name=settings.OPENAI_PROVIDER_NAME
    )


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0004_message_tree"),
    ]

    operations = [
        migrations.CreateModel(
            name="Provider",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "base_url",
                    models.URLField(
                        help_text="The API root, e.g. https://openrouter.ai/api/v1: /chat/completions and /models are appended.",
                        max_length=500,
                        verbose_name="Base URL",
                    ),
                ),
                ("api_key_encrypted", models.TextField(blank=True, editable=False)),
                (
                    "extra_headers",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='Sent with every request, e.g. {"HTTP-Referer": "https://chat.example.com"}. Stored as plain text: put secrets in the API key.',
                        validators=[streaming.models.validate_extra_headers],
                    ),
                ),
                (
                    "enabled",
                    models.BooleanField(
                        default=True,
                        help_text="Off: its models leave the picker; chats that chose one must pick another before their next message.",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.AddField(
            model_name="message",
            name="provider_name",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="conversation",
            name="provider",
            field=models.ForeignKey(
                blank=True,
                help_text="Empty: the site's default provider.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="streaming.provider",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="provider",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="streaming.provider",
            ),
        ),
        migrations.RunPython(name_earlier_answers, migrations.RunPython.noop),
        migrations.CreateModel(
            name="ProviderModel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "model_id",
                    models.CharField(
                        help_text="As the API names it, e.g. gpt-4o-mini.",
                        max_length=200,
                        verbose_name="Model ID",
                    ),
                ),
                (
                    "display_name",
                    models.CharField(
                        blank=True,
                        help_text="What the picker shows; empty: the model ID.",
                        max_length=200,
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                (
                    "position",
                    models.PositiveIntegerField(default=0, help_text="Lower comes first."),
                ),
                (
                    "provider",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="models",
                        to="streaming.provider",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "model_id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("provider", "model_id"), name="unique_model_per_provider"
                    )
                ],
            },
        ),
    ]
