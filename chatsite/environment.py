"""Every environment variable chatsite reads: its name, kind, default and meaning.

chatsite/settings.py reads the environment through this table and nowhere else. A value
that is not what its variable must be raises ImproperlyConfigured naming the variable and
what it must be. Set to nothing (or to spaces) is the same as unset. README.md's
configuration table shows the same variables and defaults, with more words on each;
tests/house/test_environment.py fails when the two disagree.
"""

import logging
from typing import Any

from chatsite.variables import Choice, Flag, Items, Number, Secret, Text, Variable, Whole

# --- Security and hosts -----------------------------------------------------------------
DEBUG = Flag("DEBUG", False, "Django's debug mode; never in production.")
SECRET_KEY = Secret(
    "SECRET_KEY",
    None,
    "Django's signing key; required unless DEBUG is true.",
    derived="none; `make run` generates one into `var/secret_key`",
)
SECRET_KEY_FALLBACKS = Items(
    "SECRET_KEY_FALLBACKS", [], "Earlier SECRET_KEYs, newest first, accepted while rotated out."
)
ALLOWED_HOSTS = Items(
    "ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]"],
    "Host names the site answers to, for pages and WebSocket handshakes.",
)
CSRF_TRUSTED_ORIGINS = Items(
    "CSRF_TRUSTED_ORIGINS", [], "Origins besides the site's own that may post forms and sockets."
)
HTTPS = Flag("HTTPS", False, "People reach the site over HTTPS (TLS here or at a proxy).")
HSTS_SECONDS = Whole(
    "HSTS_SECONDS",
    31_536_000,
    "With HTTPS: how long browsers keep to HTTPS for the site; 0 sends no HSTS.",
    note="a year",
    minimum=0,
)
HSTS_INCLUDE_SUBDOMAINS = Flag(
    "HSTS_INCLUDE_SUBDOMAINS", True, "With HTTPS: HSTS covers the host's subdomains too."
)
HSTS_PRELOAD = Flag(
    "HSTS_PRELOAD", True, "With HTTPS: HSTS allows the domain into browsers' preload list."
)
LOGIN_FAILURE_LIMIT = Whole(
    "LOGIN_FAILURE_LIMIT", 5, "Failed logins, by account or by address, that pause logging in."
)
LOGIN_COOLOFF_MINUTES = Number(
    "LOGIN_COOLOFF_MINUTES", 15.0, "How long a failed login counts, so how long a pause lasts."
)
CLIENT_IP_HEADER = Text(
    "CLIENT_IP_HEADER",
    "",
    "The header in which a trusted proxy gives the client's address.",
    note="the socket's address",
    pattern=r"[A-Za-z0-9-]+",
    shape="an HTTP header name such as X-Real-IP",
)
OIDC_SERVER_URL = Text(
    "OIDC_SERVER_URL",
    "",
    "The identity provider's issuer URL (OpenID Connect discovery); empty: no single sign-on.",
    pattern=r"https?://\S+",
    shape="an http(s) URL such as https://id.example.com/realms/company",
)
OIDC_CLIENT_ID = Text("OIDC_CLIENT_ID", "", "chatsite's client id at the identity provider.")
OIDC_CLIENT_SECRET = Secret(
    "OIDC_CLIENT_SECRET", "", "chatsite's client secret at the identity provider."
)
OIDC_NAME = Text("OIDC_NAME", "single sign-on", "What the login page's button signs in with.")
OIDC_SCOPES = Items(
    "OIDC_SCOPES", ["openid", "profile", "email"], "The scopes chatsite asks the provider for."
)
OIDC_USERNAME_CLAIM = Text(
    "OIDC_USERNAME_CLAIM", "preferred_username", "The claim that names a new account."
)
OIDC_EMAIL_CLAIM = Text("OIDC_EMAIL_CLAIM", "email", "The claim that holds the email address.")
OIDC_GROUPS_CLAIM = Text(
    "OIDC_GROUPS_CLAIM",
    "",
    "The claim that lists a user's groups; empty: staff set groups in the admin.",
)
SIGNUP_DOMAINS = Items(
    "SIGNUP_DOMAINS",
    [],
    "Email domains whose people may make an account themselves; empty: nobody may.",
)
EMAIL_HOST = Text(
    "EMAIL_HOST", "", "The SMTP server mail goes out through; empty: written to the log."
)
EMAIL_PORT = Whole("EMAIL_PORT", 587, "The SMTP server's port.", maximum=65535)
EMAIL_HOST_USER = Text("EMAIL_HOST_USER", "", "The SMTP server's user name.")
EMAIL_HOST_PASSWORD = Secret("EMAIL_HOST_PASSWORD", "", "The SMTP server's password.")
EMAIL_USE_TLS = Flag("EMAIL_USE_TLS", True, "Mail goes out over STARTTLS.")
EMAIL_FROM = Text("EMAIL_FROM", "chatsite@localhost", "The sender of the mail chatsite sends.")
LOCAL_LOGIN = Choice(
    "LOCAL_LOGIN",
    "everyone",
    "Who may log in with a chatsite password: everyone, or superusers only.",
    choices=("everyone", "superusers"),
)
SERVE_STATIC = Flag("SERVE_STATIC", True, "daphne serves /static/ itself (not a front server).")
UVLOOP = Flag(
    "UVLOOP",
    True,
    "daphne runs on uvloop's event loop; false: on asyncio's own (chatsite/daphne.py).",
)
METRICS_TOKEN = Text(
    "METRICS_TOKEN", "", "The bearer token /metrics asks for; empty, it serves this host only."
)

