"""Settings for the test suite: the real settings, plus what only tests need."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-any-deployment")

from chatsite.settings import BASE_DIR, DATABASES
from tests.live_settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the daphne processes that tests start must see the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test.sqlite3")}

# The in-memory layer unless a test asks for channels-redis (the `redis_layer` fixture), so
# the same test means the same thing with or without REDIS_URL in the environment.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
