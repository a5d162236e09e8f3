"""Delete for good the conversations whose undo window has passed."""

from typing import Any

from django.core.management.base import BaseCommand

from streaming.services import deletion


class Command(BaseCommand):
    help = (
        "Purge conversations deleted longer ago than DELETE_UNDO_SECONDS, with their "
        "messages. Server processes do this on their own every few seconds; this is for "
        "when none runs (a cron job, or before a backup)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        purged = deletion.do_purge_deleted()
        self.stdout.write(f"Purged {purged} deleted conversation(s).")