# --- Storage and channel layer ----------------------------------------------------------
DATABASE_URL = Text(
    "DATABASE_URL",
    None,
    "The database, as a URL dj-database-url reads.",
    derived="`sqlite:///db.sqlite3` in the project folder",
)
DB_THREADS = Whole("DB_THREADS", 8, "Threads per process that run database work.")
DB_POOL_SIZE = Whole(
    "DB_POOL_SIZE",
    None,
    "PostgreSQL only: the most pooled connections one process holds.",
    derived="`DB_THREADS + 4`",
)
REDIS_URL = Items(
    "REDIS_URL", [], "The Redis hosts of the channel layer; empty, the in-memory layer."
)
REDIS_SENTINELS = Items(
    "REDIS_SENTINELS", [], "Instead of REDIS_URL: the Redis Sentinels, as host:port pairs."
)
REDIS_SENTINEL_MASTERS = Items(
    "REDIS_SENTINEL_MASTERS", ["mymaster"], "With REDIS_SENTINELS: the master name of each shard."
)
REDIS_PASSWORD = Secret("REDIS_PASSWORD", "", "With REDIS_SENTINELS: the masters' password.")
REDIS_SENTINEL_PASSWORD = Secret(
    "REDIS_SENTINEL_PASSWORD", "", "With REDIS_SENTINELS: the sentinels' own password."
)
CHANNEL_LAYER = Choice(
    "CHANNEL_LAYER",
    "pubsub",
    "Which channels-redis layer: Redis Pub/Sub, or lists polled with BZPOPMIN.",
    choices=("pubsub", "core"),
)

