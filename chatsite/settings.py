"""chatsite settings.

The environment is read here, once; application code reads ``django.conf.settings`` at
call time so ``override_settings`` works in tests. The table in README.md lists every
variable; keep the two in step.
"""

import os
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

BASE_DIR = Path(__file__).resolve().parent.parent

# Lets annotations such as admin.ModelAdmin[Message] run, not only type-check.
django_stubs_ext.monkeypatch()


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable; anything unrecognised is a configuration error."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_float(name: str, default: float) -> float:
    """Read a positive number of seconds (or similar) from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be greater than 0, not {raw!r}.")
    return value


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """Read a whole number (at least ``minimum``) from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}.")
    return value


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated list from the environment."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set SECRET_KEY to a long random string (or DEBUG=true for local development). "
            "`make run` creates one for you in var/secret_key."
        )
    SECRET_KEY = "insecure-development-key-only-for-debug"
# Earlier keys, still accepted while they are rotated out (sessions, provider API keys):
# comma-separated, newest first.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # daphne first: its runserver serves WebSockets too.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "streaming",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "streaming.context_processors.model_info",
            ],
        },
    },
]

ASGI_APPLICATION = "chatsite.asgi.application"

# --- Database -------------------------------------------------------------------------
# SQLite is the embedded default; PostgreSQL (DATABASE_URL=postgres://…) for real use.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=0,
        conn_health_checks=True,
    )
}
# Threads that run database work for sockets and answers (streaming.services.db_executor).
DB_THREADS = env_int("DB_THREADS", 8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Checkpoints are written from worker threads while requests write too: WAL lets
    # readers go on during a write, IMMEDIATE takes the write lock up front instead of
    # failing half-way, and the timeout waits for it rather than raising "locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request and every database thread would otherwise open a new
    # connection per call; the pool hands them ready ones. It must cover the database
    # threads, the request thread and the management commands of one process.
    # Merged into what DATABASE_URL set (sslmode, options…), not in place of it.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DB_POOL_SIZE", DB_THREADS + 4),
        "timeout": 10,
    }
    # A database host that drops packets would otherwise hold a connection attempt (and
    # the thread waiting for it) for as long as TCP takes to give up. DATABASE_URL may set
    # its own (?connect_timeout=N).
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 10)
    # The same for a connection already open when the host goes silent: TCP keepalives
    # notice an idle one within a minute, and tcp_user_timeout (ms) ends a query whose
    # bytes go unacknowledged, so no thread waits the ~15 minutes TCP would on its own.
    for option, value in {
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Channel layer --------------------------------------------------------------------
# A Redis server the layer uses: a redis:// URL, or a dict of redis-py connection keywords
# (channels-redis's host format; with `sentinels` and `master_name`, a Sentinel-managed one).
RedisHost = str | dict[str, object]


# Connecting to Redis gives up after this: reads have no timeout (below), so without one a
# host that drops packets would hold a send for as long as TCP tries.
REDIS_CONNECT_TIMEOUT_SECONDS = 5.0


def redis_connection(host: RedisHost, **options: object) -> dict[str, object]:
    """channels-redis's host entry for ``host``, with these redis-py connection options."""
    return {**({"address": host} if isinstance(host, str) else host), **options}


def redis_channel_layer(hosts: Sequence[RedisHost], **config: object) -> dict[str, object]:
    """The channels-redis layer for these Redis hosts (several shard the channels)."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 gives every socket a 5 s read timeout, which kills channels-redis's
            # blocking receive on any idle socket (channels_redis issue #422). The layer's
            # own BZPOPMIN timeout already bounds each wait, so reads need none.
            # Every concurrent send holds a connection; redis-py's default ceiling of 100
            # fails sends with MaxConnectionsError when a process streams ~100 answers.
            "hosts": [
                redis_connection(
                    host,
                    socket_timeout=None,
                    socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
                    max_connections=1000,
                )
                for host in hosts
            ],
            # Per channel, and a process's sockets all share one Redis key: over this,
            # sends are dropped silently (the protocol heals it, but rarely is better).
            "capacity": 10000,
            "expiry": 60,
            **config,
        },
    }


def redis_pubsub_layer(hosts: Sequence[RedisHost], **config: object) -> dict[str, object]:
    """channels-redis's Pub/Sub layer for these Redis hosts: a group send is one PUBLISH."""
    return {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [
                redis_connection(
                    host, socket_timeout=None, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS
                )
                for host in hosts
            ],
            **config,
        },
    }


