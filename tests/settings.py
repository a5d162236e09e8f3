"""Settings for the test suite: the real settings, plus what only tests need."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-any-deployment")

from tests.support.services import LOCAL_POSTGRESQL, checkout_name, local_postgresql

# PostgreSQL, the production database, wherever it answers as CI's does, unless DATABASE_URL
# names a database; SQLite where none does. Set in the environment, as CI sets it, so that
# chatsite.settings configures it exactly as it would for a deployment (and xdist's workers,
# started from this process, inherit it).
if not os.environ.get("DATABASE_URL") and (_found := local_postgresql()):
    os.environ["DATABASE_URL"] = _found

from chatsite.settings import BASE_DIR, DATABASES
from tests.live_settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the daphne processes that tests start must see the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test.sqlite3")}
elif os.environ.get("DATABASE_URL") == LOCAL_POSTGRESQL:
    # Named for this checkout: the suites of two checkouts on one server never share one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_chatsite_{checkout_name(BASE_DIR)}"}
if "pool" in DATABASES["default"].get("OPTIONS", {}):
    # A server process's threads fit DB_POOL_SIZE (docs/deploy.md); a test process has more:
    # tests read and write rows from threads of their own (asyncio.to_thread, asgiref's),
    # each keeping its connection while the process lives.
    DATABASES["default"]["OPTIONS"]["pool"]["max_size"] += 8

# The in-memory layer unless a test asks for channels-redis (the `redis_layer` fixture), so
# the same test means the same thing with or without REDIS_URL in the environment; and the
# open sockets counted in memory with it, unless the test's layer is Redis.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS_HOSTS = []