# --- Model API ----------------------------------------------------------------------------
OPENAI_API_KEY = Secret(
    "OPENAI_API_KEY", "", "The API's Bearer token; with no base URL either, the simulator."
)
OPENAI_BASE_URL = Text(
    "OPENAI_BASE_URL",
    None,
    "The API root; /chat/completions is appended.",
    derived="`https://api.openai.com/v1` (simulator: `http://127.0.0.1:$SIMULATOR_PORT/v1`)",
)
OPENAI_MODEL = Text(
    "OPENAI_MODEL",
    None,
    "The model for new conversations, the one the default provider offers.",
    derived="`gpt-4o-mini` (simulator: `simulated`)",
)
OPENAI_PROVIDER_NAME = Text(
    "OPENAI_PROVIDER_NAME",
    None,
    "What the picker and each answer call the provider configured by OPENAI_*.",
    derived="`Default` (simulator: `Simulator`)",
)
PROVIDER_KEY_SECRET = Secret(
    "PROVIDER_KEY_SECRET",
    None,
    "The secret that providers' stored API keys are encrypted with.",
    derived="`SECRET_KEY`",
)
OPENAI_READ_TIMEOUT = Number(
    "OPENAI_READ_TIMEOUT", 60.0, "Seconds without a byte from the API before the answer fails."
)
OPENAI_HTTP = Choice(
    "OPENAI_HTTP",
    "aiohttp",
    "What httpx reads the model's streams through: aiohttp, or httpx's own httpcore.",
    choices=("aiohttp", "httpcore"),
)
OPENAI_CONNECT_TIMEOUT = Number("OPENAI_CONNECT_TIMEOUT", 10.0, "Seconds to connect to the API.")
OPENAI_MAX_RETRIES = Whole(
    "OPENAI_MAX_RETRIES", 3, "Retries of a failed request, only before the first token.", minimum=0
)
OPENAI_RETRY_MAX_SECONDS = Number(
    "OPENAI_RETRY_MAX_SECONDS", 20.0, "The longest wait before a retry; a longer Retry-After ends."
)
OPENAI_MAX_TOKENS = Whole(
    "OPENAI_MAX_TOKENS", 4096, "The most tokens one reply may have; 0 sends no limit.", minimum=0
)
OPENAI_MAX_TOKENS_FIELD = Choice(
    "OPENAI_MAX_TOKENS_FIELD",
    "max_tokens",
    "The request field that carries the limit.",
    choices=("max_tokens", "max_completion_tokens"),
)
OPENAI_CONTEXT_TOKENS = Whole(
    "OPENAI_CONTEXT_TOKENS", 16000, "The most the model is sent, in estimated tokens."
)
OPENAI_VISION = Flag(
    "OPENAI_VISION",
    None,
    "The default provider's model sees images attached to messages.",
    derived="true with the simulator, else false",
)
MODEL_ACCESS = Choice(
    "MODEL_ACCESS",
    "everyone",
    "Who may pick which model: everyone every model, or what their groups allow.",
    choices=("everyone", "groups"),
)
SHARE_LINKS = Choice(
    "SHARE_LINKS",
    "signed-in",
    "Who a conversation's owner may share it with by link: nobody, people signed in, anyone.",
    choices=("off", "signed-in", "public"),
)
SIMULATOR_PORT = Whole(
    "SIMULATOR_PORT",
    8001,
    "Where make run (and serve, with no model API set) starts the simulator.",
    maximum=65535,
)

