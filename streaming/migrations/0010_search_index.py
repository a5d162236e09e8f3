"""Search that scales: GIN indexes over the text search vectors of messages and titles.

PostgreSQL only. SQLite searches by substring (services/listing.py) and has no such index,
so there this migration changes nothing but Django's record of the models.

The indexes are built with CREATE INDEX CONCURRENTLY (so the migration is not atomic): on a
big ``streaming_message`` a plain CREATE INDEX would hold off every write, so every answer's
checkpoints, for as long as the build takes (minutes for gigabytes of text). Built
concurrently, writes go on; the build takes longer and needs no open transaction. Should it
fail half way (a deploy killed), PostgreSQL leaves an INVALID index behind: drop it
(``DROP INDEX CONCURRENTLY message_search``) and migrate again. docs/deploy.md says so too.

The expressions are ``models.search_document``'s, as the models' Meta spell them: the
searches use that function, so what they ask for is exactly what is indexed.
"""

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.contrib.postgres.search import SearchVector
from django.db import migrations


class AddIndexConcurrentlyOnPostgreSQL(AddIndexConcurrently):
    """AddIndexConcurrently where the database is PostgreSQL; elsewhere only the state."""

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ("streaming", "0009_storage_quota"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="conversation",
            index=GinIndex(SearchVector("title", config="english"), name="conversation_search"),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="message",
            index=GinIndex(SearchVector("content", config="english"), name="message_search"),
        ),
    ]
