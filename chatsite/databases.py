"""The database chatsite configures from DATABASE_URL: SQLite as the embedded default,
PostgreSQL for real use, each with the options its use here needs."""

from typing import Any

import dj_database_url

# After an outage, the database is reached again within a few seconds of its return, not
# minutes: psycopg_pool doubles the wait between tries to reconnect (1, 2, 4, 8… s), for five
# minutes by default, and a call waiting for a connection starts no new try.
#: How long a database call waits for a pooled connection before it fails.
POOL_WAIT_SECONDS = 3
#: How long the pool keeps trying to reconnect one connection before it gives up on it.
RECONNECT_SECONDS = 5


def database(url: str, pool_size: int) -> dict[str, Any]:
    """Django's DATABASES entry for ``url``; PostgreSQL's pool holds up to ``pool_size``."""
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Checkpoints are written from worker threads while requests write too: WAL lets
        # readers go on during a write, IMMEDIATE takes the write lock up front instead of
        # failing half-way, and the timeout waits for it rather than raising "locked".
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["OPTIONS"] = {
            # A database host that drops packets would otherwise hold a connection attempt
            # (and the thread waiting for it) for as long as TCP takes to give up.
            "connect_timeout": 10,
            # The same for a connection already open when the host goes silent: TCP
            # keepalives notice an idle one within a minute, and tcp_user_timeout (ms) ends a
            # query whose bytes go unacknowledged, so no thread waits the ~15 minutes TCP
            # would on its own.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
            # What the URL sets (sslmode, ?connect_timeout=N…) wins over the above.
            **config.get("OPTIONS", {}),
            # Under ASGI every request and every database thread would otherwise open a new
            # connection per call; the pool hands them ready ones.
            # By default the pool has a connection for every database thread, so a call
            # waits only while one is being made: when none can be, it fails within
            # POOL_WAIT_SECONDS, and the next call starts a new try at once.
            "pool": {
                "min_size": 2,
                "max_size": pool_size,
                "timeout": POOL_WAIT_SECONDS,
                "reconnect_timeout": RECONNECT_SECONDS,
            },
        }
    return config
