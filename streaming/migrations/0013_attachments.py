"""Attachments: the files people attach (streaming/uploads.py), what each message shows of
its own and what they cost, and whether a provider's model sees images."""

import django.db.models.deletion
import django.utils.timezone
import streaming.uploads
import uuid
from typing import Any

from django.conf import settings
from django.db import migrations, models


class AddColumnInPlace(migrations.AddField):
    """AddField that, on SQLite, adds the column where it is (ALTER TABLE … ADD COLUMN, with
    its default kept in the table) instead of remaking the table as Django's SQLite backend
    does for a NOT NULL column: a remade table is given every index of the model's state,
    and message_search (0010) is PostgreSQL's alone, so `migrate` failed there. Elsewhere,
    and for the state, the plain AddField."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        definition, params = schema_editor.column_sql(model, field, include_default=True)
        check = field.db_parameters(connection=schema_editor.connection)["check"]
        if check:  # as AddField's own SQL has it
            definition += " " + schema_editor.sql_check_constraint % {"check": check}
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"ALTER TABLE {quote(model._meta.db_table)} ADD COLUMN {quote(field.column)} "
            f"{definition}",
            params,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('streaming', '0012_continuation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddColumnInPlace(
            model_name='message',
            name='attached',
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        AddColumnInPlace(
            model_name='message',
            name='attachment_tokens',
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name='providermodel',
            name='vision',
            field=models.BooleanField(default=False, help_text='It accepts images (attached to messages).', verbose_name='Sees images'),
        ),
        migrations.CreateModel(
            name='Attachment',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('image', 'Image'), ('text', 'Text'), ('pdf', 'Pdf')], max_length=8)),
                ('content_type', models.CharField(max_length=100)),
                ('name', models.CharField(max_length=255)),
                ('file', models.FileField(max_length=200, storage=streaming.uploads.attachment_storage, upload_to=streaming.uploads.stored_name)),
                ('size', models.PositiveBigIntegerField(help_text='Bytes stored.')),
                ('sha256', models.CharField(help_text='Of the bytes stored.', max_length=64)),
                ('text', models.TextField(blank=True, editable=False)),
                ('width', models.PositiveIntegerField(blank=True, null=True)),
                ('height', models.PositiveIntegerField(blank=True, null=True)),
                ('tokens', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('conversation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='attachments', to='streaming.conversation')),
                ('messages', models.ManyToManyField(blank=True, related_name='attachments', to='streaming.message')),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachments', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['created_at'],
                'indexes': [models.Index(fields=['owner', 'created_at'], name='attachment_owner')],
            },
        ),
    ]
