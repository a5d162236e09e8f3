"""chatsite settings: Django's, assigned from the environment variables that
chatsite/environment.py declares (kind, default, meaning), each read here once. Checks that
span several variables are made here. Application code reads ``django.conf.settings`` at
call time, so ``override_settings`` works in tests.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from chatsite import environment as env
from chatsite.channel_layers import redis_connection, redis_layer, sentinel_hosts
from chatsite.databases import database
from chatsite.storages import attachment_storage
from streaming.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# Lets annotations such as admin.ModelAdmin[Message] run, not only type-check.
django_stubs_ext.monkeypatch()

DEBUG = env.DEBUG.read()
SECRET_KEY = env.SECRET_KEY.read(default="insecure-development-key-only-for-debug" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "Set SECRET_KEY to a long random string (or DEBUG=true for local development). "
        "`make run` creates one for you in var/secret_key."
    )
SECRET_KEY_FALLBACKS = env.SECRET_KEY_FALLBACKS.read()
ALLOWED_HOSTS = env.ALLOWED_HOSTS.read()
CSRF_TRUSTED_ORIGINS = env.CSRF_TRUSTED_ORIGINS.read()

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
    # Single sign-on with OpenID Connect (streaming/sso.py); only the provider's login and
    # callback are routed (chatsite/urls.py), none of allauth's own account pages.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
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
    "allauth.account.middleware.AccountMiddleware",
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
                "streaming.context_processors.sign_in",
            ],
        },
    },
]
ASGI_APPLICATION = "chatsite.asgi.application"

# --- Database -------------------------------------------------------------------------
DB_THREADS = env.DB_THREADS.read()
# The pool covers the database threads, the request thread and the management commands.
DB_POOL_SIZE = env.DB_POOL_SIZE.read(default=DB_THREADS + 4)
DATABASES = {
    "default": database(
        env.DATABASE_URL.read(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), DB_POOL_SIZE
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer --------------------------------------------------------------------
REDIS_URLS = env.REDIS_URL.read()
REDIS_SENTINELS = env.REDIS_SENTINELS.read()
if REDIS_URLS and REDIS_SENTINELS:
    raise ImproperlyConfigured("Set REDIS_URL or REDIS_SENTINELS, not both.")
#: The Redis servers of the channel layer (and of the per-user socket counts: the first),
#: in channels-redis's host format.
REDIS_HOSTS: list[dict[str, object]] = [
    redis_connection(host)
    for host in (
        sentinel_hosts(
            REDIS_SENTINELS,
            env.REDIS_SENTINEL_MASTERS.read(),
            env.REDIS_PASSWORD.read(),
            env.REDIS_SENTINEL_PASSWORD.read(),
        )
        if REDIS_SENTINELS
        else REDIS_URLS
    )
]
# docs/performance.md measures both kinds: pubsub costs a sixth of the CPU per frame.
CHANNEL_LAYER = env.CHANNEL_LAYER.read()
CHANNEL_LAYERS = {
    "default": redis_layer(REDIS_HOSTS, CHANNEL_LAYER)
    if REDIS_HOSTS
    else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
}

# --- Model API ------------------------------------------------------------------------
# No key and no base URL: the built-in simulator. A local server that needs no key (Ollama,
# llama.cpp) is chosen by setting OPENAI_BASE_URL alone.
OPENAI_API_KEY = env.OPENAI_API_KEY.read()
SIMULATOR_PORT = env.SIMULATOR_PORT.read()
OPENAI_SIMULATED = not OPENAI_API_KEY and not env.OPENAI_BASE_URL.is_set()
OPENAI_BASE_URL = env.OPENAI_BASE_URL.read(
    default=f"http://127.0.0.1:{SIMULATOR_PORT}/v1"
    if OPENAI_SIMULATED
    else "https://api.openai.com/v1"
)
OPENAI_MODEL = env.OPENAI_MODEL.read(default="simulated" if OPENAI_SIMULATED else "gpt-4o-mini")
OPENAI_PROVIDER_NAME = env.OPENAI_PROVIDER_NAME.read(
    default="Simulator" if OPENAI_SIMULATED else "Default"
)
# Changing it (or SECRET_KEY, while this is unset and the old one is not among
# SECRET_KEY_FALLBACKS) makes providers' stored keys unreadable (streaming/keys.py).
PROVIDER_KEY_SECRET = env.PROVIDER_KEY_SECRET.read(default=SECRET_KEY)
OPENAI_READ_TIMEOUT = env.OPENAI_READ_TIMEOUT.read()
OPENAI_CONNECT_TIMEOUT = env.OPENAI_CONNECT_TIMEOUT.read()
# Retries happen only before the first token, so no user ever sees an answer twice.
OPENAI_MAX_RETRIES = env.OPENAI_MAX_RETRIES.read()
OPENAI_RETRY_MAX_SECONDS = env.OPENAI_RETRY_MAX_SECONDS.read()
OPENAI_MAX_TOKENS = env.OPENAI_MAX_TOKENS.read()
OPENAI_MAX_TOKENS_FIELD = env.OPENAI_MAX_TOKENS_FIELD.read()
OPENAI_HTTP = env.OPENAI_HTTP.read()
OPENAI_CONTEXT_TOKENS = env.OPENAI_CONTEXT_TOKENS.read()
# Whether images may go to the default provider's model (a provider's models: each its own).
OPENAI_VISION = env.OPENAI_VISION.read(default=OPENAI_SIMULATED)
# everyone: every enabled model for every user; groups: what their groups allow
# (streaming/services/model_access.py), every model for superusers.
MODEL_ACCESS = env.MODEL_ACCESS.read()
# off: no share links (those made before answer 404); signed-in: a link opens for people
# signed in to the site; public: its owner may open it to anyone (streaming/services/shares.py).
SHARE_LINKS = env.SHARE_LINKS.read()

# --- Streaming and per-user limits ----------------------------------------------------
STREAM_MAX_ANSWER_CHARS = env.STREAM_MAX_ANSWER_CHARS.read()
STREAM_MAX_ANSWERS = env.STREAM_MAX_ANSWERS.read()
STREAM_CHECKPOINT_SECONDS = env.STREAM_CHECKPOINT_SECONDS.read()
STREAM_ORPHAN_SECONDS = env.STREAM_ORPHAN_SECONDS.read()
STREAM_LOCAL_DELIVERY = env.STREAM_LOCAL_DELIVERY.read()
# Several checkpoints must fit in the orphan threshold, or live answers would be swept.
if STREAM_ORPHAN_SECONDS < 3 * STREAM_CHECKPOINT_SECONDS:
    raise ImproperlyConfigured(
        "STREAM_ORPHAN_SECONDS must be at least 3 times STREAM_CHECKPOINT_SECONDS."
    )
MAX_MESSAGE_CHARS = env.MAX_MESSAGE_CHARS.read()
# The default fits any message within MAX_MESSAGE_CHARS however JSON escapes it (at most 6
# characters for one, as in \u0001), plus the frame's other fields.
MAX_FRAME_CHARS = env.MAX_FRAME_CHARS.read(default=6 * MAX_MESSAGE_CHARS + 1024)
if MAX_FRAME_CHARS < MAX_MESSAGE_CHARS + 1024:
    raise ImproperlyConfigured(
        "MAX_FRAME_CHARS must be at least MAX_MESSAGE_CHARS + 1024, or a message within the "
        "limit could not be sent."
    )
FRAME_BUDGET_BYTES = env.FRAME_BUDGET_BYTES.read()
MAX_SYSTEM_PROMPT_CHARS = env.MAX_SYSTEM_PROMPT_CHARS.read()
IMPORT_MAX_BYTES = env.IMPORT_MAX_BYTES.read()
IMPORTS_PER_DAY = env.IMPORTS_PER_DAY.read()
AUTO_TITLE = env.AUTO_TITLE.read()
DELETE_UNDO_SECONDS = env.DELETE_UNDO_SECONDS.read()
# Answers and messages are counted in the database (exact across processes); sockets in
# Redis when there is one, else in memory (one process).
LIMIT_ANSWERS_PER_USER = env.LIMIT_ANSWERS_PER_USER.read()
LIMIT_MESSAGES_PER_MINUTE = env.LIMIT_MESSAGES_PER_MINUTE.read()
LIMIT_SOCKETS_PER_USER = env.LIMIT_SOCKETS_PER_USER.read()
LIMIT_FRAMES_PER_SECOND = env.LIMIT_FRAMES_PER_SECOND.read()
LIMIT_FRAMES_BURST = env.LIMIT_FRAMES_BURST.read()
DAILY_TOKEN_BUDGET = env.DAILY_TOKEN_BUDGET.read()
STORAGE_QUOTA_CHARS = env.STORAGE_QUOTA_CHARS.read()

# --- Attachments (streaming/intake.py, streaming/uploads.py, services/attachments.py) ------
ATTACH_MAX_BYTES = env.ATTACH_MAX_BYTES.read()
# An image is decoded only up to ATTACH_IMAGE_MAX_PIXELS (a decompression bomb is refused
# unopened), then kept within the longest side and the bytes.
ATTACH_IMAGE_MAX_PIXELS = env.ATTACH_IMAGE_MAX_PIXELS.read()
ATTACH_IMAGE_MAX_SIDE = env.ATTACH_IMAGE_MAX_SIDE.read()
ATTACH_IMAGE_MAX_BYTES = env.ATTACH_IMAGE_MAX_BYTES.read()
MEDIA_ROOT = Path(env.MEDIA_ROOT.read(default=str(BASE_DIR / "var" / "media")))
# No MEDIA_URL: nothing serves MEDIA_ROOT as it is; a file goes only to its owner, through
# the attachment view (streaming/views_attachments.py).
ATTACH_MAX_FILES = env.ATTACH_MAX_FILES.read()
# With nginx in front: the view checks the owner and nginx sends the bytes from this
# internal location (deploy/nginx.conf), which must map to MEDIA_ROOT.
ATTACH_ACCEL_REDIRECT = env.ATTACH_ACCEL_REDIRECT.read()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "attachments": attachment_storage(env.ATTACH_STORAGE.read(), MEDIA_ROOT),
}

# --- Auth, sessions, static -----------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The bound for a session's endings nobody announces, on a silent socket (streaming/sessions.py).
SOCKET_SESSION_CHECK_SECONDS = env.SOCKET_SESSION_CHECK_SECONDS.read()
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "streaming:conversation_list"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
SERVE_STATIC = env.SERVE_STATIC.read()
# Read before settings by chatsite/daphne.py, which chooses the loop before daphne loads;
# here too, so a value it cannot be stops every process that reads settings, as any other.
UVLOOP = env.UVLOOP.read()

# --- Security -------------------------------------------------------------------------
# One switch for a site served over HTTPS, whether TLS ends in front (nginx) or not. Unset,
# as for `make run` on http://127.0.0.1, nothing here changes. The WebSocket handshake
# (wss://) is HTTPS too, so the Secure session cookie still reaches the socket.
HTTPS = env.HTTPS.read()
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
# A proxy that terminates TLS says a request came over HTTPS in X-Forwarded-Proto: it must
# set that header itself, replacing any a client sent.
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Except the probes: a load balancer checks daphne itself, over plain HTTP, and Prometheus
# scrapes each process so (streaming/probes.py). Patterns match the path without its "/".
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# A year, as `check --deploy` asks; smaller while trying HTTPS out.
SECURE_HSTS_SECONDS = env.HSTS_SECONDS.read() if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.HSTS_INCLUDE_SUBDOMAINS.read()
SECURE_HSTS_PRELOAD = env.HSTS_PRELOAD.read()

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

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins within the
# cool-off, to one account or from one address, logging in to that account and from that
# address is refused, the right password too, for a cool-off (or until staff lift it).
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.LOGIN_FAILURE_LIMIT.read()
AXES_COOLOFF_TIME = timedelta(minutes=env.LOGIN_COOLOFF_MINUTES.read())
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
CLIENT_IP_HEADER = env.CLIENT_IP_HEADER.read()
# The same header as request.META names it.
CLIENT_IP_META_KEY = (
    "HTTP_" + CLIENT_IP_HEADER.upper().replace("-", "_") if CLIENT_IP_HEADER else ""
)

# --- Single sign-on (streaming/sso.py, django-allauth's OpenID Connect provider) --------
OIDC_SERVER_URL = env.OIDC_SERVER_URL.read().rstrip("/")
OIDC_CLIENT_ID = env.OIDC_CLIENT_ID.read()
OIDC_NAME = env.OIDC_NAME.read()
OIDC_USERNAME_CLAIM = env.OIDC_USERNAME_CLAIM.read()
OIDC_EMAIL_CLAIM = env.OIDC_EMAIL_CLAIM.read()
OIDC_GROUPS_CLAIM = env.OIDC_GROUPS_CLAIM.read()
_oidc_secret = env.OIDC_CLIENT_SECRET.read()
_oidc_scopes = env.OIDC_SCOPES.read()
if OIDC_SERVER_URL and not OIDC_CLIENT_ID:
    raise ImproperlyConfigured("With OIDC_SERVER_URL, set OIDC_CLIENT_ID (and its secret).")
# The code, the client secret and the tokens cross this URL's connections: over plain HTTP
# only to this host (a provider for tests or development).
if urlsplit(OIDC_SERVER_URL).scheme == "http" and urlsplit(OIDC_SERVER_URL).hostname not in {
    "127.0.0.1",
    "localhost",
    "::1",
}:
    raise ImproperlyConfigured(
        "OIDC_SERVER_URL must be an https:// URL (http:// only to this host)."
    )
#: The one provider's id in allauth's URLs: /accounts/oidc/<this>/login/callback/.
OIDC_PROVIDER_ID = "sso"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # The code exchange proves it comes from whoever started the sign-in.
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": OIDC_PROVIDER_ID,
                "name": OIDC_NAME,
                "client_id": OIDC_CLIENT_ID,
                "secret": _oidc_secret,
                "settings": {"server_url": OIDC_SERVER_URL, "scope": _oidc_scopes},
            }
        ]
        if OIDC_SERVER_URL
        else [],
    }
}
SOCIALACCOUNT_ADAPTER = "streaming.sso.SocialAccountAdapter"
ACCOUNT_ADAPTER = "streaming.sso.AccountAdapter"
# A first sign-in makes the account from the claims, with no form to fill in.
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_EMAIL_VERIFICATION = "none"
# Addresses are the provider's to vouch for: two accounts may share one, and an address
# never joins a sign-in to an existing account (docs/security.md).
ACCOUNT_UNIQUE_EMAIL = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
# Nothing of the provider's tokens is kept but what logout needs (streaming/sso.py).
SOCIALACCOUNT_STORE_TOKENS = False
LOCAL_LOGIN = env.LOCAL_LOGIN.read()
# Sign-up (streaming/services/signups.py): by invitation, or for these domains' addresses,
# confirmed by mail. A domain is matched whole, in any case.
SIGNUP_DOMAINS = [domain.lower().lstrip("@") for domain in env.SIGNUP_DOMAINS.read()]
EMAIL_HOST = env.EMAIL_HOST.read()
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env.EMAIL_PORT.read()
EMAIL_HOST_USER = env.EMAIL_HOST_USER.read()
EMAIL_HOST_PASSWORD = env.EMAIL_HOST_PASSWORD.read()
EMAIL_USE_TLS = env.EMAIL_USE_TLS.read()
DEFAULT_FROM_EMAIL = env.EMAIL_FROM.read()
EMAIL_TIMEOUT = 10
if OIDC_SERVER_URL:
    # A sign-in's form, and logout's, send the browser on to the provider: a form's
    # redirects are held to form-action too.
    _issuer = urlsplit(OIDC_SERVER_URL)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        f"{_issuer.scheme}://{_issuer.netloc}"
    )

# --- Probes, metrics and logs (streaming/probes.py, streaming/logs.py) ----------------
READY_TIMEOUT_SECONDS = env.READY_TIMEOUT_SECONDS.read()
METRICS_TOKEN = env.METRICS_TOKEN.read()
LOG_FORMAT = env.LOG_FORMAT.read()
LOG_LEVEL = env.LOG_LEVEL.read()
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