def redis_layer(hosts: Sequence[RedisHost], kind: str, **config: object) -> dict[str, object]:
    """The channels-redis layer of ``kind`` ("pubsub" or "core") for these Redis hosts."""
    return (redis_pubsub_layer if kind == "pubsub" else redis_channel_layer)(hosts, **config)


# How long a sentinel may take to answer before the next one is asked.
REDIS_SENTINEL_TIMEOUT_SECONDS = 0.5


def sentinel_hosts(
    sentinels: list[str], masters: list[str], password: str, sentinel_password: str
) -> list[dict[str, object]]:
    """One host entry per master name, each found through the same Redis Sentinels."""
    addresses: list[tuple[str, int]] = []
    for sentinel in sentinels:
        host, _, port = sentinel.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS lists host:port pairs, such as 10.0.0.5:26379, not {sentinel!r}."
            )
        addresses.append((host.strip("[]"), int(port)))
    # Asked in turn: one that went silent must not hold up finding the master. redis-py
    # would ask it again ten times, backing off, before the next; the next is the retry.
    sentinel_kwargs: dict[str, object] = {
        "socket_timeout": REDIS_SENTINEL_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_SENTINEL_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
        **({"password": sentinel_password} if sentinel_password else {}),
    }
    return [
        {
            "sentinels": addresses,
            "master_name": master,
            "sentinel_kwargs": dict(sentinel_kwargs),
            **({"password": password} if password else {}),
        }
        for master in masters
    ]


# One or several Redis hosts, comma-separated; unset = in-memory layer (one process only).
REDIS_URLS = env_list("REDIS_URL", "")
# Or Redis Sentinel: the sentinels, and the master name of each shard (docs/deploy.md).
REDIS_SENTINELS = env_list("REDIS_SENTINELS", "")
if REDIS_URLS and REDIS_SENTINELS:
    raise ImproperlyConfigured("Set REDIS_URL or REDIS_SENTINELS, not both.")
#: The Redis servers of the channel layer (and of the per-user socket counts: the first),
#: in channels-redis's host format.
REDIS_HOSTS: list[dict[str, object]] = [
    redis_connection(host)
    for host in (
        sentinel_hosts(
            REDIS_SENTINELS,
            env_list("REDIS_SENTINEL_MASTERS", "mymaster"),
            os.environ.get("REDIS_PASSWORD", ""),
            os.environ.get("REDIS_SENTINEL_PASSWORD", ""),
        )
        if REDIS_SENTINELS
        else REDIS_URLS
    )
]
# Which channels-redis layer: "pubsub" (Redis Pub/Sub: a group send is one PUBLISH that the
# server pushes to every subscribed process) or "core" (lists in Redis, polled with
# BZPOPMIN). docs/performance.md measures both: pubsub costs a sixth of the CPU per frame.
CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "pubsub").strip().lower()
if CHANNEL_LAYER not in {"core", "pubsub"}:
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be pubsub or core, not {CHANNEL_LAYER!r}.")
CHANNEL_LAYERS = {
    "default": redis_layer(REDIS_HOSTS, CHANNEL_LAYER)
    if REDIS_HOSTS
    else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
}