# --- Streaming and limits -------------------------------------------------------------------
STREAM_CHECKPOINT_SECONDS = Number(
    "STREAM_CHECKPOINT_SECONDS", 1.0, "How often a streaming answer's text is saved."
)
STREAM_ORPHAN_SECONDS = Number(
    "STREAM_ORPHAN_SECONDS", 10.0, "A streaming answer whose heartbeat is this old is swept."
)
STREAM_LOCAL_DELIVERY = Flag(
    "STREAM_LOCAL_DELIVERY",
    False,
    "An answer's pieces go straight to this process's sockets while no other process listens.",
)
STREAM_MAX_ANSWER_CHARS = Whole(
    "STREAM_MAX_ANSWER_CHARS", 200_000, "The longest answer kept, in characters; cut there."
)
STREAM_MAX_ANSWERS = Whole(
    "STREAM_MAX_ANSWERS", 200, "Answers one process streams at once; past it, refused at once."
)
MAX_MESSAGE_CHARS = Whole("MAX_MESSAGE_CHARS", 32000, "The longest user message accepted.")
MAX_FRAME_CHARS = Whole(
    "MAX_FRAME_CHARS",
    None,
    "The longest WebSocket frame read; a longer one is refused unparsed.",
    derived="`6 * MAX_MESSAGE_CHARS + 1024`",
)
FRAME_BUDGET_BYTES = Whole(
    "FRAME_BUDGET_BYTES",
    256 * 1024,
    "The longest frame the server sends; a longer one travels in `part` frames.",
    minimum=1024,
    maximum=1_000_000,
    note="256 KiB; at most 1000000, below the 1 MiB daphne sends",
)
MAX_SYSTEM_PROMPT_CHARS = Whole(
    "MAX_SYSTEM_PROMPT_CHARS", 8000, "The longest system prompt a conversation may have."
)
IMPORT_MAX_BYTES = Whole(
    "IMPORT_MAX_BYTES",
    10 * 1024 * 1024,
    "The largest export file a user may import (read as a stream, written in batches).",
    note="10 MiB",
)
IMPORTS_PER_DAY = Whole(
    "IMPORTS_PER_DAY",
    20,
    "Imports one user may start a day (UTC), refused ones too; 0: no limit.",
    minimum=0,
)
LIMIT_ANSWERS_PER_USER = Whole(
    "LIMIT_ANSWERS_PER_USER", 3, "Answers one user may have streaming at once."
)
LIMIT_MESSAGES_PER_MINUTE = Whole(
    "LIMIT_MESSAGES_PER_MINUTE", 20, "Answers one user may start in any minute."
)
LIMIT_SOCKETS_PER_USER = Whole(
    "LIMIT_SOCKETS_PER_USER", 20, "Chat tabs one user may have open at once."
)
LIMIT_FRAMES_PER_SECOND = Number(
    "LIMIT_FRAMES_PER_SECOND", 10.0, "Frames one socket may send a second, on average."
)
LIMIT_FRAMES_BURST = Whole("LIMIT_FRAMES_BURST", 30, "Frames one socket may send at once.")
DAILY_TOKEN_BUDGET = Whole(
    "DAILY_TOKEN_BUDGET", 0, "Tokens one user may spend a day (UTC); 0: no budget.", minimum=0
)
STORAGE_QUOTA_CHARS = Whole(
    "STORAGE_QUOTA_CHARS",
    100_000_000,
    "Characters of message text one user may store; 0: no quota.",
    minimum=0,
)
AUTO_TITLE = Flag("AUTO_TITLE", False, "Ask the model for a title after the first answer.")
MEDIA_ROOT = Text(
    "MEDIA_ROOT", None, "The folder attachments are kept in.", derived="`var/media` in the project"
)
ATTACH_STORAGE = Text(
    "ATTACH_STORAGE",
    "",
    'Another Django storage for attachments, as JSON: {"BACKEND": …, "OPTIONS": {…}}.',
    pattern=r"\{.*\}",
    shape="a JSON object",
)
ATTACH_MAX_FILES = Whole("ATTACH_MAX_FILES", 10, "Files one message may carry.")
ATTACH_ACCEL_REDIRECT = Text(
    "ATTACH_ACCEL_REDIRECT",
    "",
    "nginx sends attachments: its internal location for MEDIA_ROOT, e.g. /protected-media/.",
    pattern=r"/(.*/)?",
    shape="a path that starts and ends with /",
)
DELETE_UNDO_SECONDS = Number(
    "DELETE_UNDO_SECONDS", 10.0, "How long a deleted conversation can be restored."
)
SOCKET_SESSION_CHECK_SECONDS = Number(
    "SOCKET_SESSION_CHECK_SECONDS",
    60.0,
    "The longest an open socket goes without its session checked.",
)

# --- Attachments (streaming/intake.py) -----------------------------------------------------
ATTACH_MAX_BYTES = Whole(
    "ATTACH_MAX_BYTES", 20_000_000, "The largest file a user may attach.", note="20 MB"
)
ATTACH_IMAGE_MAX_SIDE = Whole(
    "ATTACH_IMAGE_MAX_SIDE", 2048, "An image's longest side once kept; longer is scaled down."
)
ATTACH_IMAGE_MAX_BYTES = Whole(
    "ATTACH_IMAGE_MAX_BYTES", 5_000_000, "An image's most bytes once re-encoded.", note="5 MB"
)
ATTACH_IMAGE_MAX_PIXELS = Whole(
    "ATTACH_IMAGE_MAX_PIXELS", 50_000_000, "The most pixels an image may have to be opened at all."
)

# --- Probes and logs ----------------------------------------------------------------------
READY_TIMEOUT_SECONDS = Number(
    "READY_TIMEOUT_SECONDS", 2.0, "How long /readyz waits for the database and the layer."
)
LOG_FORMAT = Choice(
    "LOG_FORMAT",
    "plain",
    "Log lines for people, or JSON for a collector.",
    choices=("plain", "json"),
)
LOG_LEVEL = Choice(
    "LOG_LEVEL",
    "INFO",
    "Log level of chatsite's own logs (the streaming app, chatsite.daphne).",
    choices=tuple(logging.getLevelNamesMapping()),
)

#: The table: every variable above, in the order declared.
VARIABLES: tuple[Variable[Any], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Variable)
)
