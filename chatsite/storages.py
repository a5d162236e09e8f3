"""The storage attachments are kept in, from ATTACH_STORAGE: any Django storage, or a folder."""

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured


def attachment_storage(configured: str, media_root: Path) -> dict[str, Any]:
    """The ``STORAGES["attachments"]`` entry: ``configured`` (ATTACH_STORAGE, JSON such as
    ``{"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": "…"}}``), or
    with nothing configured the files under ``media_root``, readable by their owner only."""
    if not configured:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {
                "location": str(media_root),
                "file_permissions_mode": 0o640,
                "directory_permissions_mode": 0o750,
            },
        }
    try:
        entry = json.loads(configured)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"ATTACH_STORAGE is not valid JSON: {exc}.") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("BACKEND"), str):
        raise ImproperlyConfigured(
            'ATTACH_STORAGE must be a JSON object with a "BACKEND", the storage class\'s '
            'dotted path, and optionally its "OPTIONS".'
        )
    if not isinstance(entry.get("OPTIONS", {}), dict):
        raise ImproperlyConfigured('ATTACH_STORAGE\'s "OPTIONS" must be a JSON object.')
    return entry