# --- Model API ------------------------------------------------------------------------
# No key and no base URL: the built-in simulator (`python -m streaming.simulator`), which
# `manage.py serve` starts on SIMULATOR_PORT. A local server that needs no key (Ollama,
# llama.cpp) is chosen by setting OPENAI_BASE_URL alone.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
SIMULATOR_PORT = int(os.environ.get("SIMULATOR_PORT", "8001"))
OPENAI_SIMULATED = not OPENAI_API_KEY and not os.environ.get("OPENAI_BASE_URL")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL") or (
    f"http://127.0.0.1:{SIMULATOR_PORT}/v1" if OPENAI_SIMULATED else "https://api.openai.com/v1"
)
OPENAI_MODEL = os.environ.get("OPENAI_MODEL") or (
    "simulated" if OPENAI_SIMULATED else "gpt-4o-mini"
)
# What the picker and each answer call the provider above; staff add others in the admin.
OPENAI_PROVIDER_NAME = os.environ.get("OPENAI_PROVIDER_NAME", "").strip() or (
    "Simulator" if OPENAI_SIMULATED else "Default"
)
# Providers' API keys are stored encrypted with a key derived from this (streaming/keys.py).
# Changing it (or SECRET_KEY, while this is unset and the old one is not among
# SECRET_KEY_FALLBACKS) makes the stored keys unreadable: staff enter them again, and
# messages to those providers are refused, saying so, meanwhile.
PROVIDER_KEY_SECRET = os.environ.get("PROVIDER_KEY_SECRET", "") or SECRET_KEY
OPENAI_READ_TIMEOUT = env_float("OPENAI_READ_TIMEOUT", 60.0)
OPENAI_CONNECT_TIMEOUT = env_float("OPENAI_CONNECT_TIMEOUT", 10.0)
# Retries happen only before the first token, so no user ever sees an answer twice.
OPENAI_MAX_RETRIES = int(os.environ.get("OPENAI_MAX_RETRIES", "3"))
# The longest backoff we wait; a Retry-After longer than this ends the answer instead.
OPENAI_RETRY_MAX_SECONDS = env_float("OPENAI_RETRY_MAX_SECONDS", 20.0)
# The most tokens one answer may have (0: send no limit), and the field that carries it.
# A provider that refuses one field name gets the other (streaming.openai.other_token_field).
OPENAI_MAX_TOKENS = env_int("OPENAI_MAX_TOKENS", 4096, minimum=0)
OPENAI_MAX_TOKENS_FIELD = os.environ.get("OPENAI_MAX_TOKENS_FIELD", "max_tokens").strip()
if OPENAI_MAX_TOKENS_FIELD not in {"max_tokens", "max_completion_tokens"}:
    raise ImproperlyConfigured(
        "OPENAI_MAX_TOKENS_FIELD must be max_tokens or max_completion_tokens, "
        f"not {OPENAI_MAX_TOKENS_FIELD!r}."
    )

# --- Streaming ------------------------------------------------------------------------
STREAM_CHECKPOINT_SECONDS = env_float("STREAM_CHECKPOINT_SECONDS", 1.0)
# After a piece of an answer goes to the group, the next waits at least this long (the
# first goes at once): fewer channel-layer sends per answer, well under what a reader sees.
STREAM_FLUSH_SECONDS = env_float("STREAM_FLUSH_SECONDS", 0.05)
# The longest answer kept, in characters: the stream is cut there, whatever the model says.
STREAM_MAX_ANSWER_CHARS = env_int("STREAM_MAX_ANSWER_CHARS", 200_000)
# A streaming answer whose heartbeat is older than this lost its process: the sweep marks
# it interrupted. Several checkpoints must fit in it, or live answers would be swept.
STREAM_ORPHAN_SECONDS = env_float("STREAM_ORPHAN_SECONDS", 10.0)
if STREAM_ORPHAN_SECONDS < 3 * STREAM_CHECKPOINT_SECONDS:
    raise ImproperlyConfigured(
        "STREAM_ORPHAN_SECONDS must be at least 3 times STREAM_CHECKPOINT_SECONDS."
    )
