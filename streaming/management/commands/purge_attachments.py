"""Remove attached files nothing points to: uploads never sent, and stored files no row names."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from streaming.services import attachments
from streaming.uploads import attachment_storage


class Command(BaseCommand):
    help = (
        "Delete files uploaded more than a day ago that no message carries, and stored "
        "files (in the attachments storage) that no attachment's row names, such as those "
        "left by a process killed while it wrote one. With --dry-run, only list them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be removed; remove nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        unsent = attachments.unsent().count() if dry_run else attachments.do_remove_unsent()
        orphans = list(attachments.orphans())
        if not dry_run:
            kept = attachment_storage()
            for name in orphans:
                kept.delete(name)
        verb = "Would remove" if dry_run else "Removed"
        self.stdout.write(
            f"{verb} {unsent} upload(s) never sent, and {len(orphans)} stored file(s) "
            "no attachment names."
        )
