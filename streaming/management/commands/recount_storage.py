"""Count again the characters each user stores (their storage quota's figure)."""

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from streaming.services import storage


class Command(BaseCommand):
    help = (
        "Sum every user's message text again and keep it as what they store. The figure is "
        "kept in step as messages are written, imported and purged; run this after text was "
        "changed another way (edited or deleted in the admin)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        users = list(User.objects.order_by("pk").values_list("pk", flat=True))
        for owner_id in users:
            storage.recount(owner_id)
        self.stdout.write(f"Counted the storage of {len(users)} user(s).")