MAX_MESSAGE_CHARS = int(os.environ.get("MAX_MESSAGE_CHARS", "32000"))
# A WebSocket frame longer than this is refused before it is parsed. The default fits any
# message within MAX_MESSAGE_CHARS however JSON escapes it (at most 6 characters for one,
# as in \u0001), plus the frame's other fields.
MAX_FRAME_CHARS = env_int("MAX_FRAME_CHARS", 6 * MAX_MESSAGE_CHARS + 1024)
if MAX_FRAME_CHARS < MAX_MESSAGE_CHARS + 1024:
    raise ImproperlyConfigured(
        "MAX_FRAME_CHARS must be at least MAX_MESSAGE_CHARS + 1024, or a message within the "
        "limit could not be sent."
    )

# --- Per-user limits ------------------------------------------------------------------
# Over a limit nothing is written and the model is not asked; the page says how long to
# wait. Answers and messages are counted in the database (exact across processes); sockets
# in Redis when REDIS_URL or REDIS_SENTINELS is set, else in memory (one process).
LIMIT_ANSWERS_PER_USER = env_int("LIMIT_ANSWERS_PER_USER", 3)
LIMIT_MESSAGES_PER_MINUTE = env_int("LIMIT_MESSAGES_PER_MINUTE", 20)
LIMIT_SOCKETS_PER_USER = env_int("LIMIT_SOCKETS_PER_USER", 20)
# Frames a socket may send a second, on average, and in one burst.
LIMIT_FRAMES_PER_SECOND = env_float("LIMIT_FRAMES_PER_SECOND", 10.0)
LIMIT_FRAMES_BURST = env_int("LIMIT_FRAMES_BURST", 30)
# Tokens (prompt and answer) a user may spend a day (UTC); 0: no budget. Staff can set
# another figure for one user in the admin.
DAILY_TOKEN_BUDGET = env_int("DAILY_TOKEN_BUDGET", 0, minimum=0)
# Answers one process streams at once (and its upstream connections): past it, new
# messages are refused at once, never left waiting for a connection.
STREAM_MAX_ANSWERS = env_int("STREAM_MAX_ANSWERS", 200)
# After a conversation's first answer, ask the model for a short title (in place of the one
# made from the first message, never of one the user gave).
AUTO_TITLE = env_bool("AUTO_TITLE", False)
# How long a deleted conversation can be restored (Undo); after it, it is purged for real.
DELETE_UNDO_SECONDS = env_float("DELETE_UNDO_SECONDS", 10.0)
# The longest system prompt a conversation may have.
MAX_SYSTEM_PROMPT_CHARS = env_int("MAX_SYSTEM_PROMPT_CHARS", 8000)
# The largest export file a user may import, in bytes: it is checked whole in memory.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 10 * 1024 * 1024)
# What the model is sent at most, in estimated tokens (about 4 characters each): the
# system prompt and the newest messages that fit; older ones are left out.
OPENAI_CONTEXT_TOKENS = env_int("OPENAI_CONTEXT_TOKENS", 16000)

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# An open socket checks its login session on every frame, when the user's sockets are told
# of a logout or a change to the user, at the session's expiry, and at least this often
# (streaming/sessions.py): the bound for endings nobody announces, on a socket that is silent.
SOCKET_SESSION_CHECK_SECONDS = env_float("SOCKET_SESSION_CHECK_SECONDS", 60.0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "streaming:conversation_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# daphne serves /static/ itself unless a front server (nginx) does it from STATIC_ROOT.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

# --- Security -------------------------------------------------------------------------
# One switch for a site served over HTTPS, whether TLS ends in front (nginx) or not. Unset,
# as for `make run` on http://127.0.0.1, nothing here changes.
HTTPS = env_bool("HTTPS", False)
# Cookies go over HTTPS only; the WebSocket handshake (wss://) is HTTPS too, so the session
# cookie still reaches the socket.
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# Plain http:// requests get a redirect to https://. A proxy that terminates TLS says a
# request came over HTTPS in X-Forwarded-Proto: it must set that header itself, replacing
# any a client sent. WebSockets and the simulator never pass through this redirect.
SECURE_SSL_REDIRECT = HTTPS
# Except the probes: a load balancer checks daphne itself, over plain HTTP, and Prometheus
# scrapes each process so (streaming/probes.py). Patterns match the path without its "/".
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browsers that saw the site over HTTPS refuse plain HTTP to it for this long (a year, as
# `check --deploy` asks; smaller while trying HTTPS out). Subdomains and the preload
# directive are on by default and each can be turned off: see README.md.
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", True)

# Content-Security-Policy on every page Django renders, the admin's included: scripts,
# styles, images and connections from this site only, no inline script or style, no
# plugins, no framing. 'self' in connect-src covers the chat's ws:// and wss:// to the same
# host (CSP level 3); the favicon is a data: URL. Pages keep script in static files, and
# page data in json_script blocks, which are data, not script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Login throttling (django-axes). After LOGIN_FAILURE_LIMIT failed logins within the
# cool-off, to one account from anywhere or from one address to any accounts, logging in
# to that account and from that address is refused, the right password too, until a
# cool-off after the failure that reached the limit (or until staff delete the attempts
# in the admin, under Axes > Access attempts).
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_COOLOFF_MINUTES", 15.0))
# Each one alone locks: by account, so guessing one password from many addresses stops;
# by address, so one address trying a few passwords on each of many accounts stops.
# Locking only the pair would stop neither. The price: anyone who knows a username can
# pause that account's logins for one cool-off; staff can lift it sooner.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# In the database, so every server process counts the same failures (the cache handler
# would need a cache shared by the processes; none is configured).
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# A success keeps the count: axes would clear it by address too, wiping the failures an
# attacker with an account of their own had run up against other accounts.
AXES_RESET_ON_SUCCESS = False
# Attempts during a lockout are refused uncounted, so it ends when the page says it will.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "chatsite.login_throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "chatsite.login_throttle.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# The client's address is the socket's, unless a proxy in front is trusted to give it in
# this header (e.g. X-Real-IP). Set it only when every request comes through that proxy
# and the proxy overwrites the header: otherwise a client writes its own address.
CLIENT_IP_HEADER = os.environ.get("CLIENT_IP_HEADER", "").strip()
if CLIENT_IP_HEADER and not re.fullmatch(r"[A-Za-z0-9-]+", CLIENT_IP_HEADER):
    raise ImproperlyConfigured(
        f"CLIENT_IP_HEADER must be an HTTP header name such as X-Real-IP, not {CLIENT_IP_HEADER!r}."
    )
# The same header as request.META names it.
CLIENT_IP_META_KEY = (
    "HTTP_" + CLIENT_IP_HEADER.upper().replace("-", "_") if CLIENT_IP_HEADER else ""
)

# --- Probes and metrics (streaming/probes.py) -------------------------------------------
# /readyz answers 503 when the database or the channel layer takes longer than this.
READY_TIMEOUT_SECONDS = env_float("READY_TIMEOUT_SECONDS", 2.0)
# With a token, /metrics needs `Authorization: Bearer <token>`; without, it is served only
# to this host (loopback, no proxy's headers).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()

# How log records are written: "plain" lines for people, or "json", one object a line
# (time, level, logger, message, and the ids and timings of the answer a line is about)
# for a log collector. Neither ever holds message text or keys (streaming/logs.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or "plain"
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"answer": {"()": "streaming.logs.AnswerFields"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "streaming.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["answer"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "streaming": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        # daphne's access log, which goes through logging in JSON mode (chatsite/asgi.py).
        "daphne.access": {"level": "INFO"},
    },
}
