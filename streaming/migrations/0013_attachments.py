"""Attachments: the files people attach (streaming/uploads.py), what each message shows of
its own and what they cost, and whether a provider's model sees images."""

import uuid
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import streaming.uploads


class AddColumn(migrations.AddField):
    """AddField; on SQLite by ALTER TABLE ADD COLUMN with the default as a constant, rather
    than by building the table anew as Django would for a NOT NULL column: that would build
    every index of the model's state again, the search index only PostgreSQL has (0010)
    among them."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        definition, _ = schema_editor.column_sql(model, field, include_default=True)
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"ALTER TABLE {quote(model._meta.db_table)} ADD COLUMN {quote(field.column)} {definition}"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0012_continuation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddColumn(
            model_name="message",
            name="attached",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        AddColumn(
            model_name="message",
            name="attachment_tokens",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="providermodel",
            name="vision",
            field=models.BooleanField(
                default=False,
                help_text="It accepts images (attached to messages).",
                verbose_name="Sees images",
            ),
        ),
        migrations.CreateModel(
            name="Attachment",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("image", "Image"), ("text", "Text"), ("pdf", "Pdf")], max_length=8
                    ),
                ),
                ("content_type", models.CharField(max_length=100)),
                ("name", models.CharField(max_length=255)),
                (
                    "file",
                    models.FileField(
                        max_length=200,
                        storage=streaming.uploads.attachment_storage,
                        upload_to=streaming.uploads.stored_name,
                    ),
                ),
                ("size", models.PositiveBigIntegerField(help_text="Bytes stored.")),
                ("sha256", models.CharField(help_text="Of the bytes stored.", max_length=64)),
                ("text", models.TextField(blank=True, editable=False)),
                ("width", models.PositiveIntegerField(blank=True, null=True)),
                ("height", models.PositiveIntegerField(blank=True, null=True)),
                ("tokens", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "conversation",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to="streaming.conversation",
                    ),
                ),
                (
                    "messages",
                    models.ManyToManyField(
                        blank=True, related_name="attachments", to="streaming.message"
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["created_at"],
                "indexes": [models.Index(fields=["owner", "created_at"], name="attachment_owner")],
            },
        ),
    ]
